"""What the broker does with a publisher's AuthnRequest, end to end against the live demo.

The service here is a real pysaml2 SP (its own key, its own metadata in the registry) that
requires signed requests and has three ACS endpoints, one of them the metadata's default. Its
requests are made by pysaml2 and its responses parsed by pysaml2; a refusal is checked for its
outcome (a 4xx page, the reason code in the audit line, nothing on its way to the service).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import logging
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import xmlsec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from broker.certificates import write_pair
from broker.core.model import Declaration, School, Service
from tests.support.client import Browser, Page
from tests.support.forge import (
    NS,
    authn_request_id,
    redirect_message,
    saml_time,
    verify_redirect_signature,
    verify_signature,
)
from tests.support.live import PAIRWISE_ID, PERSISTENT, SSO_COOKIE, LiveDemo, free_ports
from tests.support.saml_workers import demo_school_forger

with warnings.catch_warnings():
    # pysaml2 7.5.5 touches cryptography's deprecated CFB mode at import.
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.response import StatusError
    from saml2.saml import (
        NAMEID_FORMAT_EMAILADDRESS,
        NAMEID_FORMAT_TRANSIENT,
        AuthnContextClassRef,
    )
    from saml2.samlp import IDPEntry, IDPList, RequestedAuthnContext, Scoping
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from broker.saml import xmlsig_policy
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto

SERVICE_ID = "authn-request-tests"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
REQUEST_UNSUPPORTED = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
NO_AVAILABLE_IDP = "urn:oasis:names:tc:SAML:2.0:status:NoAvailableIDP"
METADATA_TYPE = "application/samlmetadata+xml"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SHIBMD = "urn:mace:shibboleth:metadata:1.0"
DS = "http://www.w3.org/2000/09/xmldsig#"
UID = "sanne.jansen"
CHAIN = "leermiddelen"
WEAK_SIGALGS = {
    "rsa-sha1": SIG_RSA_SHA1,
    "rsa-md5": "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    "hmac-sha256": "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
}
TRICKY_RELAY_STATE = "ga naar les 3 & 4: 100% klaar — ça va? ünï https://les.example/a?b=1&c=%2F#x"

# pysaml2 writes metadata certificates to NamedTemporaryFile objects (sigver.make_temp) and leaves
# closing them to the garbage collector, which warns; not ours to fix (as in test_xmlsig.py).
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_pysaml2_temp_files() -> Iterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class ServiceSp:
    """A publisher's pysaml2 SP as far as messages go: nothing listens on its URLs."""

    def __init__(
        self,
        base_url: str,
        key_file: Path,
        cert_file: Path,
        idp_metadata: str,
        *,
        signs: bool,
        slo: bool = False,
    ) -> None:
        """`slo`: the metadata names a SingleLogoutService (HTTP-Redirect) at `slo_url`."""
        enable_inprocess_crypto()
        self.base_url = base_url
        self.entity_id = f"{base_url}/metadata"
        self.acs = {1: f"{base_url}/acs-one", 2: f"{base_url}/acs-two", 3: f"{base_url}/acs-three"}
        self.default_acs = self.acs[2]
        self.slo_url = f"{base_url}/slo"
        self.key_file = key_file
        self.cert_file = cert_file
        endpoints: dict[str, list[tuple[str, str] | tuple[str, str, int]]] = {
            "assertion_consumer_service": [
                (url, BINDING_HTTP_POST, index) for index, url in self.acs.items()
            ]
        }
        if slo:
            endpoints["single_logout_service"] = [(self.slo_url, BINDING_HTTP_REDIRECT)]
        config = SPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "name": "Authn request tests (test publisher)",
                "key_file": str(key_file),
                "cert_file": str(cert_file),
                "crypto_backend": CRYPTO_BACKEND_NAME,
                "metadata": {"inline": [idp_metadata]},
                "allow_unknown_attributes": True,
                "service": {
                    "sp": {
                        "endpoints": endpoints,
                        "authn_requests_signed": signs,
                        "want_response_signed": True,
                        "want_assertions_signed": True,
                        "allow_unsolicited": False,
                        "signing_algorithm": SIG_RSA_SHA256,
                        "digest_algorithm": DIGEST_SHA256,
                    }
                },
            }
        )
        self.client = Saml2Client(config=config)

    def metadata(self) -> str:
        """AuthnRequestsSigned as configured; the second ACS is the default (not the first)."""
        descriptor = entity_descriptor(self.client.config)
        for acs in descriptor.spsso_descriptor.assertion_consumer_service:
            if acs.location == self.default_acs:
                acs.is_default = "true"
        return str(descriptor)

    # -- requests --------------------------------------------------------------------------
    def authn_request(
        self,
        destination: str,
        *,
        name_id_format: str | None = None,
        acs: str = "url",
        **extra: Any,
    ) -> samlp.AuthnRequest:
        """An unsigned AuthnRequest; `acs` is "url" (the first ACS), "none" or an index."""
        if acs.isdigit():
            extra["assertion_consumer_service_index"] = acs
        elif acs == "url":
            extra["assertion_consumer_service_url"] = self.acs[1]
        _, request = self.client.create_authn_request(
            destination, nameid_format=name_id_format, sign=False, **extra
        )
        if acs == "none":
            request.assertion_consumer_service_url = None
            request.protocol_binding = None
        assert isinstance(request, samlp.AuthnRequest)
        return request

    def redirect_url(
        self, sso_url: str, request: samlp.AuthnRequest, relay_state: str = "", *, sign: bool
    ) -> str:
        info = self.client.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(request),
            sso_url,
            relay_state=relay_state,
            sign=sign,
            sigalg=SIG_RSA_SHA256,
        )
        return str(dict(info["headers"])["Location"])

    def weak_redirect_url(
        self, sso_url: str, request: samlp.AuthnRequest, sigalg: str = SIG_RSA_SHA1
    ) -> str:
        """Signed the way the Redirect binding prescribes, but with a weak `sigalg` (which
        pysaml2's in-process signer refuses to make): RSA with SHA-1 or MD5, or HMAC-SHA256
        keyed with the service's public certificate (key confusion)."""
        deflated = zlib.compress(str(request).encode())[2:-4]
        args = {"SAMLRequest": base64.b64encode(deflated).decode(), "SigAlg": sigalg}
        signed = "&".join(urlencode({k: v}) for k, v in args.items()).encode()
        if sigalg == WEAK_SIGALGS["hmac-sha256"]:
            signature = hmac.new(self.cert_file.read_bytes(), signed, hashlib.sha256).digest()
        else:
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            digest = hashes.MD5() if sigalg == WEAK_SIGALGS["rsa-md5"] else hashes.SHA1()
            signature = key.sign(signed, padding.PKCS1v15(), digest)
        args["Signature"] = base64.b64encode(signature).decode()
        return f"{sso_url}?{urlencode(args)}"

    def post_fields(
        self, request: samlp.AuthnRequest, relay_state: str = "", *, sign: bool
    ) -> dict[str, str]:
        """POST binding; `sign` puts an enveloped XML signature in the request."""
        xml = (
            self.client.sign(request, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
            if sign
            else str(request)
        )
        fields = {"SAMLRequest": base64.b64encode(str(xml).encode()).decode()}
        if relay_state:
            fields["RelayState"] = relay_state
        return fields

    # -- responses -------------------------------------------------------------------------
    def accept(self, saml_response: str, request_id: str) -> Any:
        """pysaml2's verdict on the broker's Response (raises when it refuses it)."""
        return self.client.parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding={request_id: "/"}
        )


