"""The SAML attack catalogue (issue 8) against the live demo, with messages from
tests/support/hostile.py.

Each attack is checked for its whole outcome (test_saml_refusals.assert_refused): a 4xx page in
the student's language with an error code, no redirect, no SSO cookie, nothing on its way to or
received by any publisher, and the audit line's reason code. Where an attack is a variation of
a valid message, that valid message is accepted first, so the refusal is caused by the attack.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from lxml import etree

from broker.core.pseudonym import derive_chain_pseudonym
from tests.security.test_saml_refusals import (
    PendingLogin,
    _key_pair,
    _redis_or_skip,
    assert_refused,
    deliver,
    forged,
    start_login,
)
from tests.support.client import Browser, Page
from tests.support.forge import NS, SchoolForger, authn_request_id, redirect_message
from tests.support.hostile import (
    Signer,
    T,
    assertion_of,
    attribute_value,
    billion_laughs,
    deflate,
    encode,
    inject_comment,
    loopback_listener,
    name_id_of,
    nested,
    parse,
    signed,
    with_prolog,
    xsw,
)
from tests.support.live import (
    SCHOOL_NAMESPACE,
    SSO_COOKIE,
    LiveDemo,
    attributes_by_name,
    free_ports,
    running_demo,
)
from tests.support.saml_workers import (
    demo_school_forger,
    demo_school_signer,
    redis_settings,
    waiting_record,
    worker,
)

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("attacks-demo")) as live:
        yield live


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


@pytest.fixture(scope="module")
def signer(demo: LiveDemo) -> Signer:
    return demo_school_signer(demo)


def answer(
    demo: LiveDemo, school: SchoolForger, login: PendingLogin, **changes: object
) -> etree._Element:
    """The school's unsigned answer to `login` for Sanne, as an lxml tree to mutate."""
    return parse(forged(demo, school, login, sign=False, **changes))


def accepted_for(demo: LiveDemo, login: PendingLogin, page: Page) -> dict[str, Any]:
    """The page answers the publisher; carry the answer there and return what it received."""
    assert page.status == 200, page.text[:500]
    assert SSO_COOKIE in page.cookies_set
    assert demo.answers_publisher(page)
    at_publisher = login.browser.submit(page, demo.publishers["leesplank"].acs_url)
    assert at_publisher.status == 200
    return demo.received(login.browser, "leesplank")


def pseudonym_of(demo: LiveDemo, subject: str) -> str:
    return derive_chain_pseudonym(demo.pseudonym_key, "leermiddelen", SCHOOL_NAMESPACE, subject)


# -- the generator's messages are valid: the controls ---------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        {"response": True, "assertion": True},
        {"response": True, "assertion": False},
        {"response": False, "assertion": True},
    ],
    ids=[
        "both signed",
        "signed response, unsigned assertion",
        "signed assertion, unsigned response",
    ],
)
def test_a_hand_signed_response_is_accepted(
    demo: LiveDemo, school: SchoolForger, signer: Signer, where: dict[str, bool]
) -> None:
    login = start_login(demo)
    doc = signed(answer(demo, school, login), signer, **where)
    received = accepted_for(demo, login, deliver(demo, login, encode(doc)))
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


# -- signature wrapping ---------------------------------------------------------------------------

# Which defence stops each variant first: a duplicate ID (the firewall), a second assertion, a
# signature whose reference is not its parent, a ds:Object, or a signature that does not verify.
XSW_CASES = {
    "XSW1": (1, False, ("duplicate_id",)),
    "XSW1, fresh IDs": (1, True, ("reference_not_parent",)),
    "XSW2": (2, False, ("duplicate_id",)),
    "XSW2, fresh IDs": (2, True, ("reference_not_parent",)),
    "XSW3": (3, False, ("duplicate_id",)),
    "XSW3, fresh ID": (3, True, ("assertion_count",)),
    "XSW4": (4, False, ("duplicate_id",)),
    "XSW4, fresh ID": (4, True, ("assertion_count",)),
    "XSW5": (5, False, ("duplicate_id",)),
    "XSW5, fresh ID": (5, True, ("reference_not_parent",)),
    "XSW6": (6, False, ("duplicate_id",)),
    "XSW6, fresh ID": (6, True, ("reference_not_parent",)),
    "XSW7": (7, False, ("duplicate_id",)),
    "XSW7, fresh ID": (7, True, ("assertion_count",)),
    "XSW8": (8, False, ("signature_object",)),
    "XSW8, fresh ID": (8, True, ("signature_object",)),
}


