"""The indexed metadata store (broker/saml/metadata_index.py) answers every lookup as pysaml2's
own MetadataStore does, over a federation of many sources, and after sources are replaced,
removed or an entity moves from one source to another: a differential test."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from saml2.client import Saml2Client
from saml2.config import Config
from saml2.mdstore import InMemoryMetaData, MetadataStore
from saml2.server import Server

from bench.metadata_aggregate import certificate_body
from broker.certificates import self_signed_pair
from broker.cli.instance import init_instance
from broker.config import load_settings
from broker.saml.entities import idp_config, sp_config
from broker.saml.metadata_index import IndexedMetadataStore
from broker.saml.xmlsig import enable_inprocess_crypto

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS = (
    f'xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
    'xmlns:mdattr="urn:oasis:names:tc:SAML:metadata:attribute" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
    'xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui" '
    'xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" '
    'xmlns:idpdisc="urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol"'
)
PROTOCOL = 'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
DISCO = "urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol"
CERTS = [certificate_body(self_signed_pair(f"member-{i}")[1]) for i in range(3)]


def _key(cert: str, use: str | None) -> str:
    used = f' use="{use}"' if use else ""
    return (
        f"<md:KeyDescriptor{used}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )


def _extensions(n: int) -> str:
    return (
        "<md:Extensions><mdattr:EntityAttributes>"
        '<saml:Attribute Name="http://macedir.org/entity-category">'
        f"<saml:AttributeValue>https://category.example/{n % 3}</saml:AttributeValue>"
        "</saml:Attribute></mdattr:EntityAttributes></md:Extensions>"
    )


def _tail(n: int) -> str:
    return (
        f'<md:Organization><md:OrganizationName xml:lang="en">Org {n}</md:OrganizationName>'
        f'<md:OrganizationDisplayName xml:lang="en">Org {n}</md:OrganizationDisplayName>'
        '<md:OrganizationURL xml:lang="en">https://org.example/</md:OrganizationURL>'
        '</md:Organization><md:ContactPerson contactType="technical">'
        f"<md:GivenName>Desk {n}</md:GivenName>"
        "<md:EmailAddress>mailto:desk@org.example</md:EmailAddress></md:ContactPerson>"
    )


def idp(n: int, host: str = "school", cert: int = 0) -> str:
    base = f"https://idp{n}.{host}.example"
    ui = (
        '<md:Extensions><shibmd:Scope regexp="false">school.example</shibmd:Scope><mdui:UIInfo>'
        f'<mdui:DisplayName xml:lang="nl">School {n}</mdui:DisplayName></mdui:UIInfo>'
        "</md:Extensions>"
    )
    posts = f'<md:SingleSignOnService Binding="{POST}" Location="{base}/post"/>' if n % 2 else ""
    return (
        f'<md:EntityDescriptor entityID="https://idp{n}.school.example/metadata">'
        f"{_extensions(n)}<md:IDPSSODescriptor {PROTOCOL}>{ui}"
        f"{_key(CERTS[cert], 'signing')}{_key(CERTS[(cert + 1) % 3], None)}"
        f'<md:SingleLogoutService Binding="{REDIRECT}" Location="{base}/slo"/>'
        f'<md:SingleSignOnService Binding="{REDIRECT}" Location="{base}/sso"/>{posts}'
        f"</md:IDPSSODescriptor>{_tail(n)}</md:EntityDescriptor>"
    )


def sp(n: int, host: str = "publisher", cert: int = 0) -> str:
    base = f"https://sp{n}.{host}.example"
    disco = (
        "<md:Extensions><idpdisc:DiscoveryResponse "
        f'Binding="{DISCO}" Location="{base}/disco" index="0"/></md:Extensions>'
    )
    return (
        f'<md:EntityDescriptor entityID="https://sp{n}.publisher.example/metadata">'
        f'{_extensions(n)}<md:SPSSODescriptor {PROTOCOL} AuthnRequestsSigned="true">{disco}'
        f"{_key(CERTS[cert], 'signing')}{_key(CERTS[(cert + 2) % 3], 'encryption')}"
        f'<md:SingleLogoutService Binding="{POST}" Location="{base}/slo"/>'
        f'<md:AssertionConsumerService Binding="{POST}" Location="{base}/acs" index="0"/>'
        f'<md:AssertionConsumerService Binding="{REDIRECT}" Location="{base}/acs2" index="1"/>'
        '<md:AttributeConsumingService index="0"><md:ServiceName xml:lang="en">S</md:ServiceName>'
        '<md:RequestedAttribute Name="urn:oid:2.5.4.42" isRequired="true"/>'
        '<md:RequestedAttribute Name="urn:oid:2.5.4.4"/></md:AttributeConsumingService>'
        f"</md:SPSSODescriptor>{_tail(n)}</md:EntityDescriptor>"
    )


def document(*entities: str) -> str:
    """One entity as its own document, several as an aggregate (md:EntitiesDescriptor)."""
    if len(entities) == 1:
        return entities[0].replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {NS} ", 1)
    return f"<md:EntitiesDescriptor {NS}>{''.join(entities)}</md:EntitiesDescriptor>"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    enable_inprocess_crypto()
    folder = tmp_path_factory.mktemp("index")
    settings = load_settings(init_instance(folder / "kb", "https://kb.example", "kb", "KB"))
    return idp_config(settings, [])


def parsed(config: Config, xml: str) -> InMemoryMetaData:
    source = InMemoryMetaData(config.attribute_converters, xml)
    source.load()
    return source


class Pair:
    """pysaml2's store and ours, given the same sources in the same order."""

    def __init__(self, config: Config) -> None:
        self.plain = MetadataStore(config.attribute_converters, config)
        self.indexed = IndexedMetadataStore(config.attribute_converters, config)

    def put(self, key: str, source: InMemoryMetaData) -> None:
        self.plain.metadata[key] = source
        self.indexed.metadata[key] = source

    def remove(self, key: str) -> None:
        del self.plain.metadata[key]
        del self.indexed.metadata[key]


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        result = call()
    except Exception as err:  # the refusal is part of the behaviour compared
        return ("raised", type(err), err.args)
    if isinstance(result, Iterator):
        return ("gave", list(result))
    return ("gave", result)


