"""`ketenbroker demo`: the broker, a demo school IdP and demo publishers on this machine.

The school IdP and publishers listen on `localhost` while the broker listens on `127.0.0.1`:
different sites to the browser, so the demo exercises the same cross-site POSTs as production
(pitfalls.md, cookies) instead of hiding them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import click
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from broker.certificates import write_pair
from broker.cli.instance import CONFIG_NAME, init_instance
from broker.config import Settings, load_settings
from broker.core.model import Chain, Declaration, School, Service
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from broker.demo.school_idp import SchoolIdpSettings, create_school_idp_app, school_idp_metadata
from broker.registry import SqlRegistry, migrate
from broker.web import create_app
from broker.web.wiring import Broker, build_broker

DEMO_SCHOOL_ID = "99XX00"
# The realm of the demo school's scoped identifiers (student numbers `n@demoschool.example`).
DEMO_SCOPE = "demoschool.example"


@dataclass(frozen=True)
class DemoPublisher:
    id: str
    name: str
    chain: str
    declarations: tuple[Declaration, ...]
    released: frozenset[str]


DEMO_PUBLISHERS = (
    DemoPublisher(
        "leesplank",
        "Leesplank (demo publisher)",
        "leermiddelen",
        (
            Declaration("given_name", "To greet the student by first name on the start screen."),
            Declaration(
                "affiliation", "To show teachers the teacher tools and students the lessons."
            ),
            Declaration("groups", "To put the student in the right class."),
        ),
        frozenset({"given_name", "affiliation"}),
    ),
    DemoPublisher(
        "rekenroute",
        "Rekenroute (demo distributor)",
        "leermiddelen",
        (Declaration("affiliation", "To hand out student or teacher licences."),),
        frozenset(),
    ),
    DemoPublisher(
        "toetsplein",
        "Toetsplein (demo exam platform)",
        "toetsen",
        (Declaration("groups", "To schedule tests per class."),),
        frozenset(),
    ),
)
CHAINS = (Chain("leermiddelen", "Learning materials"), Chain("toetsen", "Digital exams"))


def _school_settings(directory: Path, port: int, broker: Broker) -> SchoolIdpSettings:
    keys = directory / "peers"
    if not (keys / "school.key").exists():
        write_pair(keys / "school.key", keys / "school.crt", "demo school")
    base = f"http://localhost:{port}"
    return SchoolIdpSettings(
        base_url=base,
        entity_id=f"{base}/metadata",
        key_file=keys / "school.key",
        cert_file=keys / "school.crt",
        sp_metadata=(broker.saml_entities.sp_metadata(),),
        school_name="Demo Lyceum",
        brin=DEMO_SCHOOL_ID,
    )


def _publisher_settings(
    directory: Path, port: int, publisher: DemoPublisher, broker: Broker
) -> PublisherSpSettings:
    keys = directory / "peers"
    key, cert = keys / f"{publisher.id}.key", keys / f"{publisher.id}.crt"
    if not key.exists():
        write_pair(key, cert, publisher.id)
    base = f"http://localhost:{port}"
    return PublisherSpSettings(
        base_url=base,
        entity_id=f"{base}/metadata",
        name=publisher.name,
        key_file=key,
        cert_file=cert,
        idp_metadata=(broker.saml_entities.idp_metadata(),),
        cross_site_cookie=True,
    )


def _register(
    registry: SqlRegistry,
    school: SchoolIdpSettings,
    publishers: list[tuple[DemoPublisher, PublisherSpSettings]],
) -> None:
    """First start only: the demo federation and a first policy that releases something visible."""
    if registry.school(DEMO_SCHOOL_ID) is not None:
        return
    for chain in CHAINS:
        registry.add_chain(chain)
    registry.add_school(
        School(DEMO_SCHOOL_ID, school.school_name, school.entity_id, scopes=(DEMO_SCOPE,)),
        school_idp_metadata(school),
    )
    for publisher, settings in publishers:
        registry.add_service(
            Service(
                publisher.id,
                publisher.name,
                settings.entity_id,
                publisher.chain,
                declarations=publisher.declarations,
            ),
            publisher_sp_metadata(settings),
        )
        if publisher.released:
            registry.set_policy(DEMO_SCHOOL_ID, publisher.id, publisher.released, "demo")


def _export_metadata(
    folder: Path,
    services: Broker,
    school: SchoolIdpSettings,
    publishers: list[tuple[DemoPublisher, PublisherSpSettings]],
) -> None:
    """The demo federation's metadata as files, for engineers who want to read or reuse it."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "broker-idp.xml": services.saml_entities.idp_metadata(),
        "broker-sp.xml": services.saml_entities.sp_metadata(),
        f"school-{DEMO_SCHOOL_ID}.xml": school_idp_metadata(school),
    }
    for publisher, settings in publishers:
        files[f"publisher-{publisher.id}.xml"] = publisher_sp_metadata(settings)
    for name, xml in files.items():
        (folder / name).write_text(xml, encoding="utf-8")


def prepare_demo(directory: Path, port: int) -> tuple[Settings, dict[str, Flask]]:
    """Create (or reuse) the demo instance and build the apps, keyed by base URL."""
    config = directory / CONFIG_NAME
    if not config.exists():
        init_instance(
            directory, f"http://127.0.0.1:{port}", "demo.ketenbroker.example", "Ketenbroker demo"
        )
    settings = load_settings(config)
    migrate(settings.registry_url)
    services = build_broker(settings)
    school = _school_settings(directory, port + 1, services)
    publishers = [
        (p, _publisher_settings(directory, port + 2 + i, p, services))
        for i, p in enumerate(DEMO_PUBLISHERS)
    ]
    _register(services.registry, school, publishers)
    _export_metadata(directory / "metadata", services, school, publishers)
    apps = {settings.base_url: create_app(settings, services=services)}
    apps[school.base_url] = create_school_idp_app(school)
    for _, publisher in publishers:
        apps[publisher.base_url] = create_publisher_sp_app(publisher)
    return settings, apps


def serve(apps: dict[str, Flask]) -> list[BaseWSGIServer]:
    """Start every app on 127.0.0.1 in its own thread; returns the servers (for shutdown)."""
    servers = []
    for base_url, app in apps.items():
        port = int(base_url.rsplit(":", 1)[1])
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def run_demo(directory: Path, port: int) -> None:
    settings, apps = prepare_demo(directory, port)
    servers = serve(apps)
    publishers = [url for url in apps if url != settings.base_url][1:]
    click.echo("Ketenbroker demo is running. Open this URL and log in as a demo student:")
    click.echo(f"\n    {publishers[0]}/\n")
    click.echo("Other demo publishers: " + ", ".join(f"{u}/" for u in publishers[1:]))
    click.echo(f"Broker: {settings.base_url}/   (Ctrl+C stops the demo; state in {directory}/)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        for server in servers:
            server.shutdown()