@pytest.mark.parametrize("case", list(XSW_CASES))
def test_signature_wrapping_is_refused(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    variant, fresh_id, codes = XSW_CASES[case]
    login = start_login(demo)
    # XSW1-2 attack the Response's signature, XSW3-8 the assertion's; the other stays unsigned
    # so the one under attack is the only thing vouching for the identity.
    doc = signed(answer(demo, school, login), signer, response=variant <= 2, assertion=variant > 2)
    xsw(variant, doc, demo.school_subject("daan.devries"), fresh_id=fresh_id)
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, codes)
    assert "daan" not in page.text.lower()


@pytest.mark.parametrize("variant", [5, 6, 8])
def test_wrapping_that_keeps_ids_unique_and_one_assertion_is_refused(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    variant: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The evil assertion carries the original's signature and keeps its ID; the original is
    removed entirely. Only the signature itself is left to notice."""
    login = start_login(demo)
    doc = signed(answer(demo, school, login), signer, response=False)
    xsw(variant, doc, demo.school_subject("daan.devries"))
    for extra in doc.findall("saml:Assertion", NS)[1:]:
        doc.remove(extra)
    for holder in doc.iter(f"{{{NS['ds']}}}Object"):
        parent = holder.getparent()
        assert parent is not None
        parent.remove(holder)
    for signature in doc.iter(f"{{{NS['ds']}}}Signature"):
        for wrapped in signature.findall("saml:Assertion", NS):
            signature.remove(wrapped)
    assert len(doc.findall(".//saml:Assertion", NS)) == 1
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, ("bad_signature",))


def test_an_assertion_changed_under_a_signed_response_is_refused(
    demo: LiveDemo, school: SchoolForger, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    login = start_login(demo)
    doc = signed(answer(demo, school, login), signer, assertion=False)
    name_id_of(assertion_of(doc)).text = demo.school_subject("daan.devries")
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, ("bad_signature",))


def test_an_unsigned_assertion_next_to_a_signed_one_is_refused(
    demo: LiveDemo, school: SchoolForger, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    login = start_login(demo)
    doc = signed(answer(demo, school, login), signer, response=False)
    extra = assertion_of(answer(demo, school, login, subject=demo.school_subject("daan.devries")))
    doc.append(extra)
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, ("assertion_count",))


# -- keys -----------------------------------------------------------------------------------------


def test_a_key_embedded_in_the_message_is_not_trusted(
    demo: LiveDemo, school: SchoolForger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed by a stranger whose certificate rides along in KeyInfo: only the school's
    metadata counts."""
    key, cert = _key_pair(tmp_path, "stranger")
    login = start_login(demo)
    doc = signed(answer(demo, school, login), Signer(key, cert, key_info_cert=cert))
    assert doc.find(".//ds:X509Certificate", NS) is not None
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, ("bad_signature",))


# -- algorithms and transforms ----------------------------------------------------------------------


def _school_cert_pem(demo: LiveDemo) -> bytes:
    return (demo.directory / "peers" / "school.crt").read_bytes()


ALGORITHM_CASES: dict[str, tuple[dict[str, Any], str]] = {  # Signer knobs, refusal code
    "RSA-SHA1": ({"method": T.TransformRsaSha1}, "signature_algorithm_refused"),
    "RSA-MD5": ({"method": T.TransformRsaMd5}, "signature_algorithm_refused"),
    "SHA-1 digest": ({"digest": T.TransformSha1}, "digest_algorithm_refused"),
    "MD5 digest": ({"digest": T.TransformMd5}, "digest_algorithm_refused"),
    # Key confusion: HMAC keyed with the school's public certificate, which anybody can read.
    "HMAC-SHA256 under the public cert": (
        {"method": T.TransformHmacSha256, "hmac": True},
        "signature_algorithm_refused",
    ),
    "XSLT transform": (
        {"extra_transforms": (T.TransformXslt,), "stylesheet": True},
        "transforms_refused",
    ),
    "reference to another ID": ({"reference": True}, "reference_not_parent"),
}


