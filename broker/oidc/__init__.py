"""OpenID Connect with authlib: the provider towards publishers (front) and the relying party
towards schools (back). Nothing here imports Flask: routes in `broker/web` hand in plain values."""

import logging

# authlib logs every token it issues (`Issue token %r`: access and refresh tokens, each the only
# key to its sealed record in the store) at debug level. Logs never carry what unseals personal
# data, whatever level an operator's logging configuration sets, so its loggers pass warnings
# and worse only (as pysaml2's, broker/saml/entities.py).
logging.getLogger("authlib").setLevel(logging.WARNING)
