"""Everything at rest after a whole working day, searched: the audit's own proof.

`test_no_personal_data_at_rest.py` searches the store's `kb:` keys, the registry, the receipts
and the logs after logins in every pairing. This test widens the net to everything a leak could
expose and everything that touches the broker in a day:

- what happens: marker students log in through all four pairings (SAML→SAML, OIDC→OIDC,
  SAML→OIDC, OIDC→SAML) with every declared attribute released, see the notice, open their
  my-data page, log out; every request to the broker comes from a marker IP address with a
  marker user agent; school staff (marker e-mail addresses) sign in to the portal, change the
  release policy there, look a student up by the identifier the school sends, download the
  receipts; the operator invites a colleague, who accepts; a tampered and an unparsable school
  answer carrying the markers are refused; a broker whose store is down refuses an answer;
- what is searched: every key of the Redis database, of whatever type, with its value (raw, and
  every base64 run in it decoded, inflated where it inflates); every row of every table of the
  PostgreSQL database in every schema; every file the instance wrote (key files excepted) and
  every temporary file opened meanwhile; every log line of the process; `/metrics`; the error
  pages;
- for: the students' names, e-mail addresses, uids, student numbers, group names, ECK iDs, the
  school's NameIDs and OpenID `sub`s and `sid`s, their chain pseudonyms, the IP address and user
  agent, raw SAML assertions and JWTs (anywhere), stack traces (in pages); and the secrets the
  broker keeps sealed (staff TOTP secrets, its client secret at the OIDC school), in every
  table the staff tables included.

The one deliberate exception, staff: an administrator's e-mail address is in the registry's
`admins` row (and an invitee's in `invitations`), because they sign in with it (security.md,
"What the broker holds"). It must be nowhere else: not in the store, the logs, the receipts, the
policy history (which records `admin:<id>`).
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask.testing import FlaskClient

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, OIDC_SCHOOL_PORT_OFFSET
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.config import load_settings
from broker.core.admins import AdminRole
from broker.registry.receipts import ReceiptQuery
from broker.web import create_app
from tests.security.test_no_personal_data_at_rest import (
    USERS,
    Everything,
    _log_in_everywhere,
    captured_logs,  # noqa: F401  (the fixture, used by name)
    markers,
)
from tests.support.client import Browser
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.portal import (
    HTTPS,
    PASSWORD,
    accept_invitation,
    choice_fields,
    csrf_token,
    form_fields,
    invite,
    post_sign_in,
    shown_seed,
)
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# Database 9 is this test's own: it is emptied before and after (never 0, 12 or 13).
REDIS_URL = "redis://127.0.0.1:6379/9"
MARK_IP = "198.51.100.77"
MARK_AGENT = "qzxagentmrk/7.1 (marker browser)"
STAFF = {
    "operator": "qzxopsmrk@broker.example",
    "school": "qzxictmrk@lyceum.example",
    "invited": "qzxinvitedmrk@lyceum.example",
}
# Where staff addresses may be: the registry's account tables, and nowhere else.
STAFF_TABLES = frozenset({"admins", "invitations"})
RAW_SAML = re.compile(rb"<(?:[\w-]+:)?(?:assertion|response|nameid|attributevalue)[\s>]", re.I)
RAW_JWT = re.compile(rb"eyj[\w-]{8,}\.eyj[\w-]{8,}\.", re.I)
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")


class FromMarkedBrowser:
    """WSGI middleware: every request reaches the broker from the marker address with the
    marker user agent, as a student's browser behind `proxy_hops` would. /metrics keeps the
    loopback peer it needs."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/metrics":
            environ["REMOTE_ADDR"] = MARK_IP
            environ["HTTP_USER_AGENT"] = MARK_AGENT
        return self.app(environ, start_response)


