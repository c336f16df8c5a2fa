"""Redis rolled back under the broker: restarted from a persistence file written before the
school's answer was used. The file brings the login record back without the replay key its
first use wrote, and with the epoch markers of before; the broker notices the new server on its
first new connection and moves every bucket's epoch to now (the store epoch rule, security.md),
so the same answer delivered again is refused. A plain reconnect to the same server moves
nothing. The broker runs with a clock skew of one second, so the answer is soon "from before".
"""

from __future__ import annotations

import time

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.drills.expect import delivered_is_refused_then_a_new_login_works
from tests.support.federation import SAML_PUBLISHER, Federation
from tests.support.processes import wait_for

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]

UID = "sanne.jansen"
FEDERATION = {"brokers": 1, "clock_skew_seconds": 1}
EPOCHS = b"kb:epoch:*"
HISTORY = b"kb:history"


def markers(fed: Federation) -> dict[bytes, bytes | None]:
    with fed.redis.client() as client:
        keys = sorted(client.scan_iter(match=EPOCHS))
        return dict(zip([*keys, HISTORY], client.mget([*keys, HISTORY]), strict=True))


def test_a_restart_from_a_file_of_before_refuses_the_answer_used_since(fed: Federation) -> None:
    browser = fed.browser()
    answer = fed.school_answered(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    issued = time.time()
    with fed.redis.client() as client:
        client.save()  # the file holds the login record, not yet the answer's use
    first = fed.deliver(browser, browser.submit(answer, fed.acs_url), SAML_PUBLISHER)
    assert first.status == 200, first.text[:300]
    # IssueInstant has whole seconds, and the moved epoch allows one: two seconds later.
    wait_for(lambda: time.time() > issued + 2.5, "the answer to age")
    fed.redis.stop()
    fed.redis.start()  # loads dump.rdb: the rollback
    try:
        with fed.redis.client() as client:
            assert list(client.scan_iter(match=b"kb:login:*")), "the login record came back"
            assert not list(client.scan_iter(match=b"kb:replay:*")), "its use did not"
        delivered_is_refused_then_a_new_login_works(fed, browser, answer, "before_store_epoch")
    finally:
        (fed.redis.directory / "dump.rdb").unlink(missing_ok=True)


def test_a_reconnect_to_the_same_server_moves_no_epoch(fed: Federation) -> None:
    assert fed.login(fed.browser(), SAML_PUBLISHER, DEMO_SCHOOL_ID, UID).status == 200
    seen = markers(fed)
    assert seen[HISTORY] is not None
    with fed.redis.client() as client:
        assert client.client_kill_filter(_type="normal") >= 1  # the broker's connections
    browser = fed.browser()
    page = fed.login(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    assert page.status == 200, page.text[:300]
    assert fed.received_subject(browser, SAML_PUBLISHER) == fed.expected_pseudonym(
        DEMO_SCHOOL_ID, UID
    )
    after = markers(fed)
    assert {key: after.get(key) for key in seen} == seen