@pytest.mark.parametrize("case", list(ALGORITHM_CASES))
def test_weak_algorithms_and_transforms_are_refused(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options, code = ALGORITHM_CASES[case]
    knobs = dict(options)
    if knobs.pop("hmac", False):
        knobs["hmac_key"] = _school_cert_pem(demo)
    login = start_login(demo)
    doc = answer(demo, school, login)
    if knobs.pop("reference", False):
        knobs["reference_id"] = assertion_of(doc).get("ID")
    weak = Signer(signer.key_file, signer.cert_file, **knobs)
    # The Response is signed weakly over a well-signed assertion: the weak signature alone must
    # be enough to refuse the message.
    signer.sign(assertion_of(doc))
    weak.sign(doc)
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, (code,))


# -- comment injection --------------------------------------------------------------------------


def test_a_comment_in_the_name_id_does_not_truncate_the_identity(
    demo: LiveDemo, school: SchoolForger, signer: Signer
) -> None:
    """The school vouches for `<victim>.attacker`; a comment after `<victim>` survives the
    signature (exclusive c14n drops comments). The broker reads the whole value."""
    victim = demo.school_subject("daan.devries")
    login = start_login(demo)
    doc = signed(answer(demo, school, login, subject=f"{victim}.attacker"), signer)
    inject_comment(name_id_of(assertion_of(doc)), len(victim))
    assert name_id_of(assertion_of(doc)).text == victim
    received = accepted_for(demo, login, deliver(demo, login, encode(doc)))
    value = received["name_id"]["value"]
    assert value == pseudonym_of(demo, f"{victim}.attacker")
    assert value != pseudonym_of(demo, victim)


def test_a_comment_in_an_attribute_value_does_not_truncate_it(
    demo: LiveDemo, school: SchoolForger, signer: Signer
) -> None:
    login = start_login(demo)
    doc = answer(demo, school, login, attributes={"givenName": ["Daan.attacker"]})
    signed(doc, signer)
    inject_comment(attribute_value(doc, "givenName"), len("Daan"))
    received = accepted_for(demo, login, deliver(demo, login, encode(doc)))
    values = [v for a in attributes_by_name(received).values() for v in a["values"]]
    assert "Daan.attacker" in values
    assert "Daan" not in values


# -- DTDs: external entities, entity bombs --------------------------------------------------------


def _xxe_prologs(url: str) -> dict[str, tuple[str, str | None]]:
    return {
        "external entity": (f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]>', "&x;"),
        "parameter entity": (f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]>', None),
        "external DTD": (f'<!DOCTYPE r SYSTEM "{url}">', None),
        "billion laughs": (billion_laughs(), "&lol9;"),
    }


