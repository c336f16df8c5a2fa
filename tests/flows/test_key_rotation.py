"""A full signing key rotation, walked on a clock the test controls, against peers that cache.

The broker runs as an app (two, where workers matter) on a fresh instance from `ketenbroker
init`; a peer fetches the IdP metadata and the JWKS over HTTP and keeps its copies until it is told
to refresh, as a publisher's SAML stack or an RP's JWKS cache does. Signatures are made by the
broker's own signing paths (the Response its front sends, the Redirect-binding query signature of
its back, its metadata signature, its ID tokens) and checked only against the peer's copies.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import xmlsec
from flask import Flask
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT
from saml2.sigver import verify_redirect_signature

from broker.cli.instance import init_instance
from broker.config import Settings, load_settings
from broker.core.key_schedule import KeyRotationRefused
from broker.core.model import Declaration
from broker.keys import rotation
from broker.keys.live import LiveKeySet
from broker.saml.response_builder import AssertionContent, signed_response
from broker.saml.xmlsig import _BACKEND, _AllowListRSACrypto, verification_context
from broker.web import create_app
from broker.web.wiring import Broker, build_broker
from tests.security.test_saml_refusals import PendingLogin, deliver, forged, start_login
from tests.support.client import Browser
from tests.support.forge import NS
from tests.support.hostile import Signer, assertion_of, encode, encrypt_assertion, parse
from tests.support.live import LiveDemo
from tests.support.saml_workers import demo_school_forger

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
START = 1_900_000_000.0  # 2030-03-17: any moment works, the clock is the test's


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Worker:
    app: Flask
    broker: Broker

    def get(self, path: str) -> bytes:
        response = self.app.test_client().get(path)
        assert response.status_code == 200, path
        return bytes(response.data)


@dataclass
class CachingPeer:
    """A publisher's view of the broker: the signing certificates of the IdP metadata and the
    JWKS as last fetched. Between refreshes it never looks again."""

    worker: Worker
    certificates: list[bytes] = field(default_factory=list)
    jwks: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> None:
        metadata = self.worker.get("/saml/idp/metadata")
        certificates = signing_certificates(metadata)
        # The metadata itself is signed by the key that signs now, which it publishes.
        assert any(signature_verifies(metadata, None, c) for c in certificates)
        self.certificates = certificates
        self.jwks = json.loads(self.worker.get("/oidc/jwks"))

    def accepts_response(self, xml: bytes) -> bool:
        root = etree.fromstring(xml)
        return any(signature_verifies(xml, root.get("ID"), c) for c in self.certificates)

    def accepts_redirect(self, url: str) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        backend = _AllowListRSACrypto(None)
        return any(
            verify_redirect_signature(query, backend, pem_body(c)) for c in self.certificates
        )

    def accepts_id_token(self, token: str) -> bool:
        try:
            jwt.decode(token, KeySet.import_key_set(self.jwks), algorithms=["RS256"])  # type: ignore[arg-type]
        except (JoseError, ValueError):
            return False
        return True


def signing_certificates(metadata: bytes) -> list[bytes]:
    root = etree.fromstring(metadata)
    path = f".//{{{MD}}}IDPSSODescriptor/{{{MD}}}KeyDescriptor[@use='signing']//{{{DS}}}X509Certificate"
    return [pem(e.text or "") for e in root.findall(path)]


def encryption_certificates(metadata: bytes) -> list[bytes]:
    root = etree.fromstring(metadata)
    path = f".//{{{MD}}}KeyDescriptor[@use='encryption']//{{{DS}}}X509Certificate"
    return [pem(e.text or "") for e in root.findall(path)]


def pem(body: str) -> bytes:
    text = "".join(body.split())
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    ).encode()


def pem_body(certificate: bytes) -> str:
    return "".join(certificate.decode().splitlines()[1:-1])


def signature_verifies(xml: bytes, element_id: str | None, certificate: bytes) -> bool:
    """Whether the enveloped signature of the document's root verifies with `certificate`."""
    del element_id  # the broker signs the root (Response, EntityDescriptor) here
    element = etree.fromstring(xml)
    signature = element.find(f"{{{DS}}}Signature")
    assert signature is not None
    context = verification_context(
        xmlsec.Key.from_memory(certificate, xmlsec.constants.KeyDataFormatCertPem)
    )
    context.register_id(element, "ID")
    try:
        context.verify(signature)
    except xmlsec.Error:
        return False
    return True


def instance(directory: Path, *, encrypted: bool = False) -> Settings:
    config = init_instance(directory, "http://127.0.0.1:9", "rotation.example", "Rotation test")
    if encrypted:
        text = config.read_text(encoding="utf-8")
        text = text.replace("[saml]\n", "[saml]\naccept_encrypted_assertions = true\n", 1)
        config.write_text(text, encoding="utf-8")
    return load_settings(config)