@dataclass
class Setup:
    demo: LiveDemo
    sp: ServiceSp
    stranger: ServiceSp  # the same entity id, another key

    @property
    def sso_url(self) -> str:
        return f"{self.demo.broker_url}/saml/idp/sso"


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    if not key.exists():
        write_pair(key, cert, name)
    return key, cert


def registered_sp(
    demo: LiveDemo,
    service_id: str,
    name: str,
    *,
    slo: bool = False,
    declarations: tuple[Declaration, ...] = (),
) -> ServiceSp:
    """A pysaml2 SP on a free port with a key of its own, registered (once) as `service_id`,
    declaring `declarations`."""
    base_url = f"http://localhost:{free_ports(1)}"
    key, cert = _key_pair(demo.directory / "peers", service_id)
    idp_metadata = demo.broker.saml_entities.idp_metadata()
    sp = ServiceSp(base_url, key, cert, idp_metadata, signs=True, slo=slo)
    metadata = sp.metadata()
    assert 'AuthnRequestsSigned="true"' in metadata
    if demo.registry.service(service_id) is None:
        demo.registry.add_service(
            Service(service_id, name, sp.entity_id, CHAIN, declarations=declarations), metadata
        )
    return sp


@pytest.fixture(scope="module")
def setup(demo: LiveDemo) -> Iterator[Setup]:
    sp = registered_sp(demo, SERVICE_ID, "Authn request tests (test publisher)")
    # The same entity id, another key (not in the metadata).
    other_key, other_cert = _key_pair(demo.directory / "peers", f"{SERVICE_ID}-stranger")
    idp_metadata = demo.broker.saml_entities.idp_metadata()
    stranger = ServiceSp(sp.base_url, other_key, other_cert, idp_metadata, signs=True)
    yield Setup(demo, sp, stranger)


# -- helpers ------------------------------------------------------------------------------------


def _decoded(saml_response: str) -> etree._Element:
    return etree.fromstring(base64.b64decode(saml_response))


def _answer_form(page: Page, acs_url: str) -> dict[str, str]:
    """The fields of the page's one POST form to `acs_url`, which carries a SAMLResponse."""
    fields = page.form(acs_url).fields
    assert "SAMLResponse" in fields
    return fields


def _through_school(setup: Setup, browser: Browser, page: Page) -> Page:
    """From the broker's first answer (discovery or the school) to the answer for the service."""
    demo = setup.demo
    if demo.shows_discovery(page):
        page = demo.choose_school(browser, page)
    assert page.url.startswith(f"{demo.school_url}/sso"), page.url
    return demo.pick(browser, page, UID)


def _with_session(setup: Setup) -> Browser:
    """A browser that has logged in (through this service) and so holds an SSO session."""
    browser = Browser()
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    page = _through_school(setup, browser, page)
    setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)
    assert SSO_COOKIE in browser.cookies(setup.demo.broker_url)
    return browser


@pytest.fixture(scope="module")
def session_browser(setup: Setup) -> Browser:
    return _with_session(setup)


def _answered_from_session(page: Page) -> bool:
    return len(page.visited) == 1 and page.status == 200


def assert_refused(setup: Setup, page: Page, caplog: pytest.LogCaptureFixture, code: str) -> None:
    assert 400 <= page.status < 500, (page.status, page.text[:500])
    assert page.location is None, "a refusal redirects nowhere"
    assert SSO_COOKIE not in page.cookies_set
    assert "SAMLResponse" not in page.text
    assert "Error code:" in page.text
    assert f"refused code={code} " in caplog.text, caplog.text


def _status(response: etree._Element) -> tuple[str | None, str | None]:
    top = response.find("samlp:Status/samlp:StatusCode", NS)
    assert top is not None
    inner = top.find("samlp:StatusCode", NS)
    return top.get("Value"), inner.get("Value") if inner is not None else None


def _assert_signed_error(
    setup: Setup, fields: dict[str, str], request_id: str, acs_url: str, status: tuple[str, str]
) -> None:
    xml = base64.b64decode(fields["SAMLResponse"])
    response = etree.fromstring(xml)
    assert etree.QName(response).localname == "Response"
    assert response.get("Destination") == acs_url
    assert response.get("InResponseTo") == request_id
    assert response.findtext("saml:Issuer", namespaces=NS) == setup.demo.idp_entity_id
    assert _status(response) == status
    assert response.find(".//saml:Assertion", NS) is None
    verify_signature(xml, setup.demo.settings.saml.signing_cert, response.get("ID") or "")
    # And the service's SAML library sees it as a signed error from the broker.
    with pytest.raises(StatusError):
        setup.sp.accept(fields["SAMLResponse"], request_id)


