"""Redirect-binding signatures through the real routes, in both directions.

The review's finding, as regression tests: a query signature must verify over the query as
the browser delivered it (SAML bindings 3.4.4.1), whichever way the sender URL-encoded it (PHP's
`%7E` for `~`, .NET's lowercase hex, `%20` for a space), and with ECDSA as with RSA. The sender
here is hand-built (tests/support/redirect_signer.py) and signs as the demo publisher Leesplank
and as the demo school, with an RSA and an ECDSA P-256 key added to their metadata beside their
own (so every listed key is tried). Messages are sent byte for byte (`verbatim`): requests and
urllib3 would normalise the very encodings under test.

- to the IdP (`/saml/idp/sso`, `/saml/idp/slo`): AuthnRequest, LogoutRequest, LogoutResponse;
- to the SP (`/saml/sp/slo`): a school's LogoutRequest and LogoutResponse;
- from the broker: its own Redirect messages (LogoutRequest to a service and to the school,
  LogoutResponse to the service that started a logout) verify with the broker's verifier over
  the query as sent and with pysaml2's.

Each forgery is refused with its reason code and changes nothing: no session begun or ended,
an outstanding logout request still outstanding.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from lxml import etree
from saml2.sigver import verify_redirect_signature

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.saml.redirect_query import read_redirect_query
from broker.saml.redirect_signature import check_query_signature
from broker.saml.xmlsig import _AllowListRSACrypto
from broker.web.browser import SSO_COOKIE
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, running_demo
from tests.support.logout import (
    answer_of,
    carry_saml_posts,
    finish_logout,
    read_final,
    run_id_of,
)
from tests.support.redirect_signer import (
    DS,
    ECDSA_SHA1,
    ENCODERS,
    MD,
    RSA_SHA1,
    Signer,
    authn_request,
    logout_request,
    logout_response,
    make_signer,
    query_parts,
    sign_parts,
    signed_query,
    with_signing_certs,
)

# pysaml2 writes metadata certificates to NamedTemporaryFile objects (sigver.make_temp) and leaves
# closing them to the garbage collector, which warns; not ours to fix (as in test_xmlsig.py).
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.usefixtures("collect_pysaml2_temp_files"),
]

STUDENT = "sanne.jansen"
LEESPLANK = "Leesplank (demo publisher)"
# The reviewer's RelayState, and one with the characters encoders disagree on.
RELAY_STATE = "https://sp.example/~les/1"
RESERVED = "les 3 & 4: 100% klaar? ça va ~(*)!' https://les.example/a?b=1&c=%2F#x"
KINDS = ("rsa", "p256")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("redirect-signatures")) as live:
        yield live


@pytest.fixture(scope="module")
def signers(demo: LiveDemo) -> dict[str, Signer]:
    """An RSA and an ECDSA P-256 key, both in Leesplank's and in the demo school's metadata,
    after the keys they already list."""
    signers = {kind: make_signer(kind) for kind in KINDS}
    certs = [signer.cert for signer in signers.values()]
    registry = demo.registry
    sp = registry.registered_metadata("sp", "leesplank")
    registry.update_service_metadata("leesplank", with_signing_certs(sp, "SPSSODescriptor", certs))
    idp = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    registry.update_school_metadata(
        DEMO_SCHOOL_ID, with_signing_certs(idp, "IDPSSODescriptor", certs)
    )
    return signers


@pytest.fixture(scope="module")
def stranger() -> Signer:
    """Claims to be Leesplank or the school; its key is in nobody's metadata."""
    return make_signer("p256")


@dataclass(frozen=True)
class Urls:
    sso: str
    idp_slo: str
    sp_slo: str
    leesplank: str  # entity id
    leesplank_acs: str
    leesplank_slo: str
    school: str  # entity id
    school_slo: str


@pytest.fixture(scope="module")
def urls(demo: LiveDemo) -> Urls:
    leesplank = demo.publishers["leesplank"]
    return Urls(
        f"{demo.broker_url}/saml/idp/sso",
        f"{demo.broker_url}/saml/idp/slo",
        f"{demo.broker_url}/saml/sp/slo",
        leesplank.entity_id,
        leesplank.acs_url,
        f"{leesplank.base_url}/slo",
        demo.school_entity_id,
        f"{demo.school_url}/slo",
    )


# -- helpers -----------------------------------------------------------------------------------


def _signing_certs(metadata: str) -> list[str]:
    root = etree.fromstring(metadata.encode())
    return [
        "".join((cert.text or "").split())
        for key in root.iter(f"{{{MD}}}KeyDescriptor")
        if key.get("use") in (None, "signing")
        for cert in key.iter(f"{{{DS}}}X509Certificate")
    ]


