"""Federation metadata end to end, on a demo of its own with two broker workers.

The broker's address is served by two app instances that share the registry database and the
login store but nothing else (each its own cached registry view and pysaml2 entities), behind a
round-robin dispatcher: consecutive requests of one login land on different workers, as behind
gunicorn. A publisher that the operator registered by entity id only gets its metadata from a
signed aggregate on a loopback feed; after `metadata refresh` it logs in, through both workers,
without a restart. When the copy passes its validUntil the workers stop trusting it by the clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import xmlsec
from lxml import etree
from saml2.attribute_converter import ac_factory
from saml2.mdstore import InMemoryMetaData

from bench.metadata_aggregate import certificate_body, signed_aggregate, sp_entity
from broker.certificates import self_signed_pair, write_pair
from broker.cli.metadata_refresh import refresh_sources
from broker.config import MetadataSettings, MetadataSource, Organization, Settings
from broker.core.model import Service
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from broker.saml.aggregate import parse_time
from broker.saml.entities import idp_config, signed_metadata, sp_config
from broker.web import create_app
from broker.web.metadata_status import metadata_problems
from broker.web.wiring import Broker, build_broker
from tests.support.client import Browser, Page
from tests.support.feed import Feed
from tests.support.live import LiveDemo, Publisher, free_ports, running_demo, serve_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

SIGNER_KEY, SIGNER_CERT = self_signed_pair("federation signer")
OTHER_CERT = certificate_body(self_signed_pair("another member")[1])
OTHER_SP = sp_entity("https://other.example/metadata", "https://other.example/acs", OTHER_CERT)


def second_worker(first: Broker) -> Broker:
    """What a second gunicorn worker holds: its own registry connection, cached view and
    pysaml2 entities; the shared parts are the database and the login store."""
    return build_broker(first.settings, store=first.store)


class RoundRobin:
    """A WSGI app handing each request to the next worker, and counting who got what."""

    def __init__(self, apps: Iterable[WSGIApplication]) -> None:
        self.apps = list(apps)
        self.served = [0] * len(self.apps)
        self._next = itertools.cycle(range(len(self.apps)))
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            index = next(self._next)
            self.served[index] += 1
        return self.apps[index](environ, start_response)


@dataclasses.dataclass
class Federation:
    demo: LiveDemo
    settings: Settings
    feed: Feed
    workers: list[Broker]
    dispatcher: RoundRobin

    def publish(self, entities: list[str], valid_for: timedelta = timedelta(days=7)) -> bytes:
        """Sign and serve a feed published now (as federations date theirs): a later one is
        newer whatever its validUntil. Returns it, for a test to replay."""
        now = datetime.now(UTC)
        self.feed.body = signed_aggregate(
            entities, SIGNER_KEY, valid_until=now + valid_for, published=now
        )
        return self.feed.body

    def problems(self, worker: int) -> dict[str, str]:
        """What /readyz would say on that worker (configured with the source)."""
        configured = dataclasses.replace(self.workers[worker], settings=self.settings)
        return metadata_problems(configured)

    def refresh(self) -> str:
        (outcome,) = refresh_sources(self.settings, self.demo.registry)
        return outcome.result if outcome.reason is None else f"{outcome.result}:{outcome.reason}"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    folder = tmp_path_factory.mktemp("federation-demo")
    with running_demo(folder) as demo:
        signer = folder / "federation-signer.crt"
        signer.write_bytes(SIGNER_CERT)
        feed = Feed()
        source = MetadataSource("federation", feed.url, None, (signer,), refresh_seconds=600)
        settings = dataclasses.replace(demo.settings, metadata=MetadataSettings(sources=(source,)))
        first = demo.broker
        second = second_worker(first)
        apps: list[WSGIApplication] = [
            demo.servers[0].app,
            create_app(demo.settings, services=second),
        ]
        assert demo.servers[0].server_port == demo.port
        dispatcher = RoundRobin(apps)
        demo.servers[0].app = dispatcher
        try:
            yield Federation(demo, settings, feed, [first, second], dispatcher)
        finally:
            feed.stop()
            second.registry.close()


def federated_publisher(federation: Federation, service_id: str) -> tuple[Publisher, str]:
    """A publisher SP running on its own port whose metadata only the federation has; the
    operator registered it by entity id (as `publisher add --saml-entity-id` does)."""
    demo = federation.demo
    base_url = f"http://localhost:{free_ports(1)}"
    settings = PublisherSpSettings(
        base_url=base_url,
        entity_id=f"{base_url}/metadata",
        name=f"{service_id} (federation member)",
        key_file=demo.directory / "peers" / f"{service_id}.key",
        cert_file=demo.directory / "peers" / f"{service_id}.crt",
        idp_metadata=(demo.broker.saml_entities.idp_metadata(),),
        cross_site_cookie=True,
    )
    write_pair(settings.key_file, settings.cert_file, service_id)
    demo.registry.add_service(Service(service_id, settings.name, settings.entity_id, None), None)
    demo.servers.append(serve_app(base_url, create_publisher_sp_app(settings)))
    publisher = Publisher(service_id, base_url, None)
    demo.publishers[service_id] = publisher
    xml = publisher_sp_metadata(settings)
    return publisher, xml[xml.index("<", 1) :] if xml.startswith("<?xml") else xml


def entity_known_to(worker: Broker, entity_id: str) -> bool:
    return entity_id in worker.saml_entities.server.metadata.keys()


def known_to_every_worker(federation: Federation, entity_id: str) -> None:
    """Wait (at most 5 s) until every worker's view holds the entity."""
    deadline = time.monotonic() + 5
    while not all(entity_known_to(w, entity_id) for w in federation.workers):
        assert time.monotonic() < deadline, "a worker did not pick up the metadata"
        time.sleep(0.2)


