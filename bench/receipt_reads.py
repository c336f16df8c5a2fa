"""The school portal's reads over a school's receipts, and the login path's receipt insert,
before and after revision 0025's index (receipts (school_id, service_id, attributes)).

Usage: python bench/receipt_reads.py [--school 300000] [--others 900000] [--calls 5]
                                     [--inserts 2000]
(PostgreSQL from KETENBROKER_TEST_POSTGRES_HOST / _PORT / _USER, as the tests find it.)

In a database of its own (`kb_bench_<random>`, dropped afterwards; no other tables touched):
the registry at revision 0024; `--school` receipts of one school interleaved with `--others`
of 30 other schools (every n-th row, as concurrent logins write them), 20 services, 6
attribute sets; VACUUM ANALYZE, as autovacuum leaves an insert-only table. Then, through
`SqlReceiptBook` on a web worker's engine (the portal's `patient` bound): `named` and `totals`
(the receipts page without a filter), `totals` for one service, and the student's `history`
(the my-data page), `--calls` each, medians (min-max) of wall time; and `--inserts` receipts
appended at that school (`append`, the login path's transaction), the mean per insert. Then
`migrate` to head (the index built concurrently, timed), VACUUM ANALYZE, and the same again.
Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command

from broker.core.model import Release, School, Service, UpstreamIdentity
from broker.core.receipts import ReceiptKeys, receipt_content
from broker.registry import migrate
from broker.registry.database import StatementTimeouts, open_engine
from broker.registry.migration import alembic_config, migration_connection
from broker.registry.receipts import ReceiptQuery, SqlReceiptBook
from tests.support.postgres import PostgresServer, find_postgres

KEYS = ReceiptKeys.from_key(bytes(range(32)))
SCHOOL = "S0"
OTHER_SCHOOLS = 30
# The interleaved rows: the measured school's are every `step`-th, the rest the other schools'.
_SEED = """
INSERT INTO receipts (school_id, seq, issued_at, service_id, chain_id, attributes,
    policy_version, school_protocol, service_protocol, subject, previous_hash, hash)
SELECT school, row_number() OVER (PARTITION BY school ORDER BY n), 1800000000 + n / 10,
    'service-' || (n %% 20), NULL,
    (ARRAY[',given_name,', ',eck_id,', ',eck_id,given_name,', ',email,given_name,',
           ',eck_id,email,family_name,given_name,', ',eck_id,email,family_name,given_name,nl_edu_person_affiliation,'])[n %% 6 + 1],
    1, 'saml', 'oidc', md5((n %% 50000)::text) || md5(school), md5(n::text) || md5(n::text),
    md5(n::text) || md5(n::text)
FROM (SELECT n, CASE WHEN n %% %(step)s = 0 THEN 'S0'
                     ELSE 'O' || (n %% %(others)s) END AS school
      FROM generate_series(0, %(rows)s - 1) AS n) AS seeded
"""


def median(calls: int, run: Callable[[], object]) -> str:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return f"{statistics.median(times):.0f} ms ({min(times):.0f}-{max(times):.0f})"


def measure(url: str, calls: int, inserts: int, at: int) -> tuple[dict[str, str], float]:
    engine = open_engine(url, timeouts=StatementTimeouts(request=2, portal_read=30))
    book = SqlReceiptBook(engine, KEYS)
    try:
        subject = next(iter(book.find(ReceiptQuery(SCHOOL), limit=1))).content.subject
        reads = {
            "named": median(calls, lambda: book.named(SCHOOL)),
            "totals": median(calls, lambda: book.totals(ReceiptQuery(SCHOOL))),
            "totals, one service": median(
                calls, lambda: book.totals(ReceiptQuery(SCHOOL, service_id="service-0"))
            ),
            "history (my-data)": median(calls, lambda: book.history([subject])),
        }
        school = School(SCHOOL, "Bench", "https://bench.example")
        service = Service("service-3", "Bench", "https://service.example", None)
        release = Release("p" * 64, {"given_name": ("v",), "eck_id": ("v",)}, 1)
        contents = [
            receipt_content(
                KEYS,
                issued_at=at + n,
                school=school,
                service=service,
                identity=UpstreamIdentity(SCHOOL, f"student-{n}"),
                release=release,
            )
            for n in range(inserts)
        ]
        started = time.perf_counter()
        for content in contents:
            book.append(content)
        per_insert = (time.perf_counter() - started) * 1000 / max(inserts, 1)
        return reads, per_insert
    finally:
        engine.dispose()


def vacuum(server: PostgresServer, database: str) -> None:
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname=database, autocommit=True
    ) as connection:
        connection.execute("VACUUM ANALYZE receipts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--school", type=int, default=300_000, help="the school's receipts")
    parser.add_argument("--others", type=int, default=900_000, help="the other schools'")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--inserts", type=int, default=2000)
    args = parser.parse_args()
    found = find_postgres()
    if isinstance(found, str):
        raise SystemExit(found)
    server = found
    database = f"kb_bench_{secrets.token_hex(6)}"
    with server.admin() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = server.url(database)
    try:
        with migration_connection(url) as connection:
            command.upgrade(alembic_config(connection), "0024")
        rows = args.school + args.others
        started = time.perf_counter()
        with psycopg.connect(
            host=server.host, port=server.port, user=server.user, dbname=database
        ) as connection:
            connection.execute(
                _SEED,
                {
                    "rows": rows,
                    "step": max(rows // max(args.school, 1), 1),
                    "others": OTHER_SCHOOLS,
                },
            )
            connection.execute(
                "INSERT INTO receipt_chains SELECT school_id, max(seq), 'h', 0, 'h', '' "
                "FROM receipts GROUP BY school_id"
            )
        vacuum(server, database)
        print(f"seeded {rows} receipts in {time.perf_counter() - started:.0f} s")
        before, insert_before = measure(url, args.calls, args.inserts, 1_900_000_000)
        started = time.perf_counter()
        migrate(url)
        print(f"migrate to head (CREATE INDEX CONCURRENTLY): {time.perf_counter() - started:.1f} s")
        vacuum(server, database)
        after, insert_after = measure(url, args.calls, args.inserts, 1_950_000_000)
        print(f"{'read':<24} {'0024 (no index)':<24} {'0025':<24}")
        for name, figure in before.items():
            print(f"{name:<24} {figure:<24} {after[name]:<24}")
        print(
            f"append (login path), mean of {args.inserts}: {insert_before:.2f} ms before, "
            f"{insert_after:.2f} ms after"
        )
    finally:
        with server.admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
