"""PostgreSQL gone silent under established connections (a stopped server process, a proxy or
firewall that keeps the sockets open and passes nothing): the login ends with the localised 503
within the registry's bounds instead of holding a gunicorn thread, and the same workers serve
logins again once the database answers.

The broker runs as `serve` runs it, gthread workers, whose master never times out a request
thread: only the broker's own bounds (registry/database.py) free it. The forwarder in front of
PostgreSQL is switched to FREEZE: unlike HANG it cuts no connection, so the workers' pooled
connections stay open and silent.
"""

from __future__ import annotations

import time

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.registry.database import ANSWER_MARGIN_SECONDS, CONNECT_TIMEOUT_SECONDS
from tests.drills.expect import assert_healthy, assert_logins_work, assert_try_again_page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.processes import Mode

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
# One worker, so the request meets the pooled connections the login before the freeze opened.
FEDERATION = {"brokers": 1, "broker_workers": 1, "broker_threads": 4, "registry_link": True}

UID = "sanne.jansen"
STATEMENT_SECONDS = 2  # registry.statement_timeout_seconds, the default
# The pool's ping on a silent connection waits out its answer deadline, the new connection it
# then opens its connect timeout; a few seconds on top for a loaded test machine (the client
# itself gives up at 15).
BOUND = STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS + CONNECT_TIMEOUT_SECONDS + 3


@pytest.mark.parametrize(
    ("publisher", "language"), [(SAML_PUBLISHER, "nl"), (OIDC_PUBLISHER, "en")]
)
def test_a_silent_registry_gives_the_503_page_within_its_bound_and_the_workers_recover(
    fed: Federation, publisher: str, language: str
) -> None:
    broker = fed.brokers[0]
    assert_logins_work(fed, publisher, DEMO_SCHOOL_ID, UID)
    workers = broker.worker_pids()
    browser = fed.browser(language)
    answer = fed.school_answered(browser, publisher, DEMO_SCHOOL_ID, UID)
    fed.link("registry").set_mode(Mode.FREEZE)
    started = time.monotonic()
    page = browser.submit(answer, fed.acs_url)
    took = time.monotonic() - started
    assert_try_again_page(fed, page, language)
    assert took < BOUND, took
    assert_healthy(fed)

    fed.link("registry").set_mode(Mode.FORWARD)
    assert_logins_work(fed, publisher, DEMO_SCHOOL_ID, UID)
    # The same worker: its thread was freed by the bound, not by gunicorn killing the worker.
    assert broker.worker_pids() == workers