def _variants(blob: bytes) -> Iterator[bytes]:
    """The blob, and every base64 run inside it decoded (and inflated when it inflates): a
    value kept encoded is still kept."""
    yield blob
    for run in BASE64_RUN.findall(blob):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(run + b"=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            yield decoded
            try:
                yield zlib.decompress(decoded, -15)
            except zlib.error:
                pass


def _found(wanted: Iterable[str], blob: bytes) -> list[str]:
    lowered = [v.lower() for v in _variants(blob)]
    return sorted(m for m in wanted if any(m.encode() in v for v in lowered))


def _redis_dump(url: str) -> dict[bytes, tuple[bytes, int]]:
    """Every key of the database (not only the broker's prefix), of any type: value and TTL."""
    client = redis.Redis.from_url(url)
    try:
        dump: dict[bytes, tuple[bytes, int]] = {}
        for key in client.scan_iter(count=1000):
            kind = client.type(key)  # type: ignore[no-untyped-call]
            if kind == b"string":
                value = client.get(key) or b""
            elif kind == b"hash":
                value = repr(client.hgetall(key)).encode()
            elif kind == b"list":
                value = repr(client.lrange(key, 0, -1)).encode()
            elif kind == b"set":
                value = repr(client.smembers(key)).encode()
            elif kind == b"zset":
                value = repr(client.zrange(key, 0, -1, withscores=True)).encode()
            else:
                value = repr(client.dump(key)).encode()
            dump[key] = (value, int(client.ttl(key)))
        return dump
    finally:
        client.close()


def _flush(url: str) -> None:
    assert url.endswith("/9")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _database_rows(postgres: PostgresServer, database: str) -> dict[str, list[bytes]]:
    """Every row of every table in every schema but PostgreSQL's own, by table."""
    rows: dict[str, list[bytes]] = {}
    with psycopg.connect(
        host=postgres.host, port=postgres.port, user=postgres.user, dbname=database
    ) as db:
        tables = db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type ="
            " 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            found = db.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            rows[str(table)] = [repr(row).encode() for row in found]
    return rows


def _files(directory: Path) -> dict[str, bytes]:
    """Every file the instance wrote, its key files excepted (they are keys, not data)."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file() and "keys" not in path.relative_to(directory).parts[:1]
    }


def _new_temporary_files(since: float) -> dict[str, bytes]:
    """Files in the temporary directory modified during the test (other processes' too, which
    cannot hold this test's markers). pysaml2's stock crypto backend writes XML there."""
    found: dict[str, bytes] = {}
    for path in Path(tempfile.gettempdir()).glob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= since and path.stat().st_size < 2**20:
                found[str(path)] = path.read_bytes()
        except OSError:
            continue
    return found


# -- the day's work --------------------------------------------------------------------------


def _sign_in(client: FlaskClient, email: str, secret: str) -> None:
    response = post_sign_in(client, email, PASSWORD, totp.code_at(secret, totp.current_step() + 1))
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def _school_releases_everything_through_the_portal(demo: LiveDemo, client: FlaskClient) -> None:
    for service in demo.registry.services():
        url = f"/portal/school/{DEMO_SCHOOL_ID}/services/{service.id}"
        page = client.get(url, base_url=HTTPS)
        if page.status_code == 404:
            continue  # not approved for schools
        assert page.status_code == 200, page.get_data(as_text=True)[:500]
        declared = sorted(d.attribute for d in service.declarations)
        response = client.post(
            url,
            base_url=HTTPS,
            data={
                **choice_fields(page.get_data(as_text=True)),
                "active": "y",
                "attributes": declared,
            },
        )
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        assert demo.registry.choices_of_school(DEMO_SCHOOL_ID)[service.id].attributes == set(
            declared
        )


def _operator_invites_a_colleague(demo: LiveDemo, operator: FlaskClient) -> str:
    """Invites and accepts; returns the invitee's TOTP secret."""
    _, path = invite(operator, STAFF["invited"], "school", DEMO_SCHOOL_ID)
    form, accepted = accept_invitation(demo.apps[demo.broker_url].test_client(), path)
    assert accepted.status_code == 303, accepted.get_data(as_text=True)[:500]
    return shown_seed(form)


def _school_looks_up_and_exports(demo: LiveDemo, school: FlaskClient) -> list[str]:
    """The school types a student's NameID into "Find one student's receipts" and downloads
    its receipts; returns the pages it read (they may name students' codes, not identifiers)."""
    pages = []
    receipts = f"/portal/school/{DEMO_SCHOOL_ID}/receipts"
    page = school.get(receipts, base_url=HTTPS).get_data(as_text=True)
    found = school.post(
        f"{receipts}/student",
        base_url=HTTPS,
        data={"csrf_token": csrf_token(page), "identifier": demo.school_subject(USERS[0].uid)},
    )
    # The list answers the lookup itself; its downloads send the student's codes again.
    assert found.status_code == 200, found.get_data(as_text=True)[:500]
    listed = found.get_data(as_text=True)
    pages.append(listed)
    _, fields = form_fields(listed, "export")
    assert fields.get("student")
    for url in (f"{receipts}.csv", f"{receipts}.json"):
        answer = school.post(url, base_url=HTTPS, data=fields)
        assert answer.status_code == 200, url
        pages.append(answer.get_data(as_text=True))
    return pages


def _refused_school_answers(demo: LiveDemo) -> list[str]:
    """A school answer tampered with (a signed value changed) and a made-up one carrying the
    markers in clear: both refused; the pages they got."""
    pages = []
    browser = Browser()
    fields = demo.school_response(browser, "leesplank", USERS[0].uid)
    xml = base64.b64decode(fields["SAMLResponse"])
    assert USERS[0].given_name.encode() in xml
    tampered = xml.replace(USERS[0].given_name.encode(), USERS[1].given_name.encode())
    page = browser.post(
        demo.acs_url, {**fields, "SAMLResponse": base64.b64encode(tampered).decode()}
    )
    assert 400 <= page.status < 500, page.text[:300]
    pages.append(page.text)
    made_up = (
        f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><NameID>'
        f"{USERS[1].uid}</NameID><Email>{USERS[1].email}</Email><unclosed>"
    ).encode()
    page = browser.post(demo.acs_url, {"SAMLResponse": base64.b64encode(made_up).decode()})
    assert 400 <= page.status < 500, page.text[:300]
    pages.append(page.text)
    return pages


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answer_to_a_broker_without_store(demo: LiveDemo) -> str:
    """The school's real answer (markers inside) posted to a broker whose store is down: 503."""
    config = demo.directory / "store-down.toml"
    shutil.copyfile(demo.directory / "ketenbroker.toml", config)
    text = config.read_text(encoding="utf-8")
    assert REDIS_URL in text
    config.write_text(text.replace(REDIS_URL, f"redis://127.0.0.1:{_closed_port()}/0"))
    down = create_app(load_settings(config))
    down.wsgi_app = FromMarkedBrowser(down.wsgi_app)  # type: ignore[method-assign]
    try:
        fields = demo.school_response(Browser(), "leesplank", USERS[1].uid)
        answer = down.test_client().post(demo.acs_url.replace(demo.broker_url, ""), data=fields)
        assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
        return answer.get_data(as_text=True)
    finally:
        down.extensions["ketenbroker"].registry.close()


# -- the test ----------------------------------------------------------------------------------


def test_nothing_personal_is_anywhere_after_a_whole_day(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    captured_logs: Everything,  # noqa: F811  (the imported fixture)
) -> None:
    started = time.time() - 1
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    registry_url: str = request.getfixturevalue("postgres_registry_url")
    _flush(REDIS_URL)
    demo = LiveDemo(
        tmp_path / "instance", users=USERS, registry_url=registry_url, store_url=REDIS_URL
    )
    try:
        app = demo.apps[demo.broker_url]
        app.wsgi_app = FromMarkedBrowser(app.wsgi_app)  # type: ignore[method-assign]
        woordwijs = OidcPublisher(
            OIDC_PUBLISHER_ID,
            f"http://localhost:{demo.port + OIDC_PUBLISHER_PORT_OFFSET}",
            "leermiddelen",
        )
        demo.publishers[OIDC_PUBLISHER_ID] = woordwijs
        accounts = demo.registry.accounts
        secrets = {}
        for role, tenant in (("operator", None), ("school", DEMO_SCHOOL_ID)):
            secrets[role] = totp.new_secret()
            accounts.add_admin(
                STAFF[role], hash_password(PASSWORD), secrets[role], AdminRole(role), tenant
            )
        school = app.test_client()
        _sign_in(school, STAFF["school"], secrets["school"])
        _school_releases_everything_through_the_portal(demo, school)
        for service in demo.registry.services():
            declared = frozenset(d.attribute for d in service.declarations)
            demo.registry.set_policy(DEMO_OIDC_SCHOOL_ID, service.id, declared, "test")
        operator = app.test_client()
        _sign_in(operator, STAFF["operator"], secrets["operator"])
        secrets["invited"] = _operator_invites_a_colleague(demo, operator)

        for user in USERS:
            _log_in_everywhere(demo, woordwijs, user)
        pages = _school_looks_up_and_exports(demo, school)
        pages += _refused_school_answers(demo)
        pages.append(_answer_to_a_broker_without_store(demo))
        metrics = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert metrics.status_code == 200
        assert b"ketenbroker_logins_total" in metrics.data

        students = markers(demo)
        op = demo.apps[f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"]
        students |= {sid.lower() for sid in op.extensions["school_op_memory"].issued_sids}
        for chain in {s.chain_id for s in demo.registry.services() if s.chain_id}:
            students |= {demo.expected_pseudonym(u.uid, chain) for u in USERS}
        assert all(len(m) >= 10 for m in students)
        client_marks = {MARK_IP, MARK_AGENT.lower(), "qzxagentmrk"}
        staff = {address.lower() for address in STAFF.values()}
        everyone = students | client_marks | staff

        receipts = [
            r.content.canonical().encode()
            for s in (DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID)
            for r in demo.broker.receipts.find(ReceiptQuery(s))
        ]
        assert len(receipts) >= 8
        store = _redis_dump(REDIS_URL)
        rows = _database_rows(postgres, registry_url.rsplit("/", 1)[1])
        # The demo's development server writes a line per request (broker/cli/dev_server.py):
        # method, path and status, never the query (a Redirect-binding logout's SAML message)
        # nor the client's address. Its lines are searched with every other line.
        access = [line for line in captured_logs.lines if line.startswith("broker.dev_server ")]
        assert any("path=/saml/sp/acs" in line for line in access), "the access lines were seen"
        assert not [line for line in access if "?" in line]
        places: dict[str, bytes] = {
            "logs": "\n".join(set(captured_logs.lines)).encode(),
            "metrics": metrics.data,
            "receipts": b"\n".join(receipts),
            "pages": "\n".join(pages).encode(),
        }
        places |= {f"file {name}": data for name, data in _files(tmp_path / "instance").items()}
        places |= {
            f"temporary file {name}": data for name, data in _new_temporary_files(started).items()
        }
        places |= {
            f"table {table}": b"\n".join(found)
            for table, found in rows.items()
            if table not in STAFF_TABLES
        }
        places |= {f"store key {key!r}": key + b" " + value for key, (value, _) in store.items()}

        # The capture saw the day: the logins, the portal, the refusals.
        log_text = places["logs"].decode()
        for seen in ("released school=", "portal policy school=", "portal invitation accepted"):
            assert seen in log_text, seen
        assert store and rows["receipts"] and rows["admins"]

        leaks = {}
        for place, blob in places.items():
            leaked = _found(everyone, blob)
            if RAW_SAML.search(blob):
                leaked.append("a raw SAML message")
            if RAW_JWT.search(blob):
                leaked.append("a JWT")
            if leaked:
                leaks[place] = leaked
        assert not leaks, leaks
        # Staff addresses only where staff sign in, and no student there either.
        for table in STAFF_TABLES:
            assert not _found(students | client_marks, b"\n".join(rows[table])), table
        assert _found(staff, b"\n".join(rows["admins"])) == sorted(staff)
        # The secrets the broker keeps to use again (staff TOTP secrets, its client secret at
        # the OIDC school) are sealed (core/sealed_secrets.py): in no table in clear, the
        # staff tables included, and nowhere else either. The demo school's own copy of its
        # client secret (peers/) is that school's configuration, not the broker's.
        client_secret = (tmp_path / "instance" / "peers" / "school-op-client-secret").read_text()
        kept = {secret.lower() for secret in (*secrets.values(), client_secret.strip())}
        assert len(kept) == 4 and all(len(secret) >= 20 for secret in kept)
        for table, found in rows.items():
            assert not _found(kept, b"\n".join(found)), f"table {table}"
        for place, blob in places.items():
            if not place.startswith(("file peers/", "table ")):
                assert not _found(kept, blob), place
        # No stack trace shown to anyone.
        assert not TRACE.search(places["pages"].decode())
        # Every key is the broker's, and every one ends by itself.
        assert all(key.startswith(b"kb:") for key in store), sorted(store)
        forever = sorted(key for key, (_, ttl) in store.items() if ttl < 0)
        assert not forever, forever
    finally:
        demo.close()
        _flush(REDIS_URL)
