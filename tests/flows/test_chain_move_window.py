"""A service moved to another chain with a migration window, end to end (core/chain_move.py).

Real clients log in to the running demo: its pysaml2 publishers (SAML, signatures checked) and
its authlib relying party (OIDC, ID token checked), and `ketenbroker chain move` runs as the
operator runs it. Each previous pseudonym is compared with what the same platform received in a
real login before the move; new values are derived here from the key set file, independently.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.cli.main import main
from broker.core.admins import AdminRole
from broker.core.chain_move import ChainMove
from broker.core.model import Declaration
from broker.core.pseudonym_rotation import PREVIOUS_PSEUDONYM_RECEIPT_NAME
from broker.registry.chain_move_tables import ChainMoveRow
from broker.registry.changes import bump_generation
from broker.registry.database import session_on, writer
from broker.registry.receipts import ReceiptQuery
from broker.web.my_data import STUDENT_CODE_SHOWN
from tests.flows.test_offboarding import refresh, userinfo
from tests.flows.test_oidc_provider_checks import id_token_claims
from tests.flows.test_oidc_provider_checks import register as checks_client
from tests.flows.test_pseudonym_rotation import PinnedWorkers, Rotation
from tests.flows.test_receipts_and_notice import my_data, shared_groups
from tests.support.client import Browser
from tests.support.live import OidcPublisher, running_demo
from tests.support.portal import HTTPS, PASSWORD, csrf_token, post_sign_in

CHAIN = "leermiddelen"


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotation]:
    with running_demo(tmp_path_factory.mktemp("move-demo")) as demo:
        base_url = f"http://localhost:{demo.port + OIDC_PUBLISHER_PORT_OFFSET}"
        demo.publishers[OIDC_PUBLISHER_ID] = OidcPublisher(OIDC_PUBLISHER_ID, base_url, CHAIN)
        yield Rotation(demo, PinnedWorkers([demo.servers[0].app]), [demo.broker])


def _move(moving: Rotation, service_id: str, *args: str) -> ChainMove | None:
    config = moving.demo.directory / "ketenbroker.toml"
    result = CliRunner().invoke(
        main, ["chain", "move", service_id, *args, "--yes", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    move = moving.demo.registry.chain_move(service_id)
    _wait_for_worker(moving, service_id, move)
    return move


def _wait_for_worker(moving: Rotation, service_id: str, move: ChainMove | None) -> None:
    """The worker's cached view has the record (it looks at most once a second)."""
    deadline = time.monotonic() + 10
    while moving.demo.broker.view.chain_move(service_id) != move:
        assert time.monotonic() < deadline, "the worker did not see the move"
        time.sleep(0.1)


def _end_window(moving: Rotation, move: ChainMove) -> ChainMove:
    """The window's end passes (moved into the past here, as the clock would)."""
    registry = moving.demo.registry
    ended = datetime.now(UTC) - timedelta(seconds=1)
    with session_on(writer(registry._engine)) as session:
        session.execute(
            update(ChainMoveRow)
            .where(ChainMoveRow.service_id == move.service_id)
            .values(window_ends=ended)
        )
        bump_generation(session)
    record = registry.chain_move(move.service_id)
    assert record is not None and not record.window_open(datetime.now(UTC))
    _wait_for_worker(moving, move.service_id, record)
    return record


def test_saml_and_oidc_services_moved_with_a_window_receive_their_old_pseudonym(
    moving: Rotation,
) -> None:
    demo = moving.demo
    # Before: what each platform receives in its chain (leermiddelen, version 1).
    saml_before, none = moving.saml("leesplank")
    assert none is None and saml_before == moving.expected(CHAIN, 1)
    oidc_before, none = moving.oidc()
    assert none is None and oidc_before == moving.expected(CHAIN, 1)

    move = _move(moving, "leesplank", "--to", "toetsen", "--window", "30")
    assert move is not None and (move.from_chain, move.from_version) == (CHAIN, 1)
    alone = _move(moving, OIDC_PUBLISHER_ID, "--no-chain", "--window", "30")
    assert alone is not None and alone.to_chain == f"service:{OIDC_PUBLISHER_ID}"

    # During the window: the new chain's pseudonym, and the one received before beside it.
    saml_new = moving.expected("toetsen", 1)
    oidc_new = moving.expected(f"service:{OIDC_PUBLISHER_ID}", 1)
    assert moving.saml("leesplank") == (saml_new, saml_before)
    assert moving.oidc() == (oidc_new, oidc_before)
    # Another student gets their own pair; a service of the old chain that stayed, nothing.
    assert moving.saml("leesplank", "daan.devries") == (
        moving.expected("toetsen", 1, "daan.devries"),
        moving.expected(CHAIN, 1, "daan.devries"),
    )
    assert moving.saml("rekenroute") == (moving.expected(CHAIN, 1), None)
    # The receipt names the previous pseudonym (no value), as in a rotation's window.
    assert PREVIOUS_PSEUDONYM_RECEIPT_NAME in moving.latest_receipt_names("leesplank")

    # After the window: the new pseudonym alone.
    _end_window(moving, move)
    _end_window(moving, alone)
    assert moving.saml("leesplank") == (saml_new, None)
    assert moving.oidc() == (oidc_new, None)
    assert PREVIOUS_PSEUDONYM_RECEIPT_NAME not in moving.latest_receipt_names("leesplank")
    # Nothing personal at rest: no pseudonym in the registry database.
    for path in demo.directory.glob("registry.sqlite3*"):
        content = path.read_bytes()
        assert saml_before.encode() not in content and saml_new.encode() not in content


