"""`ketenbroker demo`: the broker, two demo schools and demo publishers on this machine.

Ports, from the broker's port P: P the broker, P+1 the SAML demo school's IdP, P+2 … P+4 the
SAML demo publishers, P+5 the OIDC demo school's OpenID provider, P+6 the OIDC demo publisher.
The broker serves the demo's start page at /demo: every pairing of protocols, one click each.

The school IdP and publishers listen on `localhost` while the broker listens on `127.0.0.1`:
different sites to the browser, so the demo exercises the same cross-site POSTs as production
(pitfalls.md, cookies) instead of hiding them.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import click
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from broker.certificates import write_pair
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_PORT_OFFSET, oidc_publisher
from broker.cli.dev_server import PathOnlyRequestHandler
from broker.cli.instance import CONFIG_NAME, init_instance
from broker.config import Settings, load_settings
from broker.core.key_schedule import KeySource
from broker.core.model import Chain, Declaration, OidcUpstream, School, Service
from broker.demo.publisher_rp import create_publisher_rp_app
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from broker.demo.school_idp import (
    DEMO_USERS,
    DemoUser,
    SchoolIdpSettings,
    create_school_idp_app,
    school_idp_metadata,
)
from broker.demo.school_op import SchoolOpSettings, create_school_op_app
from broker.demo.start_page import Pairing, start_page
from broker.registry import SqlRegistry, migrate_first
from broker.web import create_app
from broker.web.wiring import Broker, build_broker

DEMO_SCHOOL_ID = "99XX00"
# The realm of the demo school's scoped identifiers (student numbers `n@demoschool.example`).
DEMO_SCOPE = "demoschool.example"
# The second demo school signs its students in with OpenID Connect (broker/demo/school_op.py).
DEMO_OIDC_SCHOOL_ID = "99ZZ00"
DEMO_OIDC_SCHOOL_NAME = "Demo OIDC-school"
DEMO_OIDC_SCOPE = "oidcschool.example"
DEMO_OIDC_CLIENT_ID = "ketenbroker"
# Shown under each demo school's name on the discovery page, and searched there.
DEMO_SCHOOL_TOWN = "Utrecht"
DEMO_OIDC_SCHOOL_TOWN = "Zwolle"
DEMO_TOWNS = {DEMO_SCHOOL_ID: DEMO_SCHOOL_TOWN, DEMO_OIDC_SCHOOL_ID: DEMO_OIDC_SCHOOL_TOWN}
OIDC_SCHOOL_PORT_OFFSET = 5
# The demo OIDC school's provider sends it as `hd` for its students (not its staff), as a Google
# Workspace would: the school registers none (its issuer is its own), tests give it one.
DEMO_OIDC_HOSTED_DOMAIN = "leerling.demoschool.example"


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
            Declaration(
                "given_name",
                "Om je op het startscherm bij je voornaam te begroeten.",
                purpose_en="To greet you by your first name on the start screen.",
            ),
            Declaration(
                "affiliation",
                "Om docenten de docententools te tonen en leerlingen de lessen.",
                purpose_en="To show teachers the teacher tools and students the lessons.",
            ),
            Declaration(
                "groups",
                "Om je in de juiste klas te zetten.",
                purpose_en="To put you in the right class.",
            ),
        ),
        frozenset({"given_name", "affiliation"}),
    ),
    DemoPublisher(
        "rekenroute",
        "Rekenroute (demo distributor)",
        "leermiddelen",
        (
            Declaration(
                "affiliation",
                "Om licenties voor leerlingen of docenten uit te delen.",
                purpose_en="To hand out student or teacher licences.",
            ),
        ),
        frozenset(),
    ),
    DemoPublisher(
        "toetsplein",
        "Toetsplein (demo exam platform)",
        "toetsen",
        (
            Declaration(
                "groups",
                "Om toetsen per klas in te plannen.",
                purpose_en="To schedule tests per class.",
            ),
        ),
        frozenset(),
    ),
)
CHAINS = (Chain("leermiddelen", "Leermiddelen"), Chain("toetsen", "Toetsen"))


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


def _school_op_settings(directory: Path, port: int, settings: Settings) -> SchoolOpSettings:
    peers = directory / "peers"
    key, secret_file = peers / "school-op.key", peers / "school-op-client-secret"
    if not key.exists():
        write_pair(key, peers / "school-op.crt", "demo OIDC school")
    if not secret_file.exists():
        # The broker's client secret at the demo provider: written once, 0600 like the keys.
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32))
    return SchoolOpSettings(
        base_url=f"http://localhost:{port}",
        key_file=key,
        client_id=DEMO_OIDC_CLIENT_ID,
        client_secret=secret_file.read_text(encoding="utf-8").strip(),
        redirect_uri=settings.oidc_callback_url(DEMO_OIDC_SCHOOL_ID),
        post_logout_redirect_uri=settings.oidc_logout_callback_url(DEMO_OIDC_SCHOOL_ID),
        backchannel_logout_uri=settings.oidc_backchannel_logout_url(DEMO_OIDC_SCHOOL_ID),
        school_name=DEMO_OIDC_SCHOOL_NAME,
        brin=DEMO_OIDC_SCHOOL_ID,
        realm=DEMO_OIDC_SCOPE,
        hosted_domain=DEMO_OIDC_HOSTED_DOMAIN,
    )


def _register_oidc_school(registry: SqlRegistry, op: SchoolOpSettings) -> None:
    """First start with the OIDC school (also in a demo folder made before it existed)."""
    if registry.school(DEMO_OIDC_SCHOOL_ID) is not None:
        return
    upstream = OidcUpstream(op.issuer, op.client_id, op.client_secret)
    school = School(
        DEMO_OIDC_SCHOOL_ID,
        op.school_name,
        op.issuer,
        subject_attribute="sub",
        scopes=(DEMO_OIDC_SCOPE,),
        oidc=upstream,
        town=DEMO_OIDC_SCHOOL_TOWN,
    )
    registry.add_school(school, "")
    for publisher in DEMO_PUBLISHERS:
        if publisher.released and registry.service(publisher.id) is not None:
            registry.set_policy(DEMO_OIDC_SCHOOL_ID, publisher.id, publisher.released, "demo")


def _give_towns(registry: SqlRegistry) -> None:
    """A demo folder made before schools had towns: its demo schools get theirs."""
    for school_id, town in DEMO_TOWNS.items():
        school = registry.school(school_id)
        if school is not None and not school.town:
            registry.set_school_town(school_id, town)


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
        School(
            DEMO_SCHOOL_ID,
            school.school_name,
            school.entity_id,
            scopes=(DEMO_SCOPE,),
            privacy_contact="mailto:privacy@demo-school.example",
            town=DEMO_SCHOOL_TOWN,
        ),
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


def _saml_peers(
    directory: Path,
    school_port: int,
    services: Broker,
    users: tuple[DemoUser, ...] = DEMO_USERS,
) -> tuple[SchoolIdpSettings, list[tuple[DemoPublisher, PublisherSpSettings]]]:
    """The SAML demo school on `school_port` and the SAML publishers on the ports after it,
    registered in the broker's registry on first start."""
    school = replace(_school_settings(directory, school_port, services), users=users)
    publishers = [
        (p, _publisher_settings(directory, school_port + 1 + i, p, services))
        for i, p in enumerate(DEMO_PUBLISHERS)
    ]
    _register(services.registry, school, publishers)
    return school, publishers


