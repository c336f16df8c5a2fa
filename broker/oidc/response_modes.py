"""How an authorization response reaches the client: its response mode.

`query` (RFC 6749 4.1.2, the code flow's default): a redirect to the redirect URI with the
parameters in its query. `form_post` (OAuth 2.0 Form Post Response Mode): an HTML form that the
browser posts to the redirect URI, so the code never appears in a URL (no history, no Referer,
no proxy log). ASP.NET Core's OpenID Connect handler asks for it by default. `fragment` is for
the implicit and hybrid flows, which the broker does not build: refused, as any other value.

Every answer to the client's redirect URI is an `AuthorizationResponse` made by one function,
`OidcProvider.answer` (provider.py): the code, a refusal when the request arrives, and one after
the login (prompt=none, the school's or the student's no). The web edge turns it into the
redirect or the auto-post page of its `form` (service_answers.to_client). The mode needs no
state of its own: the request's parameters are kept, sealed, in the login record, and
`response_mode` with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from broker.login.post_message import PostMessage

QUERY = "query"
FORM_POST = "form_post"
RESPONSE_MODES = (QUERY, FORM_POST)


def response_mode(data: Mapping[str, str]) -> str:
    """The mode the request asked for, when the broker has it; `query` otherwise (the default,
    and the mode in which a request naming another one is refused: authorization_checks)."""
    mode = data.get("response_mode", QUERY)
    return mode if mode in RESPONSE_MODES else QUERY


@dataclass(frozen=True)
class AuthorizationResponse:
    """Parameters for the client's redirect URI (validated: registered, matched exactly), in
    `mode`. `params` holds `iss` too (RFC 9207), in either mode."""

    redirect_uri: str
    params: dict[str, str]
    mode: str = QUERY

    @property
    def form_post(self) -> bool:
        return self.mode == FORM_POST

    @property
    def form(self) -> PostMessage:
        """The form the browser posts to the redirect URI (the `form_post` mode's auto-post
        page, and the button back on the student's error page)."""
        return PostMessage(self.redirect_uri, self.params)

    @property
    def location(self) -> str:
        """The redirect URI with the parameters in its query (the `query` mode's redirect, and
        the link back on the student's error page)."""
        return add_query(self.redirect_uri, self.params)


def add_query(url: str, params: Mapping[str, str]) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"
