"""No personal data at rest, proven: students whose names, e-mail addresses, group names,
student numbers, school subjects and ECK iDs are unusual marker strings log in through every
protocol pairing, see the information notice and open their my-data page; then every log line,
every receipt, every row of the registry database and every key and value in the store is
searched for the markers. None may appear.

Runs on the embedded defaults (SQLite, memory store) and on PostgreSQL with Redis.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, OIDC_SCHOOL_PORT_OFFSET
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.demo.school_idp import DemoUser
from broker.demo.school_op import school_op_subject
from broker.registry.receipts import ReceiptQuery
from broker.store.memory import MemoryStore
from tests.support.client import Browser
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.logout import finish_logout
from tests.support.postgres import PostgresServer

REDIS_DB_URL = "redis://127.0.0.1:6379/11"


def marker_user(n: int) -> DemoUser:
    tag = f"qzx{n}mrk"
    return DemoUser(
        uid=f"{tag}.uid",
        given_name=f"{tag}Given",
        family_name=f"{tag}Family",
        email=f"{tag}mail@{tag}domain.example",
        affiliation="student",
        groups=(f"{tag}group",),
        student_number=f"{tag}student@demoschool.example",
        eck_id="https://ketenid.nl/201703/" + f"0bad{n:04x}" * 16,
    )


USERS = (marker_user(1), marker_user(2))


def markers(demo: LiveDemo) -> set[str]:
    """Every value about the students that the broker handled, lower-cased."""
    op_issuer = f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"
    found: set[str] = set()
    for user in USERS:
        found |= {
            user.uid,
            user.given_name,
            user.family_name,
            user.email,
            user.groups[0],
            user.student_number or "",
            (user.eck_id or "").rsplit("/", 1)[1],
            demo.school_subject(user.uid),
            school_op_subject(op_issuer, user.uid),
            # The pseudonyms are meant for publishers: not kept at the broker either.
            demo.expected_pseudonym(user.uid, "leermiddelen"),
        }
    assert all(len(m) >= 10 for m in found)
    return {m.lower() for m in found}


class Everything(logging.Handler):
    """Every log record of the process, formatted with its arguments."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture
def captured_logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    root.addHandler(handler)
    # Access lines too (the broker's URLs), at the level production runs: werkzeug's own and
    # the development servers' (broker/cli/dev_server.py).
    access = [logging.getLogger(name) for name in ("werkzeug", "broker.dev_server")]
    levels = [logger.level for logger in access]
    for logger in access:
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in zip(access, levels, strict=True):
            logger.setLevel(level)