def assert_both_verify(url: str, certs: list[str]) -> dict[str, str]:
    """A Redirect URL the broker made verifies with its own verifier, over the query as it
    stands, and with pysaml2's (which re-encodes, as a pysaml2 peer does); its values."""
    query_string = urlsplit(url).query
    query = read_redirect_query(query_string.encode())
    param = "SAMLRequest" if query.has("SAMLRequest") else "SAMLResponse"
    check_query_signature(
        certs, (param, query.value(param) or ""), query.value("RelayState"), query
    )
    values = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    assert any(verify_redirect_signature(values, _AllowListRSACrypto(None), c) for c in certs)
    return values


def _message_id(deflated_value: str) -> str:
    xml = zlib.decompress(base64.b64decode(deflated_value), -15)
    message_id = etree.fromstring(xml).get("ID")
    assert isinstance(message_id, str) and message_id
    return message_id


def assert_refused(page: Page, caplog: pytest.LogCaptureFixture, code: str) -> None:
    assert 400 <= page.status < 500, (page.status, page.text[:300])
    assert page.location is None, "a refusal redirects nowhere"
    assert not any("SAMLResponse" in form.fields for form in page.forms), "nothing to carry"
    assert f"refused code={code} " in caplog.text, caplog.text[-2000:]
    caplog.clear()


def _logged_in(demo: LiveDemo, *publishers: str) -> Browser:
    browser = Browser()
    for publisher in publishers:
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    return browser


def _session_stands(demo: LiveDemo, browser: Browser) -> bool:
    token = browser.cookies(demo.broker_url).get(SSO_COOKIE)
    return token is not None and demo.broker.flow.session(token) is not None


def _forgeries(
    param: str, xml: str, relay_state: str, signer: Signer, stranger: Signer, other_xml: str
) -> dict[str, tuple[str, str]]:
    """Each way to get a query signature wrong, as (query, the code it must be refused with),
    every one of them PHP-encoded as the genuine messages of these tests are."""
    php = "php"
    good = signed_query(param, xml, relay_state, signer, encoder=php)
    sigalg = signer.sigalg
    parts = query_parts(param, xml, relay_state, sigalg, php)
    other = signed_query(param, other_xml, relay_state, signer, encoder=php)
    message = next(p for p in good.split("&") if p.startswith(f"{param}="))
    sha1 = RSA_SHA1 if "rsa" in sigalg else ECDSA_SHA1
    return {
        "tampered RelayState": (
            good.replace(ENCODERS[php](relay_state), "changed", 1),
            "bad_signature",
        ),
        "another message under the signature": (
            good.replace(message, other.split("&")[0], 1),
            "bad_signature",
        ),
        "re-encoded the Python way": (
            "&".join(p.replace("%7E", "~") for p in good.split("&")),
            "bad_signature",
        ),
        "signed in another order": (
            sign_parts([parts[1], parts[0], parts[2]], signer, sigalg, php),
            "bad_signature",
        ),
        "SigAlg given twice": (f"{good}&SigAlg=x", "duplicate_parameter"),
        "RelayState given twice": (f"{good}&RelayState=x", "duplicate_parameter"),
        "message given twice, disguised": (
            f"{good}&%53{param[1:]}={other.split('=', 1)[1].split('&')[0]}",
            "duplicate_parameter",
        ),
        "another key": (
            signed_query(param, xml, relay_state, stranger, encoder=php),
            "bad_signature",
        ),
        "SHA-1": (
            signed_query(param, xml, relay_state, signer, encoder=php, sigalg=sha1),
            "weak_algorithm",
        ),
    }


# -- AuthnRequest (publisher to broker): a whole login ----------------------------------------


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("relay_state", [RELAY_STATE, RESERVED])
@pytest.mark.parametrize("kind", KINDS)
def test_an_authn_request_signed_and_encoded_by_another_stack_logs_in(
    demo: LiveDemo,
    signers: dict[str, Signer],
    urls: Urls,
    kind: str,
    relay_state: str,
    encoder: str,
) -> None:
    xml = authn_request(urls.leesplank, urls.sso, urls.leesplank_acs)
    query = signed_query("SAMLRequest", xml, relay_state, signers[kind], encoder=encoder)
    browser = Browser()
    page = browser.get(f"{urls.sso}?{query}", verbatim=True)
    assert page.status == 200, page.text[:500]
    if demo.shows_discovery(page):
        page = demo.choose_school(browser, page)
    page = demo.pick(browser, page, STUDENT)
    answer = page.form(urls.leesplank_acs).fields
    assert answer["RelayState"] == relay_state  # echoed byte-exact, reserved characters and all
    response = etree.fromstring(base64.b64decode(answer["SAMLResponse"]))
    assert response.get("InResponseTo") == etree.fromstring(xml.encode()).get("ID")