@pytest.mark.parametrize(
    "case", ["external entity", "parameter entity", "external DTD", "billion laughs"]
)
def test_a_dtd_in_a_school_response_is_refused_and_nothing_is_fetched(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with loopback_listener() as listener:
        prolog, reference = _xxe_prologs(listener.url)[case]
        login = start_login(demo)
        doc = signed(answer(demo, school, login), signer)
        page = deliver(demo, login, encode(with_prolog(doc, prolog, reference=reference)))
        assert_refused(demo, login.browser, page, caplog, ("doctype_refused",))
    assert listener.hits == []


def _authn_request_xml(demo: LiveDemo) -> etree._Element:
    """A plain AuthnRequest of the demo publisher leesplank (no signature required)."""
    leesplank = demo.publishers["leesplank"]
    return etree.fromstring(
        f'<samlp:AuthnRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" '
        f'ID="_hostile-request" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" '
        f'Destination="{demo.broker_url}/saml/idp/sso" '
        f'AssertionConsumerServiceURL="{leesplank.acs_url}">'
        f"<saml:Issuer>{leesplank.entity_id}</saml:Issuer></samlp:AuthnRequest>".encode()
    )


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("case", ["external entity", "parameter entity", "billion laughs"])
def test_a_dtd_in_an_authn_request_is_refused_and_nothing_is_fetched(
    demo: LiveDemo, binding: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    with loopback_listener() as listener:
        prolog, reference = _xxe_prologs(listener.url)[case]
        request = _authn_request_xml(demo)
        if reference is not None:
            issuer = request.find("saml:Issuer", NS)
            assert issuer is not None
            issuer.text = "@@REF@@"
        xml = etree.tostring(request).decode().replace("@@REF@@", reference or "")
        data = f"{prolog}{xml}".encode()
        browser = Browser()
        sso = f"{demo.broker_url}/saml/idp/sso"
        if binding == "redirect":
            page = browser.get(f"{sso}?{urlencode({'SAMLRequest': deflate(data)})}")
        else:
            page = browser.post(sso, {"SAMLRequest": base64.b64encode(data).decode()})
        assert_refused(demo, browser, page, caplog, ("doctype_refused",))
    assert listener.hits == []


# -- size and shape -------------------------------------------------------------------------------


def test_a_deflate_bomb_at_the_sso_endpoint_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """20 MB behind 20 KB of deflate (as much as fits in a URL): refused at the 128 KiB cap,
    without inflating the rest."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"<" + b"a" * 20_000_000) + compressor.flush()
    value = base64.b64encode(bomb).decode()
    assert len(value) < 32 * 1024
    browser = Browser()
    page = browser.get(f"{demo.broker_url}/saml/idp/sso?{urlencode({'SAMLRequest': value})}")
    assert_refused(demo, browser, page, caplog, ("message_too_large",))


def test_an_oversized_school_response_is_refused(
    demo: LiveDemo, school: SchoolForger, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    login = start_login(demo)
    doc = answer(demo, school, login, attributes={"givenName": ["x" * 300_000]})
    page = deliver(demo, login, encode(signed(doc, signer)))
    assert_refused(demo, login.browser, page, caplog, ("message_too_large",))


def test_a_body_over_the_request_cap_is_refused_before_parsing(demo: LiveDemo) -> None:
    login = start_login(demo)
    page = deliver(demo, login, "A" * (600 * 1024))
    assert page.status == 413, page.status
    assert page.location is None
    assert SSO_COOKIE not in login.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)


def test_a_deeply_nested_school_response_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    login = start_login(demo)
    page = deliver(demo, login, encode(nested(10_000)))
    assert_refused(demo, login.browser, page, caplog, ("message_too_deep", "malformed_message"))


def test_a_deeply_nested_authn_request_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    query = urlencode({"SAMLRequest": deflate(nested(200, root="AuthnRequest"))})
    page = browser.get(f"{demo.broker_url}/saml/idp/sso?{query}")
    assert_refused(demo, browser, page, caplog, ("message_too_deep",))


# -- binding to this login --------------------------------------------------------------------------


def test_an_unsolicited_response_is_refused(
    demo: LiveDemo, school: SchoolForger, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """IdP-initiated: no InResponseTo, and no RelayState naming a login of this browser."""
    login = start_login(demo)
    doc = answer(demo, school, login, in_response_to=None)
    message = encode(signed(doc, signer))
    page = login.browser.post(demo.acs_url, {"SAMLResponse": message})
    assert_refused(demo, login.browser, page, caplog, ("unsolicited",))
    caplog.clear()
    page = deliver(demo, login, message)  # with the login's RelayState, still no InResponseTo
    assert_refused(
        demo, login.browser, page, caplog, ("unsolicited", "wrong_recipient", "response_refused")
    )


@pytest.mark.parametrize(
    "relay_state", ["https://evil.example/", "//evil.example", "javascript:alert(1)"]
)
def test_a_relay_state_url_at_the_acs_goes_nowhere(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    relay_state: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login = start_login(demo)
    message = encode(signed(answer(demo, school, login), signer))
    page = login.browser.post(demo.acs_url, {"SAMLResponse": message, "RelayState": relay_state})
    assert_refused(demo, login.browser, page, caplog, ("state_expired",))
    assert "evil.example" not in page.text and "javascript:" not in page.text


# -- replay -------------------------------------------------------------------------------------


def test_fifty_parallel_copies_of_one_response_complete_one_login(
    demo: LiveDemo, school: SchoolForger, signer: Signer
) -> None:
    one_of_parallel_copies_completes(demo, school, signer, 50)


def one_of_parallel_copies_completes(
    demo: LiveDemo, school: SchoolForger, signer: Signer, copies: int
) -> None:
    """`copies` copies of one signed answer posted at once: exactly one completes the login,
    the others are refused (4xx) and carry no answer for the service."""
    login = start_login(demo)
    message = encode(signed(answer(demo, school, login), signer))
    cookies = login.browser.cookies(demo.broker_url)
    results: list[tuple[int, str]] = []
    start = threading.Barrier(copies)

    def post() -> None:
        start.wait()
        response = requests.post(
            demo.acs_url,
            data={"SAMLResponse": message, "RelayState": login.relay_state},
            cookies=cookies,
            allow_redirects=False,
            timeout=60,
        )
        # The winner's answer, or (a first visit in the session) the information notice.
        answer = response.text or response.headers.get("Location", "")
        results.append((response.status_code, answer))

    threads = [threading.Thread(target=post) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _ in results)
    won = [text for status, text in results if status == 200]
    assert len(won) == 1, statuses
    assert all(400 <= status < 500 for status in statuses if status != 200), statuses
    text = won[0]
    if "data-notice-continue" in text:
        assert 'data-page-address="/notice/' in text  # the information notice, then the answer
    else:
        assert text.count('name="SAMLResponse"') == 1
    assert all("SAMLResponse" not in text for status, text in results if status >= 400)


def _pending_on(demo: LiveDemo, instance: str) -> PendingLogin:
    """A login of leesplank that reaches the school through the broker at `instance` (a worker
    behind the demo broker's own origin)."""
    browser = Browser()
    page = browser.get(
        f"{demo.publishers['leesplank'].base_url}/login?school={demo.school_entity_id}",
        stop=lambda url: url.startswith(demo.broker_url),
    )
    assert page.location is not None
    picker = browser.get(
        page.location.replace(demo.broker_url, instance, 1),
        stop=lambda url: url.startswith(demo.school_url),
    )
    assert picker.location is not None and picker.location.startswith(f"{demo.school_url}/sso")
    _, params = redirect_message(picker.location)
    return PendingLogin(browser, authn_request_id(picker.location), params["RelayState"])


@pytest.mark.redis
def test_a_replay_after_a_restart_is_refused(
    demo: LiveDemo, school: SchoolForger, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepted by a broker on Redis that then stops; a new process on the same store refuses
    the same assertion, even when it holds a login record that waits for exactly it."""
    store = _redis_or_skip()
    settings = redis_settings(demo, REDIS_URL, "restart")
    url = f"http://127.0.0.1:{free_ports(1)}"
    try:
        with worker(settings, url):
            login = _pending_on(demo, url)
            message = encode(signed(answer(demo, school, login), signer))
            page = login.browser.post(
                f"{url}/saml/sp/acs", {"SAMLResponse": message, "RelayState": login.relay_state}
            )
            assert page.status == 200, page.text[:500]
            assert demo.answers_publisher(page)
        with worker(settings, url) as restarted:
            waiting = waiting_record(restarted, login.browser, demo, login.request_id)
            page = login.browser.post(
                f"{url}/saml/sp/acs", {"SAMLResponse": message, "RelayState": waiting}
            )
            assert_refused(demo, login.browser, page, caplog, ("replay",), had_session=True)
    finally:
        store.close()


# -- cookies and headers along a real login --------------------------------------------------------


def _set_cookie(page: Page, name: str) -> str:
    headers = page.response.raw.headers.getlist("Set-Cookie")
    found = [h for h in headers if h.startswith(f"{name}=")]
    assert len(found) == 1, headers
    return str(found[0])


def test_login_cookies_are_flagged(demo: LiveDemo, school: SchoolForger, signer: Signer) -> None:
    """The browser-state and SSO cookies: host-only (__Host-), Secure, HttpOnly, SameSite=None
    (the school's POST comes from another site), both session cookies; kb_school Lax."""
    browser = Browser()
    sso = browser.get(
        f"{demo.publishers['leesplank'].base_url}/login?school={demo.school_entity_id}",
        stop=lambda url: url.startswith(demo.school_url),
    )
    assert sso.url.startswith(demo.broker_url) and sso.location is not None
    _, params = redirect_message(sso.location)
    login = PendingLogin(browser, authn_request_id(sso.location), params["RelayState"])
    browser_cookie = _set_cookie(sso, "__Host-kb_browser")
    for flag in ("Secure", "HttpOnly", "SameSite=None", "Path=/"):
        assert flag in browser_cookie, browser_cookie
    assert "Domain=" not in browser_cookie and "Max-Age" not in browser_cookie
    page = deliver(demo, login, encode(signed(answer(demo, school, login), signer)))
    assert page.status == 200
    sso_cookie = _set_cookie(page, SSO_COOKIE)
    for flag in ("Secure", "HttpOnly", "SameSite=None", "Path=/"):
        assert flag in sso_cookie, sso_cookie
    # A session cookie: closing the browser ends it (a shared school laptop, the next student).
    assert "Max-Age" not in sso_cookie and "Expires" not in sso_cookie, sso_cookie
    assert page.response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.response.headers["Content-Security-Policy"]