# -- 1. signed requests -------------------------------------------------------------------------


def test_a_signed_redirect_request_is_accepted(setup: Setup) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.redirect_url(setup.sso_url, request, "r1", sign=True)
    assert "Signature=" in url and "SigAlg=" in url
    browser = Browser()
    page = browser.get(url)
    assert page.status == 200, page.text[:500]
    assert setup.demo.shows_discovery(page)
    page = _through_school(setup, browser, page)
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"] == "r1"
    accepted = setup.sp.accept(fields["SAMLResponse"], request.id)
    assert accepted.assertion.subject.name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)


def test_an_unsigned_redirect_request_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.redirect_url(setup.sso_url, request, sign=False)
    assert "Signature=" not in url
    page = Browser().get(url)
    assert len(page.visited) == 1
    assert_refused(setup, page, caplog, "request_unsigned")


@pytest.mark.parametrize("weak", list(WEAK_SIGALGS))
def test_a_redirect_request_signed_with_a_weak_algorithm_is_refused(
    setup: Setup, weak: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.weak_redirect_url(setup.sso_url, request, WEAK_SIGALGS[weak])
    page = Browser().get(url)
    assert_refused(setup, page, caplog, "weak_algorithm")


def test_a_redirect_request_signed_with_another_key_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.stranger.authn_request(setup.sso_url)
    url = setup.stranger.redirect_url(setup.sso_url, request, sign=True)
    page = Browser().get(url)
    assert_refused(setup, page, caplog, "bad_signature")


def test_a_redirect_signature_does_not_cover_a_changed_relay_state(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.redirect_url(setup.sso_url, request, "signed-state", sign=True)
    assert "RelayState=signed-state" in url
    page = Browser().get(url.replace("RelayState=signed-state", "RelayState=other-state"))
    assert_refused(setup, page, caplog, "bad_signature")


def test_a_post_request_signed_in_the_xml_is_accepted(setup: Setup) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    fields = setup.sp.post_fields(request, "p1", sign=True)
    signed = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))
    assert signed.find(f"{{{DS}}}Signature") is not None
    browser = Browser()
    page = browser.post(setup.sso_url, fields)
    assert page.status == 200, page.text[:500]
    assert page.url.startswith(f"{setup.demo.broker_url}/discovery")
    page = _through_school(setup, browser, page)
    answer = _answer_form(page, setup.sp.acs[1])
    assert answer["RelayState"] == "p1"
    setup.sp.accept(answer["SAMLResponse"], request.id)


def test_a_post_request_is_redirected_to_discovery_and_a_redirect_request_is_not(
    setup: Setup,
) -> None:
    """A request that arrived by POST is answered 303 to `GET /discovery` (Post/Redirect/Get:
    a reload must not post it again); one that arrived by GET gets the page in its response."""
    request = setup.sp.authn_request(setup.sso_url)
    browser = Browser()
    posted = browser.post(setup.sso_url, setup.sp.post_fields(request, sign=True), follow=False)
    assert posted.status == 303, posted.text[:500]
    assert posted.location and posted.location.startswith(
        f"{setup.demo.broker_url}/discovery?login="
    )
    assert "__Host-kb_browser" in posted.cookies_set
    page = browser.get(posted.location)
    assert setup.demo.shows_discovery(page)
    # Reloading the page fetches it again, for the same login: nothing is posted again.
    again = browser.get(posted.location)
    assert again.status == 200 and again.text == page.text
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.redirect_url(setup.sso_url, request, sign=True)
    got = Browser().get(url, follow=False)
    assert got.status == 200 and got.url == url and setup.demo.shows_discovery(got)


def test_an_unsigned_post_request_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    page = Browser().post(setup.sso_url, setup.sp.post_fields(request, sign=False))
    assert_refused(setup, page, caplog, "request_unsigned")


def test_a_post_request_signed_with_another_key_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # The stranger's certificate travels in the signature's KeyInfo: it must not be trusted.
    request = setup.stranger.authn_request(setup.sso_url)
    page = Browser().post(setup.sso_url, setup.stranger.post_fields(request, sign=True))
    assert_refused(setup, page, caplog, "bad_signature")


def test_a_garbled_redirect_signature_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    url = setup.sp.redirect_url(setup.sso_url, request, sign=True)
    garbled = re.sub(r"Signature=[^&]*", "Signature=%21%21not-base64", url)
    assert garbled != url
    page = Browser().get(garbled)
    assert_refused(setup, page, caplog, "bad_signature")


# -- 2. NameIDPolicy --------------------------------------------------------------------------


def _pairwise(accepted: Any) -> list[str]:
    for statement in accepted.assertion.attribute_statement:
        for attribute in statement.attribute:
            if attribute.name == PAIRWISE_ID:
                return [value.text for value in attribute.attribute_value]
    raise AssertionError("no pairwise-id")


def _scope(setup: Setup) -> str:
    return setup.demo.settings.scope


def _session_login(setup: Setup, browser: Browser, **extra: Any) -> tuple[Page, str]:
    request = setup.sp.authn_request(setup.sso_url, **extra)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    return page, request.id


def test_transient_gives_a_fresh_value_and_the_pseudonym_only_in_pairwise_id(
    setup: Setup, session_browser: Browser
) -> None:
    pseudonym = setup.demo.expected_pseudonym(UID, CHAIN)
    seen = set()
    for _ in range(2):
        page, request_id = _session_login(
            setup, session_browser, name_id_format=NAMEID_FORMAT_TRANSIENT
        )
        assert _answered_from_session(page), page.text[:300]
        accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request_id)
        name_id = accepted.assertion.subject.name_id
        assert name_id.format == NAMEID_FORMAT_TRANSIENT
        assert pseudonym not in name_id.text
        assert _pairwise(accepted) == [f"{pseudonym}@{_scope(setup)}"]
        seen.add(name_id.text)
    assert len(seen) == 2, "a transient NameID differs per login"


