"""The session identifier services are given (broker/login/session_index.py): its own per
service, the same for one service within a session, one way from the SSO token, and the shared
value of sessions opened before the upgrade still recognised (COMPAT(session-index-per-service))."""

from __future__ import annotations

import hmac
import re
from hashlib import sha256

from broker.login.session_index import names_session, session_index, shared_session_index

TOKEN = "dGhlLXNzby10b2tlbi1vZi1vbmUtYnJvd3Nlci1ub3QtcmVhbC0wMTIzNDU2Nzg5"
SHAPE = re.compile(r"_[0-9a-f]{40}")


def test_each_service_gets_its_own_value_and_the_same_one_every_time() -> None:
    leesplank = session_index(TOKEN, "leesplank")
    rekenroute = session_index(TOKEN, "rekenroute")  # same chain
    toetsplein = session_index(TOKEN, "toetsplein")  # another chain
    assert len({leesplank, rekenroute, toetsplein}) == 3
    assert session_index(TOKEN, "leesplank") == leesplank
    assert all(SHAPE.fullmatch(each) for each in (leesplank, rekenroute, toetsplein))
    # Another session, another value for the same service.
    assert session_index(TOKEN + "x", "leesplank") != leesplank


def test_the_value_is_the_keyed_digest_not_the_token_nor_the_old_shared_one() -> None:
    value = session_index(TOKEN, "leesplank")
    expected = hmac.new(
        TOKEN.encode(), b"ketenbroker/session-index/per-service\0leesplank", sha256
    ).hexdigest()
    assert value == "_" + expected[:40]
    assert value[1:] not in TOKEN and value != shared_session_index(TOKEN)
    # The old shared value, as releases before this one derived it for every service.
    old = sha256(f"ketenbroker/session-index/{TOKEN}".encode()).hexdigest()[:40]
    assert shared_session_index(TOKEN) == "_" + old


def test_without_a_session_every_answer_gets_a_random_value() -> None:
    first, second = session_index(None, "leesplank"), session_index("", "leesplank")
    assert first != second and SHAPE.fullmatch(first) and SHAPE.fullmatch(second)


def test_names_session_takes_the_services_own_value() -> None:
    assert names_session(TOKEN, "leesplank", ["_other", session_index(TOKEN, "leesplank")])


def test_names_session_refuses_another_services_or_sessions_value() -> None:
    assert not names_session(TOKEN, "leesplank", [session_index(TOKEN, "toetsplein")])
    assert not names_session(TOKEN, "leesplank", [session_index(TOKEN + "x", "leesplank")])
    assert not names_session(TOKEN, "leesplank", [])
    # No session in this browser: nothing is its value.
    assert not names_session(None, "leesplank", [session_index(TOKEN, "leesplank")])
    # A peer's odd input is simply not this session's (no TypeError from compare_digest).
    assert not names_session(TOKEN, "leesplank", ["_é" * 20, ""])


def test_compat_the_shared_value_of_a_session_opened_before_the_upgrade_is_taken() -> None:
    # COMPAT(session-index-per-service): a hint or request naming the value every service of
    # the session got before the upgrade still names that session, at any of its services.
    shared = shared_session_index(TOKEN)
    assert names_session(TOKEN, "leesplank", [shared])
    assert names_session(TOKEN, "toetsplein", [shared])
    assert not names_session(TOKEN + "x", "leesplank", [shared])
