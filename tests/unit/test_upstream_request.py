"""The AuthnRequest to a school, built and signed by the broker itself (upstream_request.py,
redirect_signature.signed_redirect_url, SamlEntities.redirect_signing_key).

The message must say exactly what pysaml2's `create_authn_request` says for the documented
profile (docs/saml-profile.md: the answer by HTTP-POST to the broker's ACS), the query signature
must verify with the certificate of the key of the moment, and the loaded key must follow the
key set.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST, saml, samlp
from saml2.client import Saml2Client
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.sigver import verify_redirect_signature

from broker.certificates import ec_private_key_pem, write_pair
from broker.cli.instance import init_instance
from broker.config import Settings, load_settings
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyChoice, KeyFiles, KeyGeneration
from broker.login.login_model import IdpEntry
from broker.saml.entities import SamlEntities, sp_config
from broker.saml.redirect_query import read_redirect_query
from broker.saml.redirect_signature import check_query_signature, signed_redirect_url
from broker.saml.upstream_request import (
    AuthnRequestContent,
    authn_request_xml,
    deflate_and_encode,
    new_request_id,
)
from broker.saml.xmlsig import _AllowListRSACrypto, enable_inprocess_crypto
from broker.saml.xmlsig_policy import RSA_SHA256

SSO = "https://idp.school.example/sso"
ACS = "https://kb.example/saml/sp/acs"
NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
REFS = (
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    "https://refeds.org/profile/mfa",
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    enable_inprocess_crypto()
    directory = tmp_path_factory.mktemp("upstream")
    return load_settings(init_instance(directory / "kb", "https://kb.example", "kb", "KB"))


def pysaml2_request(client: Saml2Client, force_authn: bool, refs: tuple[str, ...]) -> bytes:
    """pysaml2's create_authn_request with the broker's earlier arguments, `binding` being the
    Response's binding in pysaml2 (it was HTTP-Redirect before: no ACS URL then, and a
    ProtocolBinding the Web Browser SSO profile forbids), and AllowCreate "true" (pysaml2's
    default is "false", which lets a school refuse a student's first login)."""
    extra: dict[str, Any] = {}
    if refs:
        extra["requested_authn_context"] = samlp.RequestedAuthnContext(
            authn_context_class_ref=[saml.AuthnContextClassRef(text=r) for r in refs],
            comparison="exact",
        )
    _, request = client.create_authn_request(
        SSO,
        binding=BINDING_HTTP_POST,
        sign=False,
        nameid_format=NAMEID_FORMAT_PERSISTENT,
        allow_create="true",
        force_authn="true" if force_authn else None,
        **extra,
    )
    return str(request).encode()


def canonical(xml: bytes) -> Any:
    """Names, attributes, text and children: the message, whatever the namespace prefixes."""

    def walk(element: etree._Element) -> Any:
        attributes = dict(element.attrib)
        # Random and clock-made: compared for shape, not value.
        for name in ("ID", "IssueInstant"):
            if name in attributes:
                attributes[name] = "*"
        text = (element.text or "").strip()
        return (element.tag, sorted(attributes.items()), text, [walk(c) for c in element])

    return walk(etree.fromstring(xml))


@pytest.mark.parametrize(
    ("force_authn", "refs"), [(False, ()), (True, ()), (False, REFS[:1]), (True, REFS)]
)
def test_the_request_says_what_pysaml2_said(
    settings: Settings, force_authn: bool, refs: tuple[str, ...]
) -> None:
    client = Saml2Client(config=sp_config(settings, []))
    content = AuthnRequestContent(
        settings.sp_entity_id, SSO, settings.url("/saml/sp/acs"), force_authn, refs
    )
    ours = authn_request_xml(content, new_request_id(), NOW)
    assert canonical(ours) == canonical(pysaml2_request(client, force_authn, refs))


def test_the_request_carries_force_authn_and_the_requested_contexts() -> None:
    xml = authn_request_xml(
        AuthnRequestContent("https://kb.example/sp", SSO, ACS, True, REFS), "id-1", NOW
    )
    root = etree.fromstring(xml)
    ns = {"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE}
    assert root.get("ForceAuthn") == "true"
    assert root.get("IssueInstant") == "2026-11-28T12:00:00Z"
    assert root.get("Destination") == SSO
    # The school answers by HTTP-POST at the broker's ACS (a Redirect Response is forbidden).
    assert root.get("AssertionConsumerServiceURL") == ACS
    assert root.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    context = root.find("samlp:RequestedAuthnContext", ns)
    assert context is not None and context.get("Comparison") == "exact"
    assert [e.text for e in context.findall("saml:AuthnContextClassRef", ns)] == list(REFS)
    policy = root.find("samlp:NameIDPolicy", ns)
    assert policy is not None and policy.get("Format") == NAMEID_FORMAT_PERSISTENT
    # The school may make the student's identifier for the broker on this very request (core
    # 3.4.1.1): with "false" a school that makes it on first use could refuse a first login.
    assert policy.get("AllowCreate") == "true"
    plain = etree.fromstring(
        authn_request_xml(AuthnRequestContent("https://kb.example/sp", SSO, ACS), "id-2", NOW)
    )
    assert plain.get("ForceAuthn") is None
    assert plain.find("samlp:RequestedAuthnContext", ns) is None


LISTED = (
    IdpEntry("https://idp.school.example/", "School", "https://idp.school.example/sso"),
    IdpEntry("https://idp.board.example/"),
)


@pytest.mark.parametrize(
    ("proxy_count", "idp_list", "complete"),
    [(2, (), None), (2, LISTED, "https://list.example/all"), (None, LISTED, None)],
)
def test_a_scoping_goes_after_the_requested_contexts(
    settings: Settings,
    proxy_count: int | None,
    idp_list: tuple[IdpEntry, ...],
    complete: str | None,
) -> None:
    """What pysaml2 makes of a Scoping with ProxyCount and the service's IDPList (core
    3.4.1.5.1: passed on unchanged), in the schema's place (after RequestedAuthnContext)."""
    content = AuthnRequestContent(
        settings.sp_entity_id,
        SSO,
        settings.url("/saml/sp/acs"),
        True,
        REFS,
        proxy_count=proxy_count,
        idp_list=idp_list,
        idp_list_get_complete=complete,
    )
    ours = etree.fromstring(authn_request_xml(content, new_request_id(), NOW))
    assert [etree.QName(e).localname for e in ours][-2:] == ["RequestedAuthnContext", "Scoping"]
    client = Saml2Client(config=sp_config(settings, []))
    _, theirs = client.create_authn_request(
        SSO,
        binding=BINDING_HTTP_POST,
        sign=False,
        nameid_format=NAMEID_FORMAT_PERSISTENT,
        allow_create="true",
        force_authn="true",
        requested_authn_context=samlp.RequestedAuthnContext(
            authn_context_class_ref=[saml.AuthnContextClassRef(text=r) for r in REFS],
            comparison="exact",
        ),
        scoping=samlp.Scoping(
            proxy_count=None if proxy_count is None else str(proxy_count),
            idp_list=samlp.IDPList(
                idp_entry=[
                    samlp.IDPEntry(provider_id=e.provider_id, name=e.name, loc=e.loc)
                    for e in idp_list
                ],
                get_complete=None if complete is None else samlp.GetComplete(text=complete),
            )
            if idp_list
            else None,
        ),
    )
    assert canonical(etree.tostring(ours)) == canonical(str(theirs).encode())


def test_text_from_metadata_is_escaped_not_markup() -> None:
    location = "https://idp.school.example/sso?a=1&b=<2>"
    root = etree.fromstring(
        authn_request_xml(
            AuthnRequestContent('https://kb.example/"sp"', location, ACS), "id-1", NOW
        )
    )
    assert root.get("Destination") == location
    assert root[0].text == 'https://kb.example/"sp"'


def test_request_ids_are_unique_xml_ids() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    # 160 random bits as 40 hex digits behind an NCName-safe prefix (message_ids.py).
    assert all(i.startswith("id-") and len(i) == 43 for i in ids)


def test_the_deflate_encoding_is_raw_deflate() -> None:
    xml = authn_request_xml(AuthnRequestContent("https://kb.example/sp", SSO, ACS), "id-1", NOW)
    assert zlib.decompress(base64.b64decode(deflate_and_encode(xml)), -15) == xml


@pytest.mark.parametrize("contexts", [0, 1, 8])
@pytest.mark.parametrize("force_authn", [False, True])
def test_the_small_deflate_state_gives_the_bytes_zlibs_defaults_give(
    contexts: int, force_authn: bool
) -> None:
    # An AuthnRequest is far smaller than the 4 KiB window: the same matches, the same output.
    content = AuthnRequestContent(
        issuer="https://broker.example.nl/saml/sp/metadata",
        destination="https://idp.school.example/sso/redirect?tenant=é&x=1",
        acs_url="https://broker.example.nl/saml/sp/acs",
        force_authn=force_authn,
        authn_contexts=tuple(f"https://assurance.example/level/{n}" for n in range(contexts)),
    )
    xml = authn_request_xml(content, new_request_id(), datetime.now(UTC))
    defaults = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert base64.b64decode(deflate_and_encode(xml)) == defaults.compress(xml) + defaults.flush()
    # A message larger than the window is still raw DEFLATE any inflater reads.
    large = xml * 20
    assert zlib.decompress(base64.b64decode(deflate_and_encode(large)), -15) == large


# -- the query signature ----------------------------------------------------------------------


@dataclass
class Pair:
    key: Path
    cert: Path

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert.read_bytes())

    def pem_body(self) -> str:
        lines = self.cert.read_text().strip().splitlines()
        return "".join(lines[1:-1])


def make_pair(directory: Path, name: str) -> Pair:
    pair = Pair(directory / f"{name}.key", directory / f"{name}.crt")
    write_pair(pair.key, pair.cert, name)
    return pair


def signed_octets(url: str) -> tuple[bytes, bytes]:
    """The octets the binding signs, taken from the query as sent, and the signature."""
    raw = dict(part.split("=", 1) for part in urlsplit(url).query.split("&"))
    signed = "&".join(f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw)
    signature = base64.b64decode(parse_qs(urlsplit(url).query)["Signature"][0])
    return signed.encode(), signature


def verifies(url: str, pair: Pair) -> bool:
    octets, signature = signed_octets(url)
    public_key = pair.certificate().public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    try:
        public_key.verify(signature, octets, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class Keys:
    """A key source whose choice the test sets."""

    def __init__(self, choice: KeyChoice) -> None:
        self.choice = choice

    def current(self) -> KeyChoice:
        return self.choice

    def now(self) -> float:
        return 0.0


def generation(number: int, pair: Pair) -> KeyGeneration:
    return KeyGeneration(number, KeyFiles(pair.key, pair.cert), 0.0, 0.0)


def only(number: int, pair: Pair) -> KeyChoice:
    chosen = generation(number, pair)
    return KeyChoice(chosen, (chosen,), math.inf)


@pytest.fixture
def pairs(tmp_path: Path) -> Iterator[tuple[Pair, Pair]]:
    yield make_pair(tmp_path, "first"), make_pair(tmp_path, "second")


def test_the_query_signature_verifies_with_our_certificate_and_pysaml2(
    settings: Settings, pairs: tuple[Pair, Pair]
) -> None:
    first, _ = pairs
    entities = SamlEntities(settings, None, keys=Keys(only(1, first)))  # type: ignore[arg-type]
    xml = authn_request_xml(AuthnRequestContent(settings.sp_entity_id, SSO, ACS), "id-1", NOW)
    relay_state = "login id/with+odd=chars&more"
    url = signed_redirect_url(
        SSO, ("SAMLRequest", deflate_and_encode(xml)), relay_state, entities.redirect_signing_key()
    )
    assert url.startswith(SSO + "?SAMLRequest=")
    assert list(parse_qs(urlsplit(url).query)) == [
        "SAMLRequest",
        "RelayState",
        "SigAlg",
        "Signature",
    ]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["SigAlg"] == RSA_SHA256
    assert query["RelayState"] == relay_state
    assert verifies(url, first)
    # A checker that re-encodes the parameters (pysaml2's) agrees with one that takes the query.
    assert verify_redirect_signature(query, _AllowListRSACrypto(None), first.pem_body())
    # And the broker's own checker, over the query as it stands, as a peer broker would.
    received = read_redirect_query(urlsplit(url).query.encode())
    check_query_signature(
        [first.pem_body()], ("SAMLRequest", query["SAMLRequest"]), relay_state, received
    )
    # The signature covers the RelayState.
    assert not verify_redirect_signature(
        query | {"RelayState": "another"}, _AllowListRSACrypto(None), first.pem_body()
    )


def test_a_location_with_a_query_gets_the_parameters_appended(
    settings: Settings, pairs: tuple[Pair, Pair]
) -> None:
    first, _ = pairs
    entities = SamlEntities(settings, None, keys=Keys(only(1, first)))  # type: ignore[arg-type]
    location = "https://idp.school.example/sso?tenant=7"
    url = signed_redirect_url(
        location, ("SAMLRequest", "abc+/="), None, entities.redirect_signing_key()
    )
    assert url.startswith(location + "&SAMLRequest=abc%2B%2F%3D&SigAlg=")
    assert "RelayState" not in url
    assert verifies(url, first)


def test_the_signing_key_follows_the_key_set(settings: Settings, pairs: tuple[Pair, Pair]) -> None:
    first, second = pairs
    keys = Keys(only(1, first))
    entities = SamlEntities(settings, None, keys=keys)  # type: ignore[arg-type]
    key = entities.redirect_signing_key()
    assert entities.redirect_signing_key() is key  # kept while the key set stays
    url = signed_redirect_url(SSO, ("SAMLRequest", "x"), "r", key)
    assert verifies(url, first) and not verifies(url, second)

    # The next key published: the first still signs, and the same key object is kept.
    keys.choice = KeyChoice(
        generation(1, first), (generation(1, first), generation(2, second)), math.inf
    )
    assert entities.redirect_signing_key().private_numbers() == key.private_numbers()

    # The switch moment: from now on the second key signs, loaded anew.
    keys.choice = KeyChoice(
        generation(2, second), (generation(2, second), generation(1, first)), math.inf
    )
    switched = entities.redirect_signing_key()
    url = signed_redirect_url(SSO, ("SAMLRequest", "x"), "r", switched)
    assert verifies(url, second) and not verifies(url, first)
    assert entities.redirect_signing_key() is switched


def test_a_signing_key_that_is_not_rsa_is_a_configuration_error(
    settings: Settings, pairs: tuple[Pair, Pair], tmp_path: Path
) -> None:
    first, _ = pairs
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(ec_private_key_pem())
    wrong = Pair(ec_key, first.cert)
    entities = SamlEntities(settings, None, keys=Keys(only(3, wrong)))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        entities.redirect_signing_key()