def test_unspecified_gives_the_pseudonym_in_that_format(
    setup: Setup, session_browser: Browser
) -> None:
    page, request_id = _session_login(setup, session_browser, name_id_format=UNSPECIFIED)
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request_id)
    name_id = accepted.assertion.subject.name_id
    assert name_id.format == UNSPECIFIED
    assert name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)


def test_no_policy_gives_the_persistent_pseudonym(setup: Setup, session_browser: Browser) -> None:
    page, request_id = _session_login(setup, session_browser)
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request_id)
    assert accepted.assertion.subject.name_id.format == PERSISTENT
    assert accepted.assertion.subject.name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)


def test_email_address_format_is_answered_with_invalid_nameid_policy(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url, name_id_format=NAMEID_FORMAT_EMAILADDRESS)
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "mail-state", sign=True))
    # The student's page: 4xx, why, and a button (not an auto-POST) back to the service.
    assert 400 <= page.status < 500
    assert len(page.visited) == 1
    assert "refused code=invalid_nameid_policy " in caplog.text
    assert "Back to Authn request tests (test publisher)" in page.text
    assert "data-autosubmit" not in page.text
    assert SSO_COOKIE not in page.cookies_set
    fields = page.form(setup.sp.acs[1]).fields
    assert fields["RelayState"] == "mail-state"
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (REQUESTER, INVALID_NAMEID_POLICY)
    )


# -- 3. IsPassive -------------------------------------------------------------------------------


def test_is_passive_without_a_session_answers_no_passive_at_once(setup: Setup) -> None:
    request = setup.sp.authn_request(setup.sso_url, is_passive="true")
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "quiet", sign=True))
    # Nothing shown to the student: no discovery, no school, an auto-POST straight back.
    assert page.status == 200
    assert len(page.visited) == 1
    assert "data-autosubmit" in page.text
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"] == "quiet"
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_PASSIVE))
    assert SSO_COOKIE not in browser.cookies(setup.demo.broker_url)


def test_is_passive_with_a_session_is_answered_normally(
    setup: Setup, session_browser: Browser
) -> None:
    page, request_id = _session_login(setup, session_browser, is_passive="true")
    assert _answered_from_session(page)
    response = _answer_form(page, setup.sp.acs[1])["SAMLResponse"]
    assert _status(_decoded(response)) == (SUCCESS, None)
    accepted = setup.sp.accept(response, request_id)
    assert accepted.assertion.subject.name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)


def test_is_passive_before_the_information_notice_answers_no_passive(setup: Setup) -> None:
    # An SSO session made at another service: this service's notice was never shown, and a
    # passive request must not show it, so the service hears NoPassive and can ask actively.
    browser = Browser()
    setup.demo.login(browser, "leesplank", UID)
    assert SSO_COOKIE in browser.cookies(setup.demo.broker_url)
    request = setup.sp.authn_request(setup.sso_url, is_passive="true")
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "first", sign=True))
    assert len(page.visited) == 1 and "data-autosubmit" in page.text
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_PASSIVE))
    # Once the student saw it in an active login, passive requests are answered.
    active = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, active, sign=True))
    setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], active.id)
    again = setup.sp.authn_request(setup.sso_url, is_passive="true")
    page = browser.get(setup.sp.redirect_url(setup.sso_url, again, sign=True))
    assert _status(_decoded(_answer_form(page, setup.sp.acs[1])["SAMLResponse"])) == (
        SUCCESS,
        None,
    )


# -- 4. ForceAuthn ------------------------------------------------------------------------------


def test_force_authn_sends_the_student_to_the_school_again(setup: Setup) -> None:
    demo = setup.demo
    browser = _with_session(setup)
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))

    # Control: the same request without ForceAuthn is answered from the session.
    page, _ = _session_login(setup, browser, scoping=scoping)
    assert _answered_from_session(page)

    request = setup.sp.authn_request(setup.sso_url, scoping=scoping, force_authn="true")
    url = setup.sp.redirect_url(setup.sso_url, request, sign=True)
    first = browser.get(url, follow=False)
    assert first.status in (302, 303)
    to_school = first.location or ""
    assert to_school.startswith(f"{demo.school_url}/sso"), to_school
    upstream, _ = redirect_message(to_school)
    assert etree.fromstring(upstream).get("ForceAuthn") == "true"

    page = demo.pick(browser, browser.get(to_school), UID)
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)
    assert accepted.assertion.subject.name_id.text == demo.expected_pseudonym(UID, CHAIN)


def _school_answers(
    setup: Setup, browser: Browser, to_school: str, authn_instant: datetime
) -> Page:
    """The school's signed answer to the request in `to_school`, saying the student logged
    in at `authn_instant`, posted to the broker by `browser`."""

    def at(response: samlp.Response) -> None:
        response.assertion.authn_statement[0].authn_instant = saml_time(authn_instant)

    return school_answers(setup.demo, browser, to_school, at)


def school_answers(
    demo: LiveDemo, browser: Browser, to_school: str, tamper: Callable[[samlp.Response], None]
) -> Page:
    """The school's signed answer to the request in `to_school` about `UID`, changed by
    `tamper` before signing, posted to the broker by `browser`."""
    saml = demo_school_forger(demo).response(
        in_response_to=authn_request_id(to_school),
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subject=demo.school_subject(UID),
        tamper=tamper,
    )
    _, relay = redirect_message(to_school)
    return browser.post(demo.acs_url, {"SAMLResponse": saml, "RelayState": relay["RelayState"]})


def _forced(setup: Setup, browser: Browser) -> tuple[Any, str]:
    """A ForceAuthn request of the service for the demo school; the request and the URL that
    takes the student to the school."""
    demo = setup.demo
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping, force_authn="true")
    first = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    to_school = first.location or ""
    assert to_school.startswith(f"{demo.school_url}/sso"), to_school
    return request, to_school


