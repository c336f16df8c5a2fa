"""The pre-parse firewall (broker/saml/firewall.py): what pysaml2 must never get to see."""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from broker.core.errors import InvalidMessage
from broker.saml.firewall import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_INFLATED_BYTES,
    decode_post,
    inflate_redirect,
    inspect,
    is_success,
    second_status,
    top_status,
)

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"


def response(body: str = "", *, response_id: str = "_r1") -> bytes:
    return (
        f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:ds="{DS}" '
        f'ID="{response_id}" Version="2.0">{body}</samlp:Response>'
    ).encode()


def assertion(assertion_id: str = "_a1", inner: str = "") -> str:
    return f'<saml:Assertion ID="{assertion_id}" Version="2.0">{inner}</saml:Assertion>'


AUTHN_REQUEST = (
    f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_q1" Version="2.0">'
    "<saml:Issuer>https://sp.example/metadata</saml:Issuer></samlp:AuthnRequest>"
).encode()


def deflate(data: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


@contextmanager
def refused(code: str) -> Iterator[None]:
    """`with refused("code"):` — the block raises InvalidMessage with exactly this code."""
    with pytest.raises(InvalidMessage) as caught:
        yield
    assert caught.value.code == code, caught.value.code


# -- what passes -------------------------------------------------------------------------------
def test_plain_response_passes() -> None:
    doc = inspect(response(assertion()), root="Response", assertions=1)
    assert doc.get("ID") == "_r1"


def test_encrypted_assertion_counts() -> None:
    body = '<saml:EncryptedAssertion><x xmlns="urn:x"/></saml:EncryptedAssertion>'
    inspect(response(body), root="Response", assertions=1)


def test_authn_request_passes_and_round_trips_the_bindings() -> None:
    assert (
        inspect(
            decode_post(base64.b64encode(AUTHN_REQUEST).decode()), root="AuthnRequest", assertions=0
        )
        is not None
    )
    assert inflate_redirect(deflate(AUTHN_REQUEST)) == AUTHN_REQUEST


def test_post_body_with_line_breaks_passes() -> None:
    # Several SAML stacks wrap base64 at 64 or 76 characters.
    encoded = base64.encodebytes(AUTHN_REQUEST).decode()
    assert "\n" in encoded
    assert decode_post(encoded) == AUTHN_REQUEST


def test_comments_are_not_elements() -> None:
    inspect(response("<!-- a comment -->" + assertion()), root="Response", assertions=1)


# -- what is refused ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE r [<!ENTITY x "y">]>',
        '<!DOCTYPE samlp:Response SYSTEM "http://evil.example/x.dtd">',
        "<!DOCTYPE samlp:Response>",
    ],
)
def test_doctype_refused(prolog: str) -> None:
    with refused("doctype_refused"):
        inspect(prolog.encode() + response(), root="Response", assertions=None)


def _utf16(xml: str, byte_order: str) -> bytes:
    """`xml` with a UTF-16 declaration, in UTF-16 of `byte_order` ("le", "be") after its BOM."""
    text = '<?xml version="1.0" encoding="UTF-16"?>' + xml
    return (b"\xff\xfe" if byte_order == "le" else b"\xfe\xff") + text.encode(
        f"utf-16-{byte_order}"
    )


@pytest.mark.parametrize("byte_order", ["le", "be"])
@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE r [<!ENTITY x "y">]>',
        '<!DOCTYPE samlp:Response SYSTEM "http://evil.example/x.dtd">',
    ],
)
def test_doctype_in_a_utf16_document_refused(prolog: str, byte_order: str) -> None:
    """In UTF-16 every character is two bytes, so the quick byte check for `<!DOCTYPE` finds
    nothing; the parsed document's own DOCTYPE is what refuses it."""
    xml = _utf16(prolog + response().decode(), byte_order)
    assert b"<!DOCTYPE" not in xml and b"<!ENTITY" not in xml
    with refused("doctype_refused"):
        inspect(xml, root="Response", assertions=None)


@pytest.mark.parametrize("byte_order", ["le", "be"])
def test_a_utf16_document_without_doctype_passes(byte_order: str) -> None:
    """The control: the encoding alone is not what the test above refuses."""
    inspect(_utf16(response().decode(), byte_order), root="Response", assertions=None)