def _calling(method: str, *args: object) -> Callable[[Any], Any]:
    """A lookup of `method(*args)` on the store it is given (the arguments bound now)."""
    return lambda s: getattr(s, method)(*args)


def _lookups(entity_id: str) -> Iterable[tuple[str, Callable[[Any], Any]]]:
    e = entity_id
    yield "getitem", lambda s: s[e]
    for binding in (None, POST, REDIRECT):
        yield f"sso {binding}", _calling("single_sign_on_service", e, binding)
        yield f"acs {binding}", _calling("assertion_consumer_service", e, binding)
        for typ in ("idpsso", "spsso"):
            yield (
                f"slo {typ} {binding}",
                _calling("single_logout_service", e, binding, typ),
            )
    yield "service raw", lambda s: s.service(e, "spsso_descriptor", "assertion_consumer_service")
    for descriptor in ("any", "idpsso", "spsso"):
        for use in ("signing", "encryption"):
            yield f"certs {descriptor} {use}", _calling("certs", e, descriptor, use)
    yield "attribute_requirement", lambda s: s.attribute_requirement(e)
    yield "attribute_requirement 0", lambda s: s.attribute_requirement(e, 0)
    yield "attribute_consuming", lambda s: s.attribute_consuming_service(e)
    yield "discovery_response", lambda s: s.discovery_response(e)
    yield "extension", lambda s: s.extension(e, "spsso_descriptor", "x")
    yield "entity_categories", lambda s: s.entity_categories(e)
    yield "entity_attributes", lambda s: s.entity_attributes(e)
    yield "supported_algorithms", lambda s: s.supported_algorithms(e)
    yield "registration_info", lambda s: s.registration_info(e)
    yield "name", lambda s: s.name(e)
    yield "bindings", lambda s: s.bindings(e, "spsso_descriptor", "assertion_consumer_service")
    yield "scopes", lambda s: [x["text"] for x in s.shibmd_scopes(e, "idpsso_descriptor")]
    yield "display_name", lambda s: s.mdui_uiinfo_display_name(e, "nl")
    yield "contacts", lambda s: s.contact_person_data(e)
    yield "subject_id", lambda s: s.subject_id_requirement(e)