def refused_as_unknown(page: Page, caplog: pytest.LogCaptureFixture) -> bool:
    return (
        page.status == 400
        and "SAMLResponse" not in page.text
        and "refused code=unknown_service " in caplog.text
    )


def test_a_new_publisher_in_the_refreshed_aggregate_logs_in_on_every_worker(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    demo = federation.demo
    publisher, metadata = federated_publisher(federation, "federated")
    # The first aggregate does not hold it yet: registered, but no worker trusts it.
    federation.publish([OTHER_SP])
    assert federation.refresh() == "updated"
    for worker in federation.workers:
        assert not entity_known_to(worker, publisher.entity_id)
    assert refused_as_unknown(demo.login(Browser(), "federated", "sanne.jansen").final, caplog)

    federation.publish([OTHER_SP, metadata])
    assert federation.refresh() == "updated"
    # No restart: each worker's view sees the new generation on its next look.
    known_to_every_worker(federation, publisher.entity_id)
    served_before = list(federation.dispatcher.served)
    for uid in ("sanne.jansen", "daan.devries"):
        browser = Browser()
        login = demo.login(browser, "federated", uid)
        assert login.final.status == 200, login.final.text
        received = demo.received(browser, "federated")
        assert received["issuer"] == demo.idp_entity_id
        assert len(received["name_id"]["value"]) == 64
    # Both workers answered parts of those logins.
    assert all(after > before for after, before in zip(federation.dispatcher.served, served_before))
    assert federation.problems(1) == {}


def test_a_replayed_older_feed_leaves_every_worker_on_the_newer_copy(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    # Last week's feed, kept by a mirror: signed, within its validUntil, without the publisher
    # the federation has since admitted. Served again, it must not take the publisher away.
    demo = federation.demo
    publisher, metadata = federated_publisher(federation, "replayed")
    older = federation.publish([OTHER_SP])
    time.sleep(1.1)  # publication instants have whole seconds
    federation.publish([OTHER_SP, metadata])
    assert federation.refresh() == "updated"
    generation = demo.registry.generation()
    federation.feed.body = older
    caplog.clear()
    assert federation.refresh() == "refused:older_than_held"
    assert "metadata source older than the copy held" in caplog.text
    assert demo.registry.generation() == generation
    known_to_every_worker(federation, publisher.entity_id)
    browser = Browser()
    assert demo.login(browser, "replayed", "sanne.jansen").final.status == 200
    # Shown as any refused refresh: the source is ok on its copy held, the reason recorded.
    assert federation.problems(0) == {}
    (health,) = demo.registry.federation.health([("federation", 600)], datetime.now(UTC))
    assert health.reason == "metadata_refused:older_than_held"


def test_an_expired_copy_stops_trust_on_every_worker_without_a_refresh(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    demo = federation.demo
    publisher, metadata = federated_publisher(federation, "shortlived")
    federation.publish([metadata], valid_for=timedelta(seconds=4))
    assert federation.refresh() == "updated"
    browser = Browser()
    assert demo.login(browser, "shortlived", "sanne.jansen").final.status == 200
    time.sleep(5)
    for worker in federation.workers:
        assert not entity_known_to(worker, publisher.entity_id)
    caplog.clear()
    assert refused_as_unknown(demo.login(Browser(), "shortlived", "sanne.jansen").final, caplog)
    assert federation.problems(0) == {"federation": "expired"}


# -- metadata out: the broker's own documents -----------------------------------------------------

NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "shibmd": "urn:mace:shibboleth:metadata:1.0",
}


def verified(xml: bytes, cert_file: Path) -> etree._Element:
    """The document, after checking its enveloped signature over the root with the `xmlsec`
    binding directly (not the broker's backend) and the broker's certificate only."""
    doc = etree.fromstring(xml)
    signature = doc.find("ds:Signature", NS)
    assert signature is not None, "not signed"
    reference = signature.find("ds:SignedInfo/ds:Reference", NS)
    assert reference is not None and reference.get("URI") == f"#{doc.get('ID')}"
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(cert_file), xmlsec.constants.KeyDataFormatCertPem)
    context.register_id(doc, "ID")
    context.verify(signature)
    return doc


@pytest.mark.parametrize("which", ["idp", "sp"])
def test_the_broker_metadata_is_signed_dated_and_complete(
    federation: Federation, which: str
) -> None:
    demo = federation.demo
    cert_file = demo.directory / "keys" / "saml-signing.crt"
    for _ in federation.workers:  # the dispatcher alternates: each worker answers once
        page = Browser().get(f"{demo.broker_url}/saml/{which}/metadata")
        assert page.status == 200
        assert "max-age=21600" in page.response.headers["Cache-Control"]
        doc = verified(page.response.content, cert_file)
        valid_until = parse_time(doc.get("validUntil", ""))
        assert timedelta(days=6) < valid_until - datetime.now(UTC) <= timedelta(days=7)
        assert doc.get("cacheDuration") == "PT21600S"
        name = doc.find("md:Organization/md:OrganizationName", NS)
        assert name is not None and name.text == demo.settings.organization.name
        if which == "idp":
            scopes = doc.findall("md:IDPSSODescriptor/md:Extensions/shibmd:Scope", NS)
            assert [s.text for s in scopes] == [demo.settings.scope]
        else:
            requested = {
                e.get("Name"): e
                for e in doc.findall(
                    "md:SPSSODescriptor/md:AttributeConsumingService/md:RequestedAttribute", NS
                )
            }
            # What the broker can ask of schools: the whole catalogue, nothing required.
            assert {"urn:oid:2.5.4.42", "urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eckId"} <= set(
                requested
            )
            assert all(e.get("isRequired") == "false" for e in requested.values())
    # Control: a changed document no longer verifies.
    with pytest.raises(xmlsec.Error):
        name = demo.settings.organization.name.encode()
        verified(page.response.content.replace(name, b"Someone else"), cert_file)


def test_a_peer_reads_the_requested_attributes_with_pysaml2(federation: Federation) -> None:
    demo = federation.demo
    xml = Browser().get(f"{demo.broker_url}/saml/sp/metadata").response.text
    store = InMemoryMetaData(ac_factory(), xml)
    store.load()
    wanted = store.attribute_requirement(demo.sp_entity_id)
    assert wanted["required"] == []
    assert {a["name"] for a in wanted["optional"]} >= {"urn:oid:2.5.4.42", "urn:oid:2.5.4.4"}


@pytest.mark.parametrize("form", ["sha1", "urlencoded"])
def test_metadata_query_by_entity_id(federation: Federation, form: str) -> None:
    demo = federation.demo
    for entity_id in (demo.idp_entity_id, demo.sp_entity_id):
        if form == "sha1":
            identifier = "%7Bsha1%7D" + hashlib.sha1(entity_id.encode()).hexdigest()
        else:
            identifier = quote(entity_id, safe="")
        page = Browser().get(f"{demo.broker_url}/metadata/entities/{identifier}")
        assert page.status == 200, page.text
        assert page.response.headers["Content-Type"].startswith("application/samlmetadata+xml")
        doc = verified(page.response.content, demo.directory / "keys" / "saml-signing.crt")
        assert doc.get("entityID") == entity_id
    unknown = Browser().get(f"{demo.broker_url}/metadata/entities/%7Bsha1%7D{'0' * 40}")
    assert unknown.status == 404


def test_contacts_come_from_the_configuration(federation: Federation) -> None:
    settings = dataclasses.replace(
        federation.demo.settings,
        organization=Organization(
            "Ketenbroker BV", "https://ketenbroker.example", "tech@k.example", "help@k.example"
        ),
    )
    for config in (idp_config(settings, []), sp_config(settings, [])):
        doc = verified(
            signed_metadata(config, settings).encode(),
            federation.demo.directory / "keys" / "saml-signing.crt",
        )
        contacts = {
            c.get("contactType"): c.findtext("md:EmailAddress", namespaces=NS)
            for c in doc.findall("md:ContactPerson", NS)
        }
        assert contacts == {
            "technical": "mailto:tech@k.example",
            "support": "mailto:help@k.example",
        }
        assert doc.findtext("md:Organization/md:OrganizationURL", namespaces=NS) == (
            "https://ketenbroker.example"
        )