def test_a_school_that_ignores_force_authn_is_refused_and_the_service_hears_authn_failed(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The school answers ForceAuthn from its own session of ten minutes ago: the service gets
    Responder/AuthnFailed (SAML core 3.2.2.2: the IdP could not authenticate the student as
    asked; NoAuthnContext is about the kind of login, which was not what failed), carried by
    the student's page; no SSO session. A login the school made after the student left, within
    the clock skew, is answered."""
    browser = _with_session(setup)
    request, to_school = _forced(setup, browser)
    old = datetime.now(UTC) - timedelta(minutes=10)
    with caplog.at_level(logging.INFO, logger="broker"):
        page = _school_answers(setup, browser, to_school, old)
    assert page.status == 403, page.text[:300]
    assert "refused code=fresh_login_ignored " in caplog.text
    assert SSO_COOKIE not in page.cookies_set
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, AUTHN_FAILED))

    request, to_school = _forced(setup, browser)
    page = _school_answers(setup, browser, to_school, datetime.now(UTC) - timedelta(seconds=30))
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)
    assert accepted.assertion.subject.name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)


def test_a_school_login_in_the_future_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe's AuthnInstant=2100-01-01: refused outright (a 400 page, no session), so it
    can never stand in an SSO session as a login fresh enough for every later max_age."""
    browser = Browser()
    _, to_school = _forced(setup, browser)
    with caplog.at_level(logging.INFO, logger="broker"):
        page = _school_answers(setup, browser, to_school, datetime(2100, 1, 1, tzinfo=UTC))
    assert_refused(setup, page, caplog, "authn_instant_in_future")
    assert SSO_COOKIE not in browser.cookies(setup.demo.broker_url)


def test_without_force_authn_the_upstream_request_does_not_force(setup: Setup) -> None:
    demo = setup.demo
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping)
    first = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    upstream, _ = redirect_message(first.location or "")
    assert etree.fromstring(upstream).get("ForceAuthn") in (None, "false")


# -- 5. RelayState ------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_relay_state_is_echoed_byte_exact(
    setup: Setup, session_browser: Browser, binding: str
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    if binding == "redirect":
        url = setup.sp.redirect_url(setup.sso_url, request, TRICKY_RELAY_STATE, sign=True)
        page = session_browser.get(url)
    else:
        fields = setup.sp.post_fields(request, TRICKY_RELAY_STATE, sign=True)
        page = session_browser.post(setup.sso_url, fields)
    assert _answered_from_session(page), page.text[:300]
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"].encode() == TRICKY_RELAY_STATE.encode()
    setup.sp.accept(fields["SAMLResponse"], request.id)


def test_relay_state_of_1024_bytes_passes_and_of_1025_is_refused(
    setup: Setup, session_browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    at_cap = "ü" * 512  # 1024 bytes in UTF-8
    request = setup.sp.authn_request(setup.sso_url)
    page = session_browser.get(setup.sp.redirect_url(setup.sso_url, request, at_cap, sign=True))
    assert _answer_form(page, setup.sp.acs[1])["RelayState"] == at_cap

    over = at_cap + "x"
    request = setup.sp.authn_request(setup.sso_url)
    page = session_browser.get(setup.sp.redirect_url(setup.sso_url, request, over, sign=True))
    assert_refused(setup, page, caplog, "relay_state_too_long")
    assert not setup.demo.answers_publisher(page)


def test_relay_state_is_never_a_redirect_target(setup: Setup, session_browser: Browser) -> None:
    evil = "https://evil.example/"

    def never_evil(page: Page) -> None:
        assert all(not url.startswith(evil) for url in page.visited)
        assert not (page.location or "").startswith(evil)
        assert all(not form.action.startswith(evil) for form in page.forms)

    # Answered from the session: the form goes to the ACS, the RelayState only rides along.
    request = setup.sp.authn_request(setup.sso_url)
    page = session_browser.get(setup.sp.redirect_url(setup.sso_url, request, evil, sign=True))
    never_evil(page)
    assert _answer_form(page, setup.sp.acs[1])["RelayState"] == evil

    # A whole login through discovery and the school.
    browser = Browser()
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, evil, sign=True))
    never_evil(page)
    page = _through_school(setup, browser, page)
    never_evil(page)
    assert _answer_form(page, setup.sp.acs[1])["RelayState"] == evil
    assert all(not url.startswith(evil) for url in browser.history)

    # A refusal (unsigned) and NoPassive do not go there either.
    request = setup.sp.authn_request(setup.sso_url)
    refused = Browser().get(setup.sp.redirect_url(setup.sso_url, request, evil, sign=False))
    assert 400 <= refused.status < 500
    never_evil(refused)
    request = setup.sp.authn_request(setup.sso_url, is_passive="true")
    passive = Browser().get(setup.sp.redirect_url(setup.sso_url, request, evil, sign=True))
    never_evil(passive)


# -- 6. which ACS -------------------------------------------------------------------------------


def test_an_existing_acs_index_is_answered_at_that_endpoint(
    setup: Setup, session_browser: Browser
) -> None:
    for index in (1, 3):
        page, request_id = _session_login(setup, session_browser, acs=str(index))
        fields = _answer_form(page, setup.sp.acs[index])
        assert _decoded(fields["SAMLResponse"]).get("Destination") == setup.sp.acs[index]
        setup.sp.accept(fields["SAMLResponse"], request_id)


