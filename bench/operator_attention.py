"""The operator portal's "Needs attention" page (core/attention.py, operations/attention.py) on a large
federation: N SAML schools and M SAML services, each entity's metadata from one federation
source (a copy per entity, as a national feed holds them), in a SQLite registry.

Usage: python bench/operator_attention.py [--schools 5000] [--services 500] [--renders 20]

Times the page's work as its route does it, in a request context of the route: the report
(the registry's reads, each copy in force looked at, the sources' states, the secrets' counts)
and the template. The first render parses every copy; later ones find the copies unchanged in
the app's memo (operations/attention.py `Memo`) while the generation holds. Every 50th school's and every
20th service's copy names plain-http endpoints, so the page has entries to show. Prints ms per
render: the first, and the median of the others (wall clock).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from metadata_aggregate import DS, MD, certificate_body, idp_entity, sp_entity, with_slo

from broker.certificates import self_signed_pair
from broker.cli.demo import prepare_demo
from broker.config import MetadataSettings, MetadataSource
from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import School, Service
from broker.registry.snapshot import SchoolEntry, ServiceEntry, Snapshot

PORT = 8401  # only in URLs: nothing listens
SOURCE = "federatie"


def standalone(entity: str) -> str:
    """An aggregate's EntityDescriptor as a source keeps it: its namespaces bound on itself."""
    bound = f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" '
    return entity.replace("<md:EntityDescriptor ", bound, 1)


def federation(count: int, services: int) -> tuple[list[FederationEntity], Snapshot]:
    """The source's entities and the registry's entries that name them (no copy of their own)."""
    cert = certificate_body(self_signed_pair("member")[1])
    until = datetime.now(UTC) + timedelta(days=7)
    entities, schools, registered = [], [], []
    for n in range(count):
        entity_id = f"https://idp.school{n}.example/md"
        host = "http" if n % 50 == 0 else "https"
        xml = with_slo(
            idp_entity(entity_id, f"https://idp.school{n}.example/sso", cert, f"School {n}"),
            f"{host}://idp.school{n}.example/slo",
        )
        entities.append(FederationEntity(entity_id, "idp", standalone(xml), until))
        school = School(f"B{n:05d}", f"School {n}", entity_id)
        schools.append(SchoolEntry(school, ""))
    for n in range(services):
        entity_id = f"https://sp.dienst{n}.example/md"
        host = "http" if n % 20 == 0 else "https"
        xml = sp_entity(entity_id, f"{host}://sp.dienst{n}.example/acs", cert, f"Dienst {n}")
        entities.append(FederationEntity(entity_id, "sp", standalone(xml), until))
        registered.append(
            ServiceEntry(Service(f"dienst-{n}", f"Dienst {n}", entity_id, None), None)
        )
    return entities, Snapshot(schools=tuple(schools), services=tuple(registered))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=5000)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--renders", type=int, default=20)
    args = parser.parse_args()

    import dataclasses

    from flask import render_template

    from broker.operations.attention import Memo, gather_attention_report

    with tempfile.TemporaryDirectory() as tmp:
        settings, apps = prepare_demo(Path(tmp), PORT)
        app = apps[settings.base_url]
        broker = app.extensions["ketenbroker"]
        source = MetadataSource(SOURCE, "https://fed.example/md.xml", None, ())
        settings = dataclasses.replace(settings, metadata=MetadataSettings(sources=(source,)))
        entities, snapshot = federation(args.schools, args.services)
        now = datetime.now(UTC)
        broker.registry.federation.store(SOURCE, "0" * 64, FeedDates(now, None), entities, now)
        imported = broker.registry.import_snapshot(snapshot, "bench")
        assert imported.applied, imported
        memo = Memo()
        times, sections = [], 0

        def render() -> float:
            nonlocal sections
            with app.test_request_context("/portal/operator/attention?lang=nl"):
                start = time.perf_counter()
                report = gather_attention_report(settings, broker.registry, datetime.now(UTC), memo)
                render_template("portal/operator_attention.html", report=report)
                sections = len(report.sections)
                return (time.perf_counter() - start) * 1000

        times = [render() for _ in range(args.renders)]
        # A registry change (a new generation): the rows are read again, the copies not parsed.
        changed = []
        for n in range(3):
            broker.registry.set_school_town("B00001", f"Leiden {n}")
            changed.append(render())
        broker.registry.close()
    print(
        f"{args.schools} schools, {args.services} services, {sections} kinds on the page: "
        f"first render {times[0]:.0f} ms, then median {statistics.median(times[1:]):.0f} ms "
        f"per render ({args.renders - 1} renders); after a registry change "
        f"{statistics.median(changed):.0f} ms (median of 3)"
    )


if __name__ == "__main__":
    main()
