"""OpenID Connect with authlib: the provider towards publishers (front) and the relying party
towards schools (back). Nothing here imports Flask: routes in `broker/web` hand in plain values."""