def worker(settings: Settings, clock: Clock) -> Worker:
    keys = LiveKeySet(settings, clock=clock, monotonic=clock)
    broker = build_broker(settings, keys=keys)
    return Worker(create_app(settings, services=broker), broker)


def saml_response(w: Worker) -> bytes:
    """What the front sends a publisher after a login: a signed Response with a signed
    Assertion, from the security context the front signs with."""
    settings = w.broker.settings
    content = AssertionContent(
        issuer=settings.idp_entity_id,
        audience="https://publisher.example/sp",
        destination="https://publisher.example/acs",
        in_response_to="_request",
        name_id="pseudonym",
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        sp_name_qualifier="https://publisher.example/sp",
        attributes=(),
        authn_instant=datetime.now(UTC),
        authn_context=None,
        session_index="_session",
    )
    sec = w.broker.saml_entities.server.sec
    return signed_response(sec, content, datetime.now(UTC), 300, 60).encode()


def redirect_request(w: Worker) -> str:
    """The back's AuthnRequest towards a school, signed over the Redirect binding."""
    client = w.broker.saml_entities.client
    info = client.apply_binding(
        BINDING_HTTP_REDIRECT,
        "<samlp:AuthnRequest xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol' ID='_r'/>",
        "https://school.example/sso",
        "relay",
        sign=True,
        sigalg=RSA_SHA256,
    )
    return str(dict(info["headers"])["Location"])