def prepare_saml_peers(settings: Settings, directory: Path, school_port: int) -> dict[str, Flask]:
    """Only the SAML demo school and publishers, for a broker that runs elsewhere (the compose
    file): they talk to the broker through the browser alone, so they need no network path to
    it, only its metadata (made here from the same keys) and its registry to register in."""
    services = build_broker(settings)
    try:
        school, publishers = _saml_peers(directory, school_port, services)
    finally:
        services.registry.close()
        services.store.close()
    apps = {school.base_url: create_school_idp_app(school)}
    for _, publisher in publishers:
        apps[publisher.base_url] = create_publisher_sp_app(publisher)
    return apps


def prepare_demo(
    directory: Path,
    port: int,
    users: tuple[DemoUser, ...] = DEMO_USERS,
    keys: Callable[[Settings], KeySource] | None = None,
) -> tuple[Settings, dict[str, Flask]]:
    """Create (or reuse) the demo instance and build the apps, keyed by base URL. `users` are
    the people of both demo schools (tests use made-up marker people); `keys` makes the
    broker's signing key set (tests put it on a clock of their own)."""
    config = directory / CONFIG_NAME
    if not config.exists():
        init_instance(
            directory, f"http://127.0.0.1:{port}", "demo.ketenbroker.example", "Ketenbroker demo"
        )
    settings = load_settings(config)
    migrate_first(settings.registry_url)
    services = build_broker(settings, keys=keys(settings) if keys else None)
    school, publishers = _saml_peers(directory, port + 1, services, users)
    school_op = replace(
        _school_op_settings(directory, port + OIDC_SCHOOL_PORT_OFFSET, settings), users=users
    )
    _register_oidc_school(services.registry, school_op)
    _give_towns(services.registry)
    _export_metadata(directory / "metadata", services, school, publishers)
    apps = {settings.base_url: create_app(settings, services=services)}
    apps[school.base_url] = create_school_idp_app(school)
    for _, publisher in publishers:
        apps[publisher.base_url] = create_publisher_sp_app(publisher)
    apps[school_op.base_url] = create_school_op_app(school_op)
    rp = oidc_publisher(
        directory,
        port + OIDC_PUBLISHER_PORT_OFFSET,
        settings,
        services.registry,
        [DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID],
    )
    apps[rp.base_url] = create_publisher_rp_app(rp)
    leesplank = publishers[0][1]
    schools = (
        ("Demo school", "SAML", school.entity_id, DEMO_SCHOOL_ID),
        (DEMO_OIDC_SCHOOL_NAME, "OpenID Connect", school_op.issuer, DEMO_OIDC_SCHOOL_ID),
    )
    pairings = tuple(
        Pairing(name, protocol, school_name, school_protocol, f"{base}/login?school={hint}")
        for name, protocol, base, by_entity in (
            (leesplank.name, "SAML", leesplank.base_url, True),
            (rp.name, "OpenID Connect", rp.base_url, False),
        )
        for school_name, school_protocol, entity_id, school_id in schools
        for hint in [quote(entity_id if by_entity else school_id, safe="")]
    )
    others = tuple((p.name, f"{s.base_url}/") for p, s in publishers[1:])
    apps[settings.base_url].register_blueprint(start_page(pairings, others))
    return settings, apps


