"""The operator portal's lists of schools and of services on a large federation: N SAML schools
(towns from page_render.py's forty, every tenth with a former name) and M SAML services, each
entity's metadata from one federation source (operator_attention.py's), in a SQLite registry.

Usage: python bench/operator_lists.py [--schools 5000] [--services 300] [--renders 5]

Signs in as the operator (the Flask test client, as tests/support/portal.py does) and GETs each
page as a browser would: the lists as they open, a later page, and a search. Prints per page
its size in bytes and the fastest of `--renders` GETs (wall clock; the first GET after the
import is left out). Bounded: about 30 s at 5,000 schools and 300 services on a 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from operator_attention import SOURCE, federation
from page_render import TOWNS

from broker.core.federation import FeedDates
from broker.registry.snapshot import SchoolEntry
from tests.support.portal import HTTPS, PortalSite

PAGES = (
    "/portal/operator/schools",
    "/portal/operator/schools?page=3",
    "/portal/operator/schools?q=school+12",
    "/portal/operator/schools?q=leiden",
    "/portal/operator/services",
    "/portal/operator/services?page=2",
    "/portal/operator/services?q=dienst+7",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=5000)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        site = PortalSite(Path(tmp), port=8402)
        entities, snapshot = federation(args.schools, args.services)
        schools = tuple(
            SchoolEntry(
                dataclasses.replace(
                    entry.school,
                    town=TOWNS[n % len(TOWNS)],
                    aliases=(f"Oude School {n}",) if n % 10 == 0 else (),
                ),
                entry.metadata,
            )
            for n, entry in enumerate(snapshot.schools)
        )
        snapshot = dataclasses.replace(snapshot, schools=schools)
        now = datetime.now(UTC)
        site.registry.federation.store(SOURCE, "0" * 64, FeedDates(now, None), entities, now)
        imported = site.registry.import_snapshot(snapshot, "bench")
        assert imported.applied, imported
        operator = site.sign_in("operator")
        print(f"{args.schools} schools, {args.services} services (and the demo's)")
        for path in PAGES:
            times, size, status = [], 0, 0
            for n in range(args.renders + 1):
                start = time.perf_counter()
                response = operator.get(path, base_url=HTTPS)
                elapsed = time.perf_counter() - start
                size, status = len(response.get_data()), response.status_code
                if n:
                    times.append(elapsed)
            print(f"{path:45} {status}  {size / 1000:8.1f} kB  {min(times) * 1000:7.0f} ms")
        site.registry.close()


if __name__ == "__main__":
    main()