def id_token(w: Worker) -> str:
    """An ID token as the provider signs it: the key and kid of the moment."""
    provider = w.broker.oidc_front
    assert provider is not None
    key = provider.keys.key_for("RS256")
    header = {"alg": "RS256", "kid": str(key.kid), "typ": "JWT"}
    return jwt.encode(
        header, {"iss": provider.issuer, "sub": "x", "exp": int(time.time()) + 600}, key
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield instance(tmp_path / "broker")


def test_full_rotation_with_a_caching_peer(settings: Settings, clock: Clock) -> None:
    broker = worker(settings, clock)
    peer = CachingPeer(broker)
    lazy = CachingPeer(broker)  # fetches once and never again
    peer.refresh()
    lazy.refresh()
    assert len(peer.certificates) == 1 and len(peer.jwks["keys"]) == 2  # RS256 + ES256

    new = rotation.rotate(settings, clock())
    assert new.signing_from == START + settings.key_rotation.publish_seconds  # type: ignore[union-attr]
    # Every worker looks at the manifest again within check_seconds, without a restart.
    clock.now += settings.key_rotation.check_seconds  # type: ignore[union-attr]
    # Published, not used: what the broker signs still verifies with the old copies.
    for cached in (peer, lazy):
        assert cached.accepts_response(saml_response(broker))
        assert cached.accepts_redirect(redirect_request(broker))
        assert cached.accepts_id_token(id_token(broker))
    metadata = broker.get("/saml/idp/metadata")
    assert len(signing_certificates(metadata)) == 2
    assert len(json.loads(broker.get("/oidc/jwks"))["keys"]) == 4

    # The peer refreshes during the publish period (as its cacheDuration tells it to).
    clock.now = START + 6 * 3600
    peer.refresh()
    assert len(peer.certificates) == 2

    # Just before the switch: the old key signs one more response.
    clock.now = new.signing_from - 1
    last_of_old = saml_response(broker)
    old_token = id_token(broker)

    # At the switch: the new key signs, and the peer's copy from the publish period verifies.
    clock.now = new.signing_from
    first_of_new = saml_response(broker)
    assert peer.accepts_response(first_of_new)
    assert peer.accepts_redirect(redirect_request(broker))
    assert peer.accepts_id_token(id_token(broker))
    # The peer that never refreshed fails only now: that is what the publish period is for.
    assert not lazy.accepts_response(first_of_new)
    assert not lazy.accepts_redirect(redirect_request(broker))
    assert not lazy.accepts_id_token(id_token(broker))
    assert lazy.accepts_response(last_of_old)

    # After the switch the old key is still published until what it signed has expired.
    generations = broker.broker.keys.current().published
    old = next(g for g in generations if g.number == 1)
    assert old.retire_after is not None
    retire = old.retire_after
    assert retire >= new.signing_from + settings.saml.assertion_lifetime_seconds
    assert retire >= new.signing_from + settings.metadata.valid_days * 86400
    clock.now = retire - 1
    peer.refresh()
    assert peer.accepts_response(last_of_old)
    assert peer.accepts_id_token(old_token)
    assert len(peer.certificates) == 2

    # Retired: gone from metadata and JWKS; what the new key signs still verifies.
    clock.now = retire
    peer.refresh()
    assert len(peer.certificates) == 1 and len(peer.jwks["keys"]) == 2
    assert not peer.accepts_response(last_of_old)
    assert not peer.accepts_id_token(old_token)
    assert peer.accepts_response(saml_response(broker))

    # `keys finish` removes the retired key's files made by no rotation: the configured ones
    # are left to the operator; the key set itself shrinks to one.
    removed = rotation.finish(settings, clock())
    assert [g.number for g in removed] == [1]
    assert settings.saml.signing_key.exists()
    clock.now += settings.key_rotation.check_seconds  # type: ignore[union-attr]
    assert [g.number for g in broker.broker.keys.current().published] == [2]


def test_two_workers_switch_at_the_same_moment(settings: Settings, clock: Clock) -> None:
    first, second = worker(settings, clock), worker(settings, clock)
    assert saml_response(first) and saml_response(second)  # both built before the rotation
    new = rotation.rotate(settings, clock())
    # Each worker looks at the manifest again within check_seconds, without a restart.
    clock.now += settings.key_rotation.check_seconds  # type: ignore[union-attr]
    for w in (first, second):
        assert len(signing_certificates(w.get("/saml/idp/metadata"))) == 2
    new_cert = Path(new.files.saml_cert).read_bytes()
    for moment, expect_new in ((new.signing_from - 1, False), (new.signing_from, True)):
        clock.now = moment
        for w in (first, second):
            verified = signature_verifies(saml_response(w), None, new_cert)
            assert verified is expect_new


def test_a_second_rotation_waits_for_the_first(settings: Settings, clock: Clock) -> None:
    new = rotation.rotate(settings, clock())
    before = settings.key_rotation.manifest.read_text()  # type: ignore[union-attr]
    clock.now += 3600
    with pytest.raises(KeyRotationRefused, match="key 2 is already waiting"):
        rotation.rotate(settings, clock())
    assert settings.key_rotation.manifest.read_text() == before  # type: ignore[union-attr]
    assert not (settings.key_rotation.manifest.parent / "key-3").exists()  # type: ignore[union-attr]
    clock.now = new.signing_from
    assert rotation.rotate(settings, clock()).number == 3


def test_decryption_accepts_old_and_new_keys_during_the_overlap(
    tmp_path: Path, clock: Clock
) -> None:
    settings = instance(tmp_path / "broker", encrypted=True)
    assert settings.saml.accept_encrypted_assertions
    broker = worker(settings, clock)
    assert len(encryption_certificates(broker.get("/saml/sp/metadata"))) == 1
    old_cert = settings.saml.signing_cert.read_bytes()
    new = rotation.rotate(settings, clock())
    clock.now = new.signing_from + 60
    sp_metadata = broker.get("/saml/sp/metadata")
    certificates = encryption_certificates(sp_metadata)
    assert len(certificates) == 2
    # Each encryption key says what the broker decrypts: AES-GCM and RSA-OAEP, no CBC.
    methods = etree.fromstring(sp_metadata).findall(
        f".//{{{MD}}}KeyDescriptor[@use='encryption']/{{{MD}}}EncryptionMethod"
    )
    algorithms = {m.get("Algorithm") for m in methods}
    assert "http://www.w3.org/2009/xmlenc11#aes256-gcm" in algorithms
    assert not any("cbc" in (a or "") for a in algorithms)
    # A school that encrypted for the old key, and one that already uses the new one.
    for certificate in (old_cert, Path(new.files.saml_cert).read_bytes()):
        encrypted = encrypted_response(certificate)
        decrypted = broker.broker.saml_entities.client.sec.decrypt(encrypted)
        assert "_encrypted-assertion" in decrypted
    # After retirement the old key no longer decrypts: it is gone from the SP's key list.
    old = next(g for g in broker.broker.keys.current().published if g.number == 1)
    assert old.retire_after is not None
    clock.now = old.retire_after
    assert len(encryption_certificates(broker.get("/saml/sp/metadata"))) == 1
    with pytest.raises(Exception, match="decrypt"):
        broker.broker.saml_entities.client.sec.decrypt(encrypted_response(old_cert))


def encrypted_response(certificate: bytes) -> str:
    response = (
        "<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol' "
        "xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion' ID='_r' Version='2.0' "
        "IssueInstant='2030-01-01T00:00:00Z'>"
        "<saml:EncryptedAssertion><saml:Assertion ID='_encrypted-assertion' Version='2.0' "
        "IssueInstant='2030-01-01T00:00:00Z'><saml:Issuer>x</saml:Issuer></saml:Assertion>"
        "</saml:EncryptedAssertion></samlp:Response>"
    )
    return str(_BACKEND.encrypt_assertion(response, certificate.decode(), None, "aes128-gcm", None))


# -- real logins: pysaml2 publishers that keep the broker's metadata they were started with ----


@pytest.fixture(scope="module")
def rotating_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveDemo, Clock]]:
    """The whole demo (school, publishers) around a broker whose key set follows `clock`."""
    clock = Clock()
    clock.now = float(int(time.time()))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    live = LiveDemo(
        tmp_path_factory.mktemp("rotation-demo"),
        signing_keys=lambda settings: LiveKeySet(settings, clock=clock, monotonic=clock),
    )
    try:
        yield live, clock
    finally:
        live.close()


