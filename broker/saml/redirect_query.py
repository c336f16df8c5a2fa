"""The HTTP-Redirect binding's query string as the browser delivered it.

The query signature covers the parameters' values *as they were URL-encoded by the sender*
(SAML bindings 3.4.4.1: "re-encoding is not sufficient"). Encoders differ where RFC 3986 lets
them: PHP's urlencode writes `~` as `%7E`, .NET's HttpUtility writes lowercase hex, some write a
space as `%20` and others as `+`. Decoding the query and encoding it again the way Python does
reproduces only Python's choices, so the signed octets are cut from the raw query instead, and
the values the broker reads are decoded from those same bytes: what is read is what was signed.

Pure: no Flask, no pysaml2; the routes hand in `request.query_string` (the WSGI QUERY_STRING,
untouched by Werkzeug), or an urlencoded POST body (the same syntax) for `form_value_is_utf8`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from broker.core.errors import InvalidMessage

SAML_REQUEST = "SAMLRequest"
SAML_RESPONSE = "SAMLResponse"
RELAY_STATE = "RelayState"
SIG_ALG = "SigAlg"
SIGNATURE = "Signature"
# The binding's own parameters: each may appear once. Others (a location's own query, say) are
# not signed and not read, so they may come and go as they like.
BINDING_PARAMETERS = frozenset({SAML_REQUEST, SAML_RESPONSE, RELAY_STATE, SIG_ALG, SIGNATURE})


def _octets(raw: bytes) -> bytes:
    """The octets a form-encoded name or value stands for, as Werkzeug reads `request.args`
    (`+` is a space)."""
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _decoded(raw: bytes) -> str:
    """Form-decoding as Werkzeug does it, so a name or valid value reads the same here as
    anywhere else in the app. Invalid UTF-8 is replaced: where the exact text matters (a
    RelayState, echoed as received), `is_utf8` says whether the value had any."""
    return _octets(raw).decode("utf-8", errors="replace")


def is_utf8(raw: bytes) -> bool:
    """Whether a form-encoded value is UTF-8 text: then its decoded value is what was sent,
    octet for octet, and the broker can give it back exactly (SAML bindings 3.4.3, 3.5.3)."""
    try:
        _octets(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _pairs(encoded: bytes) -> Iterator[tuple[str, bytes]]:
    """Each `name=value` of a form-encoded string (a query, an urlencoded body) in order: the
    name decoded, the value as received."""
    for part in encoded.split(b"&"):
        if part:
            encoded_name, _, value = part.partition(b"=")
            yield _decoded(encoded_name), value


def form_value_is_utf8(body: bytes, name: str) -> bool:
    """Whether the first `name` of an urlencoded form body (the one Werkzeug's `request.form`
    gives) is UTF-8 text; True when the body has none. Werkzeug puts invalid octets back as
    `%XX` text, which reads the same as that text sent on purpose: only the body tells."""
    for found, value in _pairs(body):
        if found == name:
            return is_utf8(value)
    return True


@dataclass(frozen=True)
class RedirectQuery:
    """The binding's parameters of one query: each value exactly as received, still encoded,
    and decoded (once: a deflated message is hundreds of escapes)."""

    raw: dict[str, bytes]
    _values: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        decoded = {name: _decoded(value) for name, value in self.raw.items()}
        object.__setattr__(self, "_values", decoded)

    def value(self, name: str) -> str | None:
        """The decoded value of `name`, None when the query does not have it."""
        return self._values.get(name)

    def has(self, name: str) -> bool:
        return name in self.raw

    def is_utf8(self, name: str) -> bool:
        """Whether `name`'s value is UTF-8 text (True when the query does not have it)."""
        raw = self.raw.get(name)
        return raw is None or is_utf8(raw)

    def signed_octets(self, message: str) -> bytes:
        """What the sender signed: `message`=…[&RelayState=…]&SigAlg=…, in that order whatever
        the order in the URL, each value the bytes received (SAML bindings 3.4.4.1). A
        RelayState present with an empty value is part of it, as it is of the query."""
        parts = [message.encode("ascii") + b"=" + self.raw.get(message, b"")]
        relay_state = self.raw.get(RELAY_STATE)
        if relay_state is not None:
            parts.append(b"RelayState=" + relay_state)
        parts.append(b"SigAlg=" + self.raw.get(SIG_ALG, b""))
        return b"&".join(parts)


def read_redirect_query(query_string: bytes) -> RedirectQuery:
    """The binding's parameters of `query_string`; a parameter given twice is refused.

    Names are decoded before they are compared (as Werkzeug does), so `Sig%41lg` counts as a
    second `SigAlg`: with two values, which one was signed and which one read could differ."""
    raw: dict[str, bytes] = {}
    for name, value in _pairs(query_string):
        if name not in BINDING_PARAMETERS:
            continue
        if name in raw:
            raise InvalidMessage(
                "Redirect query names %(name)s twice", code="duplicate_parameter", name=name
            )
        raw[name] = value
    return RedirectQuery(raw)