def test_an_unknown_acs_index_is_answered_at_the_default_acs_with_request_unsupported(
    setup: Setup, session_browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """Core 3.4.1: the IdP MAY return an error Response for an index it does not know. The
    signed request is trusted: the student's page carries Requester/RequestUnsupported to the
    default ACS of the service's metadata, the one address no request chooses."""
    page, request_id = _session_login(setup, session_browser, acs="7")
    assert page.status == 400, page.text[:300]
    assert "refused code=acs_index_unknown " in caplog.text
    assert "data-autosubmit" not in page.text and SSO_COOKIE not in page.cookies_set
    assert [f.action for f in page.forms if f.action.startswith(setup.sp.base_url)] == [
        setup.sp.default_acs
    ]
    fields = page.form(setup.sp.default_acs).fields
    _assert_signed_error(
        setup, fields, request_id, setup.sp.default_acs, (REQUESTER, REQUEST_UNSUPPORTED)
    )


def test_an_unknown_acs_index_in_an_unsigned_request_gets_no_answer(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The service must sign (AuthnRequestsSigned): an unsigned request naming it is anyone's,
    and is refused with a page before its ACS is looked at; nothing goes to the service."""
    request = setup.sp.authn_request(setup.sso_url, acs="7")
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=False))
    assert_refused(setup, page, caplog, "request_unsigned")
    assert not any(f.action.startswith(setup.sp.base_url) for f in page.forms)


def test_without_acs_url_or_index_the_metadata_default_is_used(
    setup: Setup, session_browser: Browser
) -> None:
    request = setup.sp.authn_request(setup.sso_url, acs="none")
    xml = etree.fromstring(str(request).encode())
    assert xml.get("AssertionConsumerServiceURL") is None
    assert xml.get("AssertionConsumerServiceIndex") is None
    page = session_browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    # isDefault="true" is on the second endpoint, not the first.
    fields = _answer_form(page, setup.sp.default_acs)
    setup.sp.accept(fields["SAMLResponse"], request.id)


# -- 7. the broker's own metadata ---------------------------------------------------------------


def _verify_metadata(xml: bytes, cert_file: Path) -> None:
    doc = etree.fromstring(xml)
    signature = doc.find(f"{{{DS}}}Signature")
    assert signature is not None, "metadata is not signed"
    reference = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference is not None and reference.get("URI") == f"#{doc.get('ID')}"
    xmlsec.tree.add_ids(doc, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(cert_file), xmlsec.constants.KeyDataFormatCertPem)
    context.verify(signature)


@pytest.mark.parametrize("which", ["idp", "sp"])
def test_the_broker_metadata_is_served_signed_with_its_endpoints(setup: Setup, which: str) -> None:
    demo = setup.demo
    page = Browser().get(f"{demo.broker_url}/saml/{which}/metadata")
    assert page.status == 200
    assert page.response.headers["Content-Type"].split(";")[0].strip() == METADATA_TYPE
    xml = page.response.content
    doc = etree.fromstring(xml)
    assert doc.get("entityID") == f"{demo.broker_url}/saml/{which}/metadata"
    ns = {"md": MD, "shibmd": SHIBMD}
    if which == "idp":
        sso = {
            (e.get("Binding"), e.get("Location"))
            for e in doc.findall("md:IDPSSODescriptor/md:SingleSignOnService", ns)
        }
        assert sso == {
            (BINDING_HTTP_REDIRECT, setup.sso_url),
            (BINDING_HTTP_POST, setup.sso_url),
        }
        scopes = [e.text for e in doc.findall(".//md:IDPSSODescriptor//shibmd:Scope", ns)]
        assert scopes == [demo.settings.scope]
    else:
        acs = [
            (e.get("Binding"), e.get("Location"))
            for e in doc.findall("md:SPSSODescriptor/md:AssertionConsumerService", ns)
        ]
        assert acs == [(BINDING_HTTP_POST, demo.acs_url)]
    # How registries show the broker: the display names default to the organisation's name.
    mdui = "urn:oasis:names:tc:SAML:metadata:ui"
    names = doc.findall(f"md:*/md:Extensions/{{{mdui}}}UIInfo/{{{mdui}}}DisplayName", ns)
    assert [(n.get("{http://www.w3.org/XML/1998/namespace}lang"), n.text) for n in names] == [
        ("nl", demo.settings.organization.name),
        ("en", demo.settings.organization.name),
    ]
    cert_file = demo.directory / "keys" / "saml-signing.crt"
    assert cert_file.is_file()
    _verify_metadata(xml, cert_file)
    # Control: the verification fails once the metadata is changed.
    changed = xml.replace(setup.sso_url.encode(), b"https://evil.example/sso").replace(
        demo.acs_url.encode(), b"https://evil.example/acs"
    )
    assert changed != xml
    with pytest.raises(xmlsec.Error):
        _verify_metadata(changed, cert_file)


@pytest.mark.parametrize("which", ["idp", "sp"])
def test_the_broker_metadata_announces_the_signature_algorithms_it_takes(
    setup: Setup, which: str
) -> None:
    """Algorithm Support profile (alg:DigestMethod, alg:SigningMethod in the role's Extensions):
    exactly what the signature checks take, SHA-256 first. Shibboleth SP 3 signs by this list;
    without it, it signs its SOAP LogoutResponse with RSA-SHA1, which the broker refuses."""
    page = Browser().get(f"{setup.demo.broker_url}/saml/{which}/metadata")
    doc = etree.fromstring(page.response.content)
    role = "md:IDPSSODescriptor" if which == "idp" else "md:SPSSODescriptor"
    ns = {"md": MD, "alg": "urn:oasis:names:tc:SAML:metadata:algsupport"}
    digests = [
        e.get("Algorithm") for e in doc.findall(f"{role}/md:Extensions/alg:DigestMethod", ns)
    ]
    signing = [
        e.get("Algorithm") for e in doc.findall(f"{role}/md:Extensions/alg:SigningMethod", ns)
    ]
    assert digests[0] == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert signing[0] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert len(set(digests)) == len(digests) and set(digests) == xmlsig_policy.ALLOWED_DIGESTS
    assert len(set(signing)) == len(signing)
    assert set(signing) == xmlsig_policy.ALLOWED_SIGNATURE_ALGORITHMS
    assert doc.findall(".//alg:*", ns) == doc.findall(f"{role}/md:Extensions/alg:*", ns)


# -- 8. Destination -----------------------------------------------------------------------------


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_a_request_for_another_destination_is_refused(
    setup: Setup, binding: str, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = f"{setup.demo.broker_url}/saml/idp/sso-elsewhere"
    request = setup.sp.authn_request(elsewhere)
    assert request.destination == elsewhere
    browser = Browser()
    if binding == "redirect":
        page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    else:
        page = browser.post(setup.sso_url, setup.sp.post_fields(request, sign=True))
    assert_refused(setup, page, caplog, "wrong_destination")


def test_the_sso_url_itself_is_an_accepted_destination(setup: Setup) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    assert request.destination == setup.sso_url
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 200
    assert setup.demo.shows_discovery(page)


# -- 9. Freshness and addressing of signed requests ---------------------------------------------


@pytest.mark.parametrize("issued", ["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_a_request_issued_outside_the_window_is_refused(
    setup: Setup, issued: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    request.issue_instant = issued
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert_refused(setup, page, caplog, "stale_request")


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_a_signed_request_without_destination_is_refused(
    setup: Setup, binding: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    request.destination = None
    browser = Browser()
    if binding == "redirect":
        page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    else:
        page = browser.post(setup.sso_url, setup.sp.post_fields(request, sign=True))
    assert_refused(setup, page, caplog, "wrong_destination")


# -- 10. Request fields the broker cannot honour ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("force_authn", "yes"),
        ("issue_instant", "yesterday"),
        ("assertion_consumer_service_index", "abc"),
    ],
)
def test_a_request_with_a_malformed_field_is_refused_not_a_500(
    setup: Setup, field: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url, acs="none")
    setattr(request, field, value)
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 400, page.status


def test_an_unknown_attribute_consuming_service_index_is_answered_with_request_unsupported(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The request is trusted and its ACS is the service's own: the service hears why, by the
    student's button (a passive request's at once: test_saml_idp_conformance.py)."""
    request = setup.sp.authn_request(setup.sso_url, attribute_consuming_service_index="9")
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 400
    assert "refused code=attribute_service_unknown " in caplog.text
    assert "data-autosubmit" not in page.text
    assert SSO_COOKIE not in page.cookies_set
    fields = page.form(setup.sp.acs[1]).fields
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (REQUESTER, REQUEST_UNSUPPORTED)
    )


def test_a_request_for_the_artifact_binding_is_refused(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    request.protocol_binding = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert_refused(setup, page, caplog, "unsupported_binding")


# -- 10. RequestedAuthnContext (assurance across the translation) --------------------------------

NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
REFEDS_MFA = "https://refeds.org/profile/mfa"


def _requested_context(*references: str) -> RequestedAuthnContext:
    return RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=ref) for ref in references],
        comparison="exact",
    )