# -- every message, set up and waiting to be sent ---------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """A message for the broker, ready to go: where, what (and a second genuine message for
    the forgeries to mix in), how to tell it changed nothing, and what it must do once sent."""

    browser: Browser
    endpoint: str
    param: str
    xml: str
    other_xml: str
    unchanged: Callable[[], bool]
    took_effect: Callable[[Page], None]


def _authn_request(demo: LiveDemo, urls: Urls) -> Exchange:
    browser = Browser()

    def took_effect(page: Page) -> None:
        assert page.status == 200 and demo.shows_discovery(page), page.text[:300]

    return Exchange(
        browser,
        urls.sso,
        "SAMLRequest",
        authn_request(urls.leesplank, urls.sso, urls.leesplank_acs),
        authn_request(urls.leesplank, urls.sso, urls.leesplank_acs),
        lambda: not browser.cookies(demo.broker_url),  # no login begun, no session
        took_effect,
    )


def _ends_the_session(demo: LiveDemo, browser: Browser) -> Callable[[Page], None]:
    def took_effect(page: Page) -> None:
        assert page.url.startswith(f"{demo.broker_url}/logout/"), (page.url, page.text[:300])
        assert not _session_stands(demo, browser)

    return took_effect


def _ask(
    demo: LiveDemo, browser: Browser, endpoint: str, xml: str, took_effect: Callable[[Page], None]
) -> Exchange:
    """A LogoutRequest for `browser`'s session; nothing changed while that session stands."""
    other = xml.replace('ID="', 'ID="_other', 1)
    return Exchange(
        browser,
        endpoint,
        "SAMLRequest",
        xml,
        other,
        lambda: _session_stands(demo, browser),
        took_effect,
    )


def _service_logout_request(demo: LiveDemo, urls: Urls) -> Exchange:
    browser = _logged_in(demo, "leesplank")
    given = demo.received(browser, "leesplank")["name_id"]
    xml = logout_request(
        urls.leesplank,
        urls.idp_slo,
        given["value"],
        sp_name_qualifier=given["sp_name_qualifier"] or "",
    )
    ended = _ends_the_session(demo, browser)

    def took_effect(page: Page) -> None:
        ended(page)
        outcome = finish_logout(browser, page)
        assert outcome.school == "confirmed"
        # Broker to service: the signed LogoutResponse, its RelayState echoed.
        answer = answer_of(outcome.page)
        assert isinstance(answer, str) and answer.startswith(urls.leesplank_slo), answer
        certs = _signing_certs(demo.broker.saml_entities.idp_metadata())
        assert assert_both_verify(answer, certs)["RelayState"] == RESERVED

    return _ask(demo, browser, urls.idp_slo, xml, took_effect)


def _answer(
    demo: LiveDemo,
    browser: Browser,
    sender: tuple[str, str],
    request_id: str,
    took_effect: Callable[[Page], None],
) -> Exchange:
    """A LogoutResponse from `sender` (its entity id, the broker endpoint it answers at) to the
    broker's request `request_id`; nothing changed while that request is still outstanding."""
    issuer, endpoint = sender
    return Exchange(
        browser,
        endpoint,
        "SAMLResponse",
        logout_response(issuer, endpoint, request_id),
        logout_response(issuer, endpoint, request_id),
        lambda: demo.broker.logout.outstanding(request_id) is not None,
        took_effect,
    )


_FRAME = re.compile(r'<iframe[^>]*\bsrc="([^"]+)"[^>]*data-logout-frame')


def _service_logout_response(demo: LiveDemo, urls: Urls) -> Exchange:
    """Logged in at Leesplank and Rekenroute, the student logs out at Rekenroute; Leesplank's
    iframe brings it the broker's LogoutRequest (checked here), which Leesplank answers."""
    browser = _logged_in(demo, "leesplank", "rekenroute")
    started = browser.get(f"{demo.publishers['rekenroute'].base_url}/logout")
    run_id = run_id_of(started)
    frames = [
        browser.get(urljoin(started.url, unescape(src)), follow=False)
        for src in _FRAME.findall(started.text)
    ]
    asked = [f.location for f in frames if (f.location or "").startswith(urls.leesplank_slo)]
    assert len(asked) == 1 and asked[0], "one LogoutRequest for Leesplank"
    certs = _signing_certs(demo.broker.saml_entities.idp_metadata())
    request_id = _message_id(assert_both_verify(asked[0], certs)["SAMLRequest"])

    def took_effect(page: Page) -> None:
        assert 'data-logout-frame-status="confirmed"' in page.text, page.text[:300]
        assert demo.broker.logout.outstanding(request_id) is None
        final = browser.get(f"{demo.broker_url}/logout/{run_id}/next")
        assert read_final(final).services == {LEESPLANK: "confirmed"}

    return _answer(demo, browser, (urls.leesplank, urls.idp_slo), request_id, took_effect)


