"""A RelayState the broker must give back exactly as received (SAML bindings 3.4.3 and 3.5.3):
the login's SSO request and the logout endpoint both echo it, so both refuse one that is not
UTF-8 text, which they could only give back changed."""

from __future__ import annotations

from flask import request

from broker.core.errors import RelayStateNotText
from broker.saml.redirect_query import RELAY_STATE, RedirectQuery, form_value_is_utf8


def refuse_relay_state_not_text(query: RedirectQuery | None) -> None:
    """Raise RelayStateNotText when the request's RelayState is not UTF-8 as sent: read from
    `query` (the Redirect binding's query as received) or from the posted body, which must not
    have been read as a form before (Werkzeug's form consumes the body)."""
    is_text = query.is_utf8(RELAY_STATE) if query is not None else _posted_is_utf8(RELAY_STATE)
    if not is_text:
        raise RelayStateNotText("RelayState not UTF-8")


def _posted_is_utf8(name: str) -> bool:
    """Whether the posted form's `name` is UTF-8 text as sent. Werkzeug's form puts invalid
    octets back as `%XX` text (urlencoded) or as U+FFFD (multipart), so the value read there
    cannot tell: an urlencoded body is read first (cached, and the form is parsed from that
    copy), a multipart one is judged by its replacement characters (a RelayState with a real
    U+FFFD in a multipart form is refused too: no SAML sender encodes its form that way)."""
    if request.mimetype == "application/x-www-form-urlencoded":
        return form_value_is_utf8(request.get_data(cache=True), name)
    return "\ufffd" not in request.form.get(name, "")