def test_a_level_the_school_cannot_meet_is_answered_with_no_authn_context(
    setup: Setup,
) -> None:
    demo = setup.demo
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))
    request = setup.sp.authn_request(
        setup.sso_url, scoping=scoping, requested_authn_context=_requested_context(REFEDS_MFA)
    )
    browser = Browser()
    first = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    # The school is asked for the same level, in its own protocol …
    upstream, _ = redirect_message(first.location or "")
    asked = etree.fromstring(upstream).findall(
        "samlp:RequestedAuthnContext/saml:AuthnContextClassRef", NS
    )
    assert [ref.text for ref in asked] == [REFEDS_MFA]
    # … answers with a password login (the demo school has no MFA) …
    page = demo.pick(browser, browser.get(first.location or ""), UID)
    # … and the service gets NoAuthnContext, carried by the student's page, not a login.
    assert page.status == 403
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AUTHN_CONTEXT))


def test_an_unknown_requested_context_is_refused_at_once(setup: Setup) -> None:
    request = setup.sp.authn_request(
        setup.sso_url, requested_authn_context=_requested_context("urn:example:ac:retina-scan")
    )
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 403
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AUTHN_CONTEXT))


def test_a_level_the_school_meets_is_answered_with_that_level(setup: Setup) -> None:
    demo = setup.demo
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))
    request = setup.sp.authn_request(
        setup.sso_url,
        scoping=scoping,
        requested_authn_context=_requested_context(PASSWORD_PROTECTED),
    )
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    page = demo.pick(browser, page, UID)
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)
    statement = accepted.assertion.authn_statement[0]
    assert statement.authn_context.authn_context_class_ref.text == PASSWORD_PROTECTED


def test_the_upstream_request_is_signed_over_the_query_and_carries_no_xml_signature(
    setup: Setup,
) -> None:
    """SAML bindings 3.4.4.1: over the Redirect binding the signature covers the query string
    and the message itself carries none (it would only cost an RSA signature and URL length)."""
    demo = setup.demo
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)]))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping)
    first = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    to_school = first.location or ""
    upstream, _ = redirect_message(to_school)
    assert etree.fromstring(upstream).find("ds:Signature", NS) is None
    # The school may make the student's persistent identifier for the broker on this request.
    policy = etree.fromstring(upstream).find("samlp:NameIDPolicy", NS)
    assert policy is not None and policy.get("AllowCreate") == "true"
    # The signed octets are the query's own encoding, in the order the binding fixes.
    verify_redirect_signature(to_school, demo.directory / "keys" / "saml-signing.crt")


# -- 12. a request no school can serve is still answered (profiles 4.1.4.1, core 3.4.1.4) ----------

NOT_SET_UP_ID = "98NS00"
NOT_SET_UP_IDP = "https://idp.niet-ingericht.example/metadata"
PLATFORM = "Authn request tests (test publisher)"


@pytest.fixture(scope="module")
def not_set_up(setup: Setup) -> str:
    """A registered SAML school whose metadata the broker does not hold."""
    if setup.demo.registry.school(NOT_SET_UP_ID) is None:
        setup.demo.registry.add_school(
            School(NOT_SET_UP_ID, "Nietklaar College", NOT_SET_UP_IDP), ""
        )
    return NOT_SET_UP_ID


def _went_back(setup: Setup, browser: Browser, page: Page, why: str) -> dict[str, str]:
    """Press the page's "Back to <platform>" (with `why`): the auto-post answer's fields."""
    back = page.form(f"{setup.demo.broker_url}/back-to-platform")
    assert back.fields["why"] == why, back.fields
    told = browser.submit(page, f"{setup.demo.broker_url}/back-to-platform")
    assert told.status == 200 and "data-autosubmit" in told.text, told.text[:300]
    return _answer_form(told, setup.sp.acs[1])


