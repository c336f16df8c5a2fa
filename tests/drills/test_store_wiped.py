"""Redis wiped between the school issuing an assertion and the broker using it: the assertion is
still refused (the store epoch rule, security.md), and new logins work at once.

Two ways the store forgets. A whole wipe (FLUSHALL; a restart without persistence) also loses
the login record, which refuses the answer by itself. A partial loss keeps the login record but
loses the replay cache and the epoch markers (simulated by deleting every key but the login
records, as when those live on a Cluster master that did not restart, while the one with the
replay bucket came back empty): only the epoch rule stands between such an assertion and a
login. The broker runs with a clock skew of one second here, so
the test need not wait a minute for the assertion to be "from before the wipe".
"""

from __future__ import annotations

import time

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.drills.expect import delivered_is_refused_then_a_new_login_works
from tests.support.client import Browser, Page
from tests.support.federation import SAML_PUBLISHER, Federation
from tests.support.processes import wait_for

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]

UID = "sanne.jansen"
SKEW = 1
FEDERATION = {"brokers": 1, "clock_skew_seconds": SKEW}
LOGIN_KEYS = b"kb:login:*"
EPOCHS = b"kb:epoch:*"


def school_answer(fed: Federation, browser: Browser) -> tuple[Page, float]:
    """The school's signed answer for a login at the SAML publisher, not yet delivered."""
    answer = fed.school_answered(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    with fed.redis.client() as client:
        assert list(client.scan_iter(match=EPOCHS)), "a request to the school opens an epoch"
    return answer, time.time()


def test_a_full_wipe_refuses_an_assertion_issued_before_it(fed: Federation) -> None:
    browser = fed.browser()
    answer, _ = school_answer(fed, browser)
    with fed.redis.client() as client:
        client.flushall()  # the test's own redis-server: nobody else's keys
    delivered_is_refused_then_a_new_login_works(fed, browser, answer, "state_expired")
    with fed.redis.client() as client:  # the new login wrote a new epoch marker
        assert list(client.scan_iter(match=EPOCHS))


def test_a_lost_replay_cache_refuses_an_assertion_issued_before_the_loss(fed: Federation) -> None:
    browser = fed.browser()
    answer, issued = school_answer(fed, browser)
    # IssueInstant has whole seconds: past the skew means more than skew + 1 s later.
    wait_for(lambda: time.time() > issued + SKEW + 1.5, "the assertion to age past the skew")
    with fed.redis.client() as client:
        kept = set(client.scan_iter(match=LOGIN_KEYS))
        assert kept, "the login record should be in the store"
        lost = [key for key in client.scan_iter() if key not in kept]
        assert any(key.startswith(EPOCHS[:-1]) for key in lost)
        client.delete(*lost)
    delivered_is_refused_then_a_new_login_works(fed, browser, answer, "before_store_epoch")