def _database_text(url: str, directory: Path, postgres: PostgresServer | None) -> str:
    if postgres is None:
        with sqlite3.connect(directory / "registry.sqlite3") as db:
            return "\n".join(db.iterdump())
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(
        host=postgres.host, port=postgres.port, user=postgres.user, dbname=database
    ) as db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        assert "receipts" in tables and "schools" in tables
        return "\n".join(
            repr(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"')
        )


def _store_blobs(demo: LiveDemo) -> list[bytes]:
    store = demo.broker.store
    store = getattr(store, "inner", store)  # under the metrics wrapper
    if isinstance(store, MemoryStore):
        assert demo.settings.store_url == "memory://"
        entries = store._entries
        return [key.encode() + b" " + value for key, (value, _) in entries.items()]
    assert demo.settings.store_url == REDIS_DB_URL
    client = redis.Redis.from_url(REDIS_DB_URL)
    try:
        blobs = []
        for key in client.scan_iter(match="kb:*", count=1000):
            value = client.get(key)
            blobs.append(key + b" " + (value or b""))
        return blobs
    finally:
        client.close()


def _log_in_everywhere(demo: LiveDemo, woordwijs: OidcPublisher, user: DemoUser) -> None:
    for school, hint in (
        (DEMO_SCHOOL_ID, demo.school_entity_id),
        (DEMO_OIDC_SCHOOL_ID, f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"),
    ):
        for publisher, by in (("leesplank", hint), (OIDC_PUBLISHER_ID, school)):
            browser = Browser()
            base = demo.publishers[publisher].base_url
            page = browser.get(f"{base}/login?school={quote(by, safe='')}")
            if page.url.startswith(f"{demo.school_url}/sso"):
                page = demo.pick(browser, page, user.uid)
            elif "/authorize" in page.url and not page.url.startswith(demo.broker_url):
                form = next(f for f in page.forms if ("uid", user.uid) in f.buttons)
                page = browser.post(form.action, {"uid": user.uid})
            if demo.answers_publisher(page):
                page = browser.submit(page, demo.publishers[publisher].acs_url)
            assert page.status == 200, page.text[:300]
            assert browser.notices_seen, "the notice was shown and read"
            received = demo.received(browser, publisher)
            # The values did reach the publisher: the markers are real, only not kept.
            assert user.given_name in repr(received), received
            if school == DEMO_SCHOOL_ID and publisher == "leesplank":
                my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
                assert my_data.url.startswith(f"{demo.broker_url}/my-data/view/"), my_data.url
                assert "data-receipt" in my_data.text
                # And a logout, whose run and answers the store keeps for a while too.
                outcome = finish_logout(browser, browser.get(f"{base}/logout"))
                assert outcome.school == "confirmed"


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite-memory",
        pytest.param("postgresql-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def test_no_marker_string_is_kept_anywhere(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    captured_logs: Everything,
) -> None:
    postgres: PostgresServer | None = None
    registry_url = store_url = None
    if backend == "postgresql-redis":
        postgres = request.getfixturevalue("postgres_server")
        registry_url = request.getfixturevalue("postgres_registry_url")
        store_url = REDIS_DB_URL
    demo = LiveDemo(tmp_path, users=USERS, registry_url=registry_url, store_url=store_url)
    try:
        woordwijs = OidcPublisher(
            OIDC_PUBLISHER_ID,
            f"http://localhost:{demo.port + OIDC_PUBLISHER_PORT_OFFSET}",
            "leermiddelen",
        )
        demo.publishers[OIDC_PUBLISHER_ID] = woordwijs
        for school in (DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID):
            for service in demo.registry.services():
                declared = frozenset(d.attribute for d in service.declarations)
                demo.registry.set_policy(school, service.id, declared, "test")
        for user in USERS:
            _log_in_everywhere(demo, woordwijs, user)
        wanted = markers(demo)
        # The school's session ids: the broker files OIDC-school sessions under them for the
        # school's back-channel logout (login/school_sessions.py), as an HMAC and sealed only.
        op = demo.apps[f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"]
        sids = {sid.lower() for sid in op.extensions["school_op_memory"].issued_sids}
        assert sids, "the OIDC school gave its logins a sid"
        wanted |= sids
        receipts = [
            r.content.canonical()
            for school in (DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID)
            for r in demo.broker.receipts.find(ReceiptQuery(school))
        ]
        assert len(receipts) >= 8
        places = {
            "logs": "\n".join(captured_logs.lines).lower(),
            "receipts": "\n".join(receipts).lower(),
            "registry database": _database_text(registry_url or "", tmp_path, postgres).lower(),
        }
        assert "released school=" in places["logs"], "the log capture saw the logins"
        for place, text in places.items():
            leaked = sorted(m for m in wanted if m in text)
            assert not leaked, f"{place} holds {leaked}"
        blobs = _store_blobs(demo)
        assert blobs, "the store holds the SSO sessions"
        assert any(b"school-sid:" in blob for blob in blobs), "the sid filing was exercised"
        for blob in blobs:
            lowered = blob.lower()
            leaked = sorted(m for m in wanted if m.encode() in lowered)
            assert not leaked, f"the store holds {leaked}"
    finally:
        demo.close()
        if store_url:
            client = redis.Redis.from_url(store_url)
            keys = list(client.scan_iter(match="kb:*"))
            if keys:
                client.delete(*keys)
            client.close()