def _told_once(setup: Setup, browser: Browser, page: Page) -> None:
    """The login was consumed when the platform was told: a second press tells nothing."""
    twice = browser.submit(page, f"{setup.demo.broker_url}/back-to-platform", follow=False)
    assert twice.status == 400 and "SAMLResponse" not in twice.text, twice.text[:300]


@pytest.mark.parametrize(
    ("language", "label"), [("nl", f"Terug naar {PLATFORM}"), ("en", f"Back to {PLATFORM}")]
)
def test_going_back_from_the_school_choice_answers_authn_failed(
    setup: Setup, language: str, label: str
) -> None:
    browser = Browser(language)
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "rs-back", sign=True))
    assert setup.demo.shows_discovery(page)
    assert f">{label}</button>" in page.text
    fields = _went_back(setup, browser, page, "went_back")
    assert fields["RelayState"] == "rs-back"
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, AUTHN_FAILED))
    _told_once(setup, browser, page)


def test_a_school_not_set_up_offers_another_school_and_answers_no_available_idp(
    setup: Setup, not_set_up: str, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser("nl")
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    choice = page.form(f"{setup.demo.broker_url}/discovery")
    page = browser.post(choice.action, {**choice.fields, "school": not_set_up})
    assert page.status == 502, page.text[:300]
    assert "<h1>Inloggen via je school is nog niet ingesteld</h1>" in page.text
    assert f"refused school={not_set_up} code=school_metadata_missing" in caplog.text
    assert "Opnieuw proberen" not in page.text
    assert f'href="/discovery?login={choice.fields["login"]}">Kies je school opnieuw</a>' in (
        page.text
    )
    assert f">Terug naar {PLATFORM}</button>" in page.text
    assert "broker" not in page.text.lower().replace("ketenbroker", "")
    fields = _went_back(setup, browser, page, "no_school")
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AVAILABLE_IDP))
    _told_once(setup, browser, page)


def test_a_school_removed_after_the_choice_was_shown_answers_no_available_idp(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The school left the registry between the school choice's page and the student's choice:
    the page of a school not set up, with the same ways on (choose again, back to the
    platform, which hears NoAvailableIDP), not a dead end."""
    removed = School("98RM00", "Opgeheven College", "https://idp.opgeheven.example/metadata")
    setup.demo.registry.add_school(removed, "")
    browser = Browser("nl")
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "rs-gone", sign=True))
    choice = page.form(f"{setup.demo.broker_url}/discovery")
    assert ("school", removed.id) in choice.buttons
    setup.demo.registry.remove_school(removed.id, apply=True)
    page = browser.post(choice.action, {**choice.fields, "school": removed.id})
    assert page.status == 400, page.text[:300]
    assert "<h1>Inloggen via je school is nog niet ingesteld</h1>" in page.text
    # Neither the posted id (unchecked input) nor the record's school (not the one chosen).
    assert "refused code=unknown_school: chosen school not in the registry" in caplog.text
    assert "98RM00" not in caplog.text
    assert f'href="/discovery?login={choice.fields["login"]}">Kies je school opnieuw</a>' in (
        page.text
    )
    assert f">Terug naar {PLATFORM}</button>" in page.text
    fields = _went_back(setup, browser, page, "no_school")
    assert fields["RelayState"] == "rs-gone"
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AVAILABLE_IDP))
    _told_once(setup, browser, page)


def test_a_scoped_request_naming_a_school_not_set_up_shows_the_ways_on(
    setup: Setup, not_set_up: str
) -> None:
    """An active request whose IDPList names only a school that cannot serve: the student's
    page (not the school choice, not an answer at once), choosing again or going back."""
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=NOT_SET_UP_IDP)]))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping)
    browser = Browser("en")
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 502 and not setup.demo.shows_discovery(page), page.text[:300]
    assert "<h1>Signing in with your school is not set up</h1>" in page.text
    assert "SAMLResponse" not in page.text
    # The login was saved for its ways on: the school choice opens for it.
    login_id = page.form(f"{setup.demo.broker_url}/back-to-platform").fields["login"]
    assert setup.demo.shows_discovery(
        browser.get(f"{setup.demo.broker_url}/discovery?login={login_id}")
    )
    fields = _went_back(setup, browser, page, "no_school")
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AVAILABLE_IDP))


def test_a_scoped_request_skips_a_school_not_set_up_for_one_that_can_serve(
    setup: Setup, not_set_up: str
) -> None:
    """The IDPList names a school that cannot serve first and the demo school second: the
    student goes to the demo school, not to a dead end."""
    entries = [
        IDPEntry(provider_id=NOT_SET_UP_IDP),
        IDPEntry(provider_id=setup.demo.school_entity_id),
    ]
    scoping = Scoping(idp_list=IDPList(idp_entry=entries))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping)
    first = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    assert first.status == 303, first.text[:300]
    assert (first.location or "").startswith(f"{setup.demo.school_url}/sso")


def test_a_passive_scoped_request_naming_a_school_not_set_up_answers_no_passive(
    setup: Setup, not_set_up: str
) -> None:
    """Passive: nothing is shown, and no school is asked, so NoPassive at once (the platform
    asks again actively and then hears NoAvailableIDP if the student goes back)."""
    scoping = Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=NOT_SET_UP_IDP)]))
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping, is_passive="true")
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert len(page.visited) == 1 and "data-autosubmit" in page.text
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_PASSIVE))


def test_back_with_a_reason_no_page_sends_is_refused_and_ends_nothing(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    request = setup.sp.authn_request(setup.sso_url)
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    back = page.form(f"{setup.demo.broker_url}/back-to-platform")
    refused = browser.post(back.action, {**back.fields, "why": "granted"})
    assert refused.status == 400 and "SAMLResponse" not in refused.text
    assert "refused code=unknown_reason " in caplog.text
    fields = _went_back(setup, browser, page, "went_back")
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, AUTHN_FAILED))