def test_a_move_without_a_window_releases_no_previous_pseudonym(moving: Rotation) -> None:
    assert moving.saml("rekenroute") == (moving.expected(CHAIN, 1), None)
    assert _move(moving, "rekenroute", "--to", "toetsen") is None
    assert moving.saml("rekenroute") == (moving.expected("toetsen", 1), None)


def test_oidc_codes_and_tokens_carry_previous_sub_only_while_the_move_window_is_open(
    moving: Rotation,
) -> None:
    demo = moving.demo
    client = checks_client(demo, "moving-rp", refresh_tokens=True)  # in leermiddelen
    _, before = client.login(Browser())
    move = _move(moving, "moving-rp", "--to", "toetsen", "--window", "30")
    assert move is not None
    token, claims = client.login(Browser())
    assert claims["sub"] == moving.expected("toetsen", 1)
    assert claims["previous_sub"] == before["sub"]
    params = client.params()
    code = client.redirect(Browser(), params)["code"]  # issued in the window, redeemed after
    refreshed = refresh(client, token)
    assert refreshed.status_code == 200, refreshed.text
    during = userinfo(client, refreshed.json()).json()
    assert (during["sub"], during["previous_sub"]) == (claims["sub"], before["sub"])

    _end_window(moving, move)
    answer = userinfo(client, token).json()
    assert answer["sub"] == claims["sub"] and "previous_sub" not in answer
    again = refresh(client, refreshed.json())
    assert again.status_code == 200, again.text
    assert "previous_sub" not in userinfo(client, again.json()).json()
    redeemed = client.redeem(code, params["_verifier"])
    assert redeemed.status_code == 200, redeemed.text
    late = id_token_claims(demo, redeemed.json()["id_token"], client.client_id)
    assert late["sub"] == claims["sub"] and "previous_sub" not in late


def test_a_moved_services_receipts_from_before_and_after_the_move_are_all_found(
    moving: Rotation,
) -> None:
    """Receipts record the chain of their login, and their subject is per chain: a student's
    receipts of one service from before a move (the chain it left) and after it (the chain it
    went to) carry two subjects. The student's my-data page and the school's lookup of that
    student in the portal try every chain a receipt can name, so both find both."""
    demo, uid = moving.demo, "marieke.bakker"
    service = demo.add_publisher("verhuisplank", CHAIN, (Declaration("given_name", "Groeten."),),
                                 released=frozenset({"given_name"}))  # fmt: skip
    before, _ = moving.saml(service.id, uid)
    move = _move(moving, service.id, "--to", "toetsen", "--window", "30")
    assert move is not None and move.from_chain == CHAIN
    assert moving.saml(service.id, uid) == (moving.expected("toetsen", 1, uid), before)
    receipts = demo.broker.receipts.find(ReceiptQuery(DEMO_SCHOOL_ID, service_id=service.id))
    assert sorted((r.content.chain_id for r in receipts), key=str) == [CHAIN, "toetsen"]
    codes = {r.content.subject[:STUDENT_CODE_SHOWN] for r in receipts}
    assert len(codes) == 2  # one subject per chain

    # The student's my-data page (signed in through the school, as the student does): both.
    page = my_data(demo, Browser(), uid)
    assert sum(n for group, n in shared_groups(page.text) if service.id in group) == 2
    shown = set(re.findall(r"<code data-student-code>([0-9a-f]{16})</code>", page.text))
    assert codes <= shown

    # The school's administrator looks the student up by the identifier the school sends.
    portal, secret = demo.apps[demo.broker_url].test_client(), totp.new_secret()
    email = "ict@demo-lyceum.example"
    demo.registry.accounts.add_admin(
        email, hash_password(PASSWORD), secret, AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    code = totp.code_at(secret, totp.current_step() + 1)
    signed_in = post_sign_in(portal, email, PASSWORD, code)
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)[:300]
    receipts_url = f"/portal/school/{DEMO_SCHOOL_ID}/receipts"
    form = portal.get(receipts_url, base_url=HTTPS).get_data(as_text=True)
    found = portal.post(
        f"{receipts_url}/student",
        base_url=HTTPS,
        data={"csrf_token": csrf_token(form), "identifier": demo.school_subject(uid)},
    )
    # Answered with the list itself: no address carries the student's codes (portals.md).
    assert found.status_code == 200, found.get_data(as_text=True)[:300]
    assert "Location" not in found.headers
    listed = found.get_data(as_text=True)
    name = demo.registry.service_names()[service.id]
    rows = [row for row in re.findall(r"<tr data-receipt>(.*?)</tr>", listed, re.S)
            if name in row]  # fmt: skip
    assert len(rows) == 2
    assert {code for row in rows for code in re.findall(r"<code>([0-9a-f]{16})</code>", row)} == (
        codes
    )
