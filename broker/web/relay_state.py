"""How the broker's SAML endpoints that take a browser's message (the SSO request, the logout
endpoints) read it: by its binding, and with a RelayState the broker must give back exactly as
received (SAML bindings 3.4.3 and 3.5.3), so one that is not UTF-8 text, which it could only
give back changed, is refused first."""

from __future__ import annotations

from collections.abc import Callable

from flask import request

from broker.core.errors import RelayStateNotText

# pysaml2 stays under broker/saml (house-style.md): the binding URNs come from there.
from broker.saml.metadata_check import POST as BINDING_HTTP_POST
from broker.saml.metadata_check import REDIRECT as BINDING_HTTP_REDIRECT
from broker.saml.redirect_query import (
    RELAY_STATE,
    RedirectQuery,
    form_value_is_utf8,
    read_redirect_query,
)


def read_binding() -> tuple[str, Callable[[str], str | None], RedirectQuery | None]:
    """(binding, how to read a parameter, the Redirect query) of this request: on GET the
    query as received (its raw values carry the signature, bindings 3.4.4.1), else the posted
    form. The RelayState is judged before the form is read (`request.form` consumes the
    body, which is judged as sent) and before any signature: refused whichever fails, and
    this costs no parse."""
    query = read_redirect_query(request.query_string) if request.method == "GET" else None
    refuse_relay_state_not_text(query)
    if query is not None:
        return BINDING_HTTP_REDIRECT, query.value, query
    return BINDING_HTTP_POST, request.form.get, None


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