def serve(apps: dict[str, Flask], host: str = "127.0.0.1") -> list[BaseWSGIServer]:
    """Start every app on `host` in its own thread; returns the servers (for shutdown)."""
    servers = []
    for base_url, app in apps.items():
        port = int(base_url.rsplit(":", 1)[1])
        server = make_server(host, port, app, threaded=True, request_handler=PathOnlyRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def run_saml_peers(settings: Settings, directory: Path, host: str, school_port: int) -> None:
    apps = prepare_saml_peers(settings, directory, school_port)
    serve(apps, host)
    click.echo("Demo school and publishers: " + ", ".join(f"{url}/" for url in apps))
    threading.Event().wait()


def run_demo(directory: Path, port: int) -> None:
    settings, apps = prepare_demo(directory, port)
    servers = serve(apps)
    click.echo("Ketenbroker demo is running. Open its start page and pick a pairing:")
    click.echo(f"\n    {settings.base_url}/demo\n")
    publishers = [f"http://localhost:{port + 2 + i}" for i in range(len(DEMO_PUBLISHERS))]
    oidc = f"http://localhost:{port + OIDC_PUBLISHER_PORT_OFFSET}"
    click.echo("Demo publishers: " + ", ".join(f"{u}/" for u in [*publishers, oidc]))
    click.echo(
        f"Demo schools: {DEMO_SCHOOL_ID} (SAML) http://localhost:{port + 1}/, "
        f"{DEMO_OIDC_SCHOOL_ID} (OpenID Connect) http://localhost:{port + OIDC_SCHOOL_PORT_OFFSET}/"
    )
    click.echo(f"Broker: {settings.base_url}/   (Ctrl+C stops the demo; state in {directory}/)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        for server in servers:
            server.shutdown()