def bodies(certs: list[tuple[str | None, str]]) -> list[str]:
    """pysaml2's certificates as metadata carries them (it wraps the base64 in lines)."""
    return ["".join(cert.split()) for _, cert in certs]


def assert_same(pair: Pair, entity_ids: Iterable[str]) -> int:
    compared = 0
    for entity_id in entity_ids:
        for what, lookup in _lookups(entity_id):
            ours = _outcome(lambda: lookup(pair.indexed))
            theirs = _outcome(lambda: lookup(pair.plain))
            assert ours == theirs, (entity_id, what)
            compared += 1
    for whole in (
        lambda s: sorted(s.keys()),
        len,
        lambda s: s.entities(),
        lambda s: sorted(s.identity_providers()),
        lambda s: sorted(s.service_providers()),
        lambda s: sorted(s.with_descriptor("idpsso")),
    ):
        assert _outcome(lambda: whole(pair.indexed)) == _outcome(lambda: whole(pair.plain))
    return compared


IDPS = [f"https://idp{n}.school.example/metadata" for n in range(60)]
SPS = [f"https://sp{n}.publisher.example/metadata" for n in range(40)]
UNKNOWN = ["https://nobody.example/metadata", "", "https://idp1.school.example/metadata/"]


def federation(config: Config) -> Pair:
    """60 schools and 40 services, one document each, after an aggregate of four more and a
    document whose only entity expired (a source without entities)."""
    pair = Pair(config)
    aggregate = [idp(n, "aggregate") for n in range(60, 62)] + [sp(n) for n in range(40, 42)]
    pair.put("inline:aggregate", parsed(config, document(*aggregate)))
    expired = idp(99).replace('entityID="', 'validUntil="2001-01-01T00:00:00Z" entityID="', 1)
    pair.put("inline:expired", parsed(config, document(expired)))
    for n in range(60):
        pair.put(f"inline:idp{n}", parsed(config, document(idp(n))))
    for n in range(40):
        pair.put(f"inline:sp{n}", parsed(config, document(sp(n))))
    return pair


ALL = (
    IDPS
    + SPS
    + UNKNOWN
    + [
        "https://idp60.school.example/metadata",
        "https://sp41.publisher.example/metadata",
        "https://idp99.school.example/metadata",
    ]
)


def test_every_lookup_is_pysaml2s_over_a_federation(config: Config) -> None:
    pair = federation(config)
    assert assert_same(pair, ALL) > 3_500
    # The comparison compares something: known entities answer, unknown ones are refused.
    store = pair.indexed
    assert store.entity_categories(IDPS[4]) == ["https://category.example/1"]
    assert [s["text"] for s in store.shibmd_scopes(IDPS[4], "idpsso_descriptor")]
    assert list(store.mdui_uiinfo_display_name(IDPS[4], "nl")) == ["School 4"]
    assert store.discovery_response(SPS[4])[0]["location"].endswith("/disco")
    assert store.attribute_requirement(SPS[4])["required"]
    assert len(store.single_sign_on_service(IDPS[5], POST)) == 1
    assert pair.indexed.single_sign_on_service(IDPS[59])[0]["location"].endswith("/sso")
    assert bodies(pair.indexed.certs(SPS[39], "spsso", "encryption")) == [CERTS[2]]
    assert _outcome(lambda: pair.indexed[UNKNOWN[0]])[1] is KeyError


def test_an_entity_in_two_sources_is_answered_from_the_first_in_order(config: Config) -> None:
    pair = federation(config)
    # idp61 is in the aggregate (first source); registered directly as well, later.
    pair.put("inline:idp61-direct", parsed(config, document(idp(61, "direct", cert=1))))
    assert assert_same(pair, [IDPS[0], "https://idp61.school.example/metadata"])
    sso = pair.indexed.single_sign_on_service("https://idp61.school.example/metadata")
    assert sso[0]["location"] == "https://idp61.aggregate.example/sso"