def _school_logout_request(demo: LiveDemo, urls: Urls) -> Exchange:
    browser = _logged_in(demo, "leesplank")
    xml = logout_request(urls.school, urls.sp_slo, demo.school_subject(STUDENT))
    return _ask(demo, browser, urls.sp_slo, xml, _ends_the_session(demo, browser))


def _school_logout_response(demo: LiveDemo, urls: Urls) -> Exchange:
    """The student logs out at Leesplank; the broker's LogoutRequest to the school (checked
    here) is held back, and the school answers it."""
    browser = _logged_in(demo, "leesplank")
    to_school = browser.get(
        f"{demo.publishers['leesplank'].base_url}/logout",
        stop=lambda url: url.startswith(urls.school_slo),
    )
    assert to_school.location and to_school.location.startswith(urls.school_slo)
    run_id = run_id_of(to_school)
    certs = _signing_certs(demo.broker.saml_entities.sp_metadata())
    request_id = _message_id(assert_both_verify(to_school.location, certs)["SAMLRequest"])

    def took_effect(page: Page) -> None:
        assert page.url == f"{demo.broker_url}/logout/{run_id}/done", page.text[:300]
        assert read_final(page).school == "confirmed"

    return _answer(demo, browser, (urls.school, urls.sp_slo), request_id, took_effect)


LOGOUT_MESSAGES: dict[str, Callable[[LiveDemo, Urls], Exchange]] = {
    "service LogoutRequest": _service_logout_request,
    "service LogoutResponse": _service_logout_response,
    "school LogoutRequest": _school_logout_request,
    "school LogoutResponse": _school_logout_response,
}
EVERY_MESSAGE = {"AuthnRequest": _authn_request, **LOGOUT_MESSAGES}


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("message", list(LOGOUT_MESSAGES))
def test_a_logout_message_signed_and_encoded_by_another_stack_is_taken(
    demo: LiveDemo, signers: dict[str, Signer], urls: Urls, message: str, kind: str, encoder: str
) -> None:
    exchange = LOGOUT_MESSAGES[message](demo, urls)
    query = signed_query(exchange.param, exchange.xml, RESERVED, signers[kind], encoder=encoder)
    exchange.took_effect(exchange.browser.get(f"{exchange.endpoint}?{query}", verbatim=True))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("message", list(EVERY_MESSAGE))
def test_forged_messages_are_refused_and_change_nothing(
    demo: LiveDemo,
    signers: dict[str, Signer],
    stranger: Signer,
    urls: Urls,
    message: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exchange = EVERY_MESSAGE[message](demo, urls)
    signer = signers[kind]
    forgeries = _forgeries(
        exchange.param, exchange.xml, RESERVED, signer, stranger, exchange.other_xml
    )
    for name, (query, code) in forgeries.items():
        page = exchange.browser.get(f"{exchange.endpoint}?{query}", verbatim=True)
        assert_refused(page, caplog, code)
        assert exchange.unchanged(), name
    # Nothing was used up: the genuine message, after all that, still does what it does.
    query = signed_query(exchange.param, exchange.xml, RESERVED, signer, encoder="php")
    exchange.took_effect(exchange.browser.get(f"{exchange.endpoint}?{query}", verbatim=True))


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_the_services_own_messages_verify_with_other_keys_listed_before_its_own(
    demo: LiveDemo, signers: dict[str, Signer], binding: str
) -> None:
    """Leesplank's metadata lists an RSA and an EC key of ours before its own: its own
    pysaml2-signed LogoutRequest still verifies, by query signature and by XML signature."""
    assert signers  # the keys are in the metadata
    browser = _logged_in(demo, "leesplank")
    query = "?binding=post" if binding == "post" else ""
    page = carry_saml_posts(
        browser, browser.get(f"{demo.publishers['leesplank'].base_url}/logout{query}")
    )
    assert page.url.startswith(f"{demo.broker_url}/logout/"), (page.url, page.text[:300])
    assert not _session_stands(demo, browser)