def logs_in(demo: LiveDemo, publisher: str) -> bool:
    """A real login at `publisher` (its pysaml2 SP checks the broker's signatures against the
    metadata it holds) as a demo student; True when the publisher accepted the response, False
    when it refused the broker's signature."""
    browser = Browser()
    login = demo.login(browser, publisher, "sanne.jansen")
    if login.final.status == 403:
        assert "This publisher refused the response: SignatureError" in login.final.text
        return False
    assert login.final.status == 200, login.final.text
    return bool(demo.received(browser, publisher).get("attributes"))


def test_real_logins_across_a_rotation(rotating_demo: tuple[LiveDemo, Clock]) -> None:
    demo, clock = rotating_demo
    settings = demo.settings
    assert logs_in(demo, "leesplank")

    new = rotation.rotate(settings, clock())
    clock.now += settings.key_rotation.check_seconds  # type: ignore[union-attr]
    # Published, not signing: the publisher with the metadata from before still logs in.
    assert logs_in(demo, "leesplank")
    # A publisher that loads the broker's metadata now (a refresh in the publish period).
    demo.add_publisher("rotation-refreshed", "leermiddelen", (Declaration("given_name", "Hi."),))
    assert logs_in(demo, "rotation-refreshed")

    clock.now = new.signing_from
    # The switch: the refreshed publisher accepts what the new key signs; the one that never
    # refreshed refuses from this moment on, and only from this moment on.
    assert logs_in(demo, "rotation-refreshed")
    assert not logs_in(demo, "leesplank")


def encrypted_school_answer(demo: LiveDemo, login: PendingLogin, broker_cert: bytes) -> str:
    """The demo school's answer as an IdP that encrypts sends it: the assertion signed, then
    encrypted for `broker_cert`, then the Response signed over the EncryptedAssertion."""
    peers = demo.directory / "peers"
    signer = Signer(peers / "school.key", peers / "school.crt")
    doc = parse(forged(demo, demo_school_forger(demo), login, sign=False))
    assertion = assertion_of(doc)
    signer.sign(assertion)
    encrypt_assertion(doc, broker_cert.decode())
    assert doc.find(".//saml:Assertion", NS) is None
    signer.sign(doc)
    return encode(doc)


def test_real_logins_with_assertions_encrypted_for_either_key(
    rotating_demo: tuple[LiveDemo, Clock],
) -> None:
    demo, clock = rotating_demo
    entities = demo.broker.saml_entities
    # This demo's broker, switched to accept encrypted assertions (a configuration setting).
    entities.settings = replace(
        entities.settings, saml=replace(entities.settings.saml, accept_encrypted_assertions=True)
    )
    # A running broker never changes its settings; here the pysaml2 objects and the signed
    # metadata built under the old ones are dropped by hand.
    entities._built = None
    entities._metadata = {}
    keys = demo.broker.keys.current()
    if len(keys.published) == 1:  # on its own: rotate and switch first
        new = rotation.rotate(demo.settings, clock())
        clock.now = new.signing_from
        keys = demo.broker.keys.current()
    assert len(keys.published) == 2
    assert len(encryption_certificates(entities.sp_metadata().encode())) == 2
    for generation in keys.published:
        login = start_login(demo, "leesplank")
        cert = generation.files.saml_cert.read_bytes()
        page = deliver(demo, login, encrypted_school_answer(demo, login, cert))
        assert page.status == 200, page.text[:300]
        assert demo.answers_publisher(page)

    # Once the old key has retired, an assertion encrypted for it is refused.
    old = next(g for g in keys.published if g is not keys.signing)
    assert old.retire_after is not None
    clock.now = old.retire_after
    login = start_login(demo, "leesplank")
    page = deliver(
        demo, login, encrypted_school_answer(demo, login, old.files.saml_cert.read_bytes())
    )
    assert 400 <= page.status < 500
    assert not demo.answers_publisher(page)