def test_entity_refused_even_without_doctype_keyword_first() -> None:
    with refused("doctype_refused"):
        inspect(b'<!ENTITY x "y">' + response(), root="Response", assertions=None)


def test_billion_laughs_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    started = time.monotonic()
    with refused("doctype_refused"):
        inspect(laughs + response("&lol2;"), root="Response", assertions=None)
    assert time.monotonic() - started < 1


def test_oversized_xml_refused() -> None:
    filler = "<saml:Issuer>" + "x" * MAX_BODY_BYTES + "</saml:Issuer>"
    with refused("message_too_large"):
        inspect(response(filler), root="Response", assertions=None)


def test_oversized_post_refused() -> None:
    with refused("message_too_large"):
        decode_post("A" * (MAX_BODY_BYTES * 2))


def test_oversized_redirect_refused() -> None:
    with refused("message_too_large"):
        inflate_redirect("A" * (MAX_BODY_BYTES + 1))


def test_deflate_bomb_refused_quickly() -> None:
    bomb = deflate(b"\x00" * (10 * 1024 * 1024))
    assert len(bomb) < MAX_BODY_BYTES  # it passes the size check on the wire
    started = time.monotonic()
    with refused("message_too_large"):
        inflate_redirect(bomb)
    assert time.monotonic() - started < 1


