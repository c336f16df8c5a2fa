"""A gunicorn worker killed (SIGKILL) mid-login: the login state lives in Redis, sealed under
the browser's cookie, so the login carries on, or can be started again, on the workers gunicorn
starts in their place.

Which worker serves a request is the kernel's choice, so the drill kills every worker of the
broker process: whatever served the login so far is gone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from tests.drills.expect import assert_healthy
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.processes import Mode, wait_for

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1, "school_timeout_seconds": 10}

UID = "fatima.elamrani"


@pytest.mark.parametrize("publisher", [SAML_PUBLISHER, OIDC_PUBLISHER])
def test_a_login_continues_on_new_workers_after_its_workers_were_killed(
    fed: Federation, publisher: str
) -> None:
    broker = fed.brokers[0]
    browser = fed.browser()
    answer = fed.school_answered(browser, publisher, DEMO_SCHOOL_ID, UID)

    killed = broker.kill_workers()
    assert killed
    broker.wait_for_new_workers(killed)

    done = fed.deliver(browser, browser.submit(answer, fed.acs_url), publisher)
    assert done.status == 200, done.text[:500]
    assert fed.received_subject(browser, publisher) == fed.expected_pseudonym(DEMO_SCHOOL_ID, UID)


def test_a_login_whose_worker_dies_mid_request_can_be_retried(fed: Federation) -> None:
    broker = fed.brokers[0]
    browser = fed.browser()
    signed_in = fed.school_answered(browser, SAML_PUBLISHER, DEMO_OIDC_SCHOOL_ID, UID)
    location = signed_in.location
    assert location is not None, "the school's answer leads back to the broker"

    # The worker is inside the request, waiting on the school's token endpoint, when it dies.
    fed.link("school").set_mode(Mode.HANG)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(browser.get, location)
        wait_for(lambda: fed.link("school").held() > 0, "a worker to be inside the login", 10)
        killed = broker.kill_workers()
        with pytest.raises(requests.ConnectionError):
            waiting.result(timeout=30)  # the browser sees the connection drop, no page
    fed.link("school").set_mode(Mode.FORWARD)
    broker.wait_for_new_workers(killed)
    assert_healthy(fed)

    # Reloading the dead request is refused cleanly: its login record was spent when the
    # worker took it, so the school's code cannot be redeemed a second time.
    reloaded = browser.get(location)
    assert reloaded.status == 400, reloaded.text[:300]
    assert "Please start again" in reloaded.text

    # The student tries again from the platform: a new login, served by the new workers.
    retry = fed.login(browser, SAML_PUBLISHER, DEMO_OIDC_SCHOOL_ID, UID)
    assert retry.status == 200, retry.text[:500]
    assert fed.received_subject(browser, SAML_PUBLISHER) == fed.expected_pseudonym(
        DEMO_OIDC_SCHOOL_ID, UID
    )