def test_replaced_moved_and_removed_sources_leave_nothing_behind(config: Config) -> None:
    pair = federation(config)
    assert_same(pair, ALL)  # the index is built now; every change below must be seen
    moved = "https://idp60.school.example/metadata"
    # Certificate roll-over: the same key, a new document with another certificate.
    pair.put("inline:idp5", parsed(config, document(idp(5, cert=2))))
    # An entity leaves the aggregate and is registered directly (another host).
    aggregate = [idp(61, "aggregate")] + [sp(n) for n in range(40, 42)]
    pair.put("inline:aggregate", parsed(config, document(*aggregate)))
    pair.put("inline:idp60-direct", parsed(config, document(idp(60, "direct"))))
    # A school removed; a service removed and registered again under a new key.
    pair.remove("inline:idp7")
    pair.remove("inline:sp3")
    pair.put("inline:sp3-again", parsed(config, document(sp(3, "again"))))
    assert_same(pair, ALL)

    store = pair.indexed
    # Signing: the new certificate and the one without `use`; the old one is gone.
    assert bodies(store.certs(IDPS[5], "idpsso", "signing")) == [CERTS[2], CERTS[0]]
    assert store.single_sign_on_service(moved)[0]["location"].startswith("https://idp60.direct.")
    assert _outcome(lambda: store.single_sign_on_service(IDPS[7]))[1].__name__ == (
        "UnknownSystemEntity"
    )
    assert store.assertion_consumer_service(SPS[3])[0]["location"].startswith("https://sp3.again.")


def test_pysaml2s_own_writes_are_seen(config: Config, tmp_path: Path) -> None:
    """`load`, `imp`, `reload` and `store[key] = ...` write the sources as pysaml2 does."""
    store = IndexedMetadataStore(config.attribute_converters, config)
    first = tmp_path / "one.xml"
    first.write_text(document(idp(1)))
    store.imp({"local": [str(first)]})
    assert store.single_sign_on_service(IDPS[1])
    store.load("inline", document(sp(2)))
    assert store.assertion_consumer_service(SPS[2])
    store.reload({"inline": [document(idp(3))]})
    assert store.single_sign_on_service(IDPS[3])
    for gone in (IDPS[1], SPS[2]):
        assert _outcome(lambda: store[gone])[1] is KeyError
    store["replaced"] = parsed(config, document(idp(4)))
    assert store[IDPS[4]]["entity_id"] == IDPS[4]


class _FetchedPerEntity(InMemoryMetaData):  # type: ignore[misc]
    """A source that knows entities only when asked (as MDQ does)."""

    def __init__(self, config: Config, xml: str) -> None:
        super().__init__(config.attribute_converters, xml)
        self.load()
        self._hidden: dict[str, Any] = self.entity
        self.entity: dict[str, Any] = {}

    def __getitem__(self, item: str) -> Any:
        return self._hidden[item]


def test_a_source_without_a_known_entity_list_turns_the_index_off(config: Config) -> None:
    pair = Pair(config)
    pair.put("inline:idp1", parsed(config, document(idp(1))))
    pair.put("mdq", _FetchedPerEntity(config, document(idp(2))))
    assert assert_same(pair, [IDPS[1], IDPS[2], UNKNOWN[0]])
    assert pair.indexed[IDPS[2]]["idpsso_descriptor"]


def test_the_brokers_entities_use_the_indexed_store(config: Config, tmp_path: Path) -> None:
    settings = load_settings(init_instance(tmp_path / "kb", "https://kb.example", "kb", "KB"))
    for made in (idp_config(settings, []), sp_config(settings, [])):
        assert isinstance(made.metadata, IndexedMetadataStore)
    server = Server(config=idp_config(settings, []))
    client = Saml2Client(config=sp_config(settings, []))
    for entity in (server, client):
        assert entity.metadata is entity.config.metadata is entity.sec.metadata