def test_a_deflate_bomb_is_never_inflated_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap is applied while inflating, not after: the inflater hands out at most one byte
    more than the cap, however much the bomb holds (a size check afterwards would have built the
    whole 50 MB in memory first)."""
    produced: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        @property
        def unconsumed_tail(self) -> bytes:
            return self._inner.unconsumed_tail

    monkeypatch.setattr("broker.saml.firewall.zlib.decompressobj", Spy)
    with refused("message_too_large"):
        inflate_redirect(deflate(b"\x00" * (50 * 1024 * 1024)))
    assert sum(produced) <= MAX_INFLATED_BYTES + 1


def test_just_over_the_inflated_cap_refused() -> None:
    with refused("message_too_large"):
        inflate_redirect(deflate(b"a" * (MAX_INFLATED_BYTES + 1)))
    assert len(inflate_redirect(deflate(b"a" * MAX_INFLATED_BYTES))) == MAX_INFLATED_BYTES


@pytest.mark.parametrize(
    "value", ["!!!!", "PHNhbWxw*&^%", "a", "abc", "Zm9v!YmFy", "Zm9v\x00YmFy", "Zm9v\u2028YmFy"]
)
def test_non_base64_post_refused(value: str) -> None:
    with refused("malformed_message"):
        decode_post(value)


@pytest.mark.parametrize("value", ["a", "bm90IGRlZmxhdGVk", "////"])
def test_non_deflate_redirect_refused(value: str) -> None:
    with refused("malformed_message"):
        inflate_redirect(value)


@pytest.mark.parametrize(
    ("xml", "root"),
    [
        (response(), "AuthnRequest"),
        (AUTHN_REQUEST, "Response"),
        (b'<Response xmlns="urn:other"/>', "Response"),
        (f'<saml:Assertion xmlns:saml="{SAML}" ID="_a"/>'.encode(), "Response"),
        (b"<Response/>", "Response"),
    ],
)
def test_wrong_root_refused(xml: bytes, root: str) -> None:
    with refused("unexpected_message"):
        inspect(xml, root=root, assertions=None)


@pytest.mark.parametrize("xml", [b"", b"not xml", b"<a>", response()[:-5]])
def test_malformed_xml_refused(xml: bytes) -> None:
    with refused("malformed_message"):
        inspect(xml, root="Response", assertions=None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", 1),
        (assertion("_a1") + assertion("_a2"), 1),
        (assertion("_a1"), 0),
        # An assertion hidden deeper (signature wrapping) still counts.
        (f"<samlp:Extensions>{assertion('_a9')}</samlp:Extensions>" + assertion("_a1"), 1),
    ],
)
def test_assertion_count(body: str, expected: int) -> None:
    with refused("assertion_count"):
        inspect(response(body), root="Response", assertions=expected)


STATUS = "urn:oasis:names:tc:SAML:2.0:status:"


@pytest.mark.parametrize(
    ("body", "success"),
    [
        (f'<samlp:Status><samlp:StatusCode Value="{STATUS}Success"/></samlp:Status>', True),
        (f'<samlp:Status><samlp:StatusCode Value="{STATUS}Responder"/></samlp:Status>', False),
        # Only the top-level code counts: a second-level Success under an error is an error.
        (
            f'<samlp:Status><samlp:StatusCode Value="{STATUS}Responder">'
            f'<samlp:StatusCode Value="{STATUS}Success"/></samlp:StatusCode></samlp:Status>',
            False,
        ),
        ("", False),
    ],
    ids=["Success", "Responder", "Success under Responder", "no Status"],
)
def test_only_a_top_level_success_is_success(body: str, success: bool) -> None:
    """The status that sends a Response to the broker's reader (back.py); any other goes to
    pysaml2, which names the error and is read for nothing else."""
    doc = inspect(response(body), root="Response", assertions=None)
    assert is_success(doc) is success


def test_duplicate_id_refused() -> None:
    with refused("duplicate_id"):
        inspect(response(assertion("_r1")), root="Response", assertions=1)
    with refused("duplicate_id"):
        inspect(
            response(f"<samlp:Extensions>{assertion('_a1')}</samlp:Extensions>" + assertion("_a1")),
            root="Response",
            assertions=None,
        )


def test_ds_object_refused() -> None:
    signature = "<ds:Signature><ds:Object><x/></ds:Object></ds:Signature>"
    with refused("signature_object"):
        inspect(response(assertion(inner=signature)), root="Response", assertions=1)


def test_too_deep_nesting_refused() -> None:
    deep = "<x>" * (MAX_DEPTH + 1) + "</x>" * (MAX_DEPTH + 1)
    with refused("message_too_deep"):
        inspect(response(deep), root="Response", assertions=None)


def test_nesting_up_to_the_limit_passes() -> None:
    ok = "<x>" * MAX_DEPTH + "</x>" * MAX_DEPTH
    inspect(response(ok), root="Response", assertions=None)


def test_a_comment_below_the_deepest_element_does_not_count_as_nesting() -> None:
    ok = "<x>" * MAX_DEPTH + "<!-- c --><?pi x?>" + "</x>" * MAX_DEPTH
    inspect(response(ok), root="Response", assertions=None)


def test_an_element_too_deep_anywhere_is_refused() -> None:
    # Not on the first branch: the depth of every element counts.
    deep = "<y/>" * 3 + "<x>" * (MAX_DEPTH + 1) + "</x>" * (MAX_DEPTH + 1)
    with refused("message_too_deep"):
        inspect(response(f"<w>{'<v/>' * 2}</w>{deep}"), root="Response", assertions=None)


# -- status codes ------------------------------------------------------------------------------
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"


@pytest.mark.parametrize(
    ("status", "top", "second"),
    [
        (
            f'<samlp:Status><samlp:StatusCode Value="{STATUS}Responder">'
            f'<samlp:StatusCode Value="{STATUS}PartialLogout"/></samlp:StatusCode></samlp:Status>',
            f"{STATUS}Responder",
            f"{STATUS}PartialLogout",
        ),
        (
            f'<samlp:Status><samlp:StatusCode Value="{STATUS}Success"/></samlp:Status>',
            f"{STATUS}Success",
            "",
        ),
        # A StatusCode that is not inside the top-level one is no second-level code.
        (
            f'<samlp:Status><samlp:StatusCode Value="{STATUS}Responder"/>'
            f'<samlp:StatusMessage><samlp:StatusCode Value="{STATUS}AuthnFailed"/>'
            "</samlp:StatusMessage></samlp:Status>",
            f"{STATUS}Responder",
            "",
        ),
        (
            "<samlp:Status><samlp:StatusCode><samlp:StatusCode/></samlp:StatusCode></samlp:Status>",
            "",
            "",
        ),
        ("", "", ""),
    ],
)
def test_the_status_codes_are_read_by_level(status: str, top: str, second: str) -> None:
    doc = inspect(response(status), root="Response", assertions=None)
    assert (top_status(doc), second_status(doc)) == (top, second)
