"""A school whose OpenID provider hangs (accepts connections, never answers): that school's
logins end cleanly with a localised "did not answer in time" page within the configured timeout
(two seconds here), while another school's login, at the same time, goes through.

The broker calls an OIDC school's provider on the back channel (token endpoint, keys,
userinfo); the forwarder in front of the demo OIDC school is switched to HANG after the student
signed in there, so the hang meets the broker's token request, not the student's browser.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.oidc.rp_discovery import FAILURE_BACKOFF
from tests.drills.expect import assert_healthy, assert_logins_work
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.processes import Mode, wait_for

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1, "school_timeout_seconds": 2}

UID = "sanne.jansen"
TIMED_OUT = {
    "nl": "De inlogdienst van je school antwoordde niet op tijd",
    "en": "sign-in service did not answer in time",  # (the apostrophe is escaped)
}


def school_back(fed: Federation) -> None:
    """The school answers again. A worker whose discovery fetch met the hang answers "recently
    unreachable" at once for FAILURE_BACKOFF seconds (broker/oidc/rp_discovery.py) instead of
    waiting on the school again; which worker a request meets is the kernel's choice, so the
    drill lets that time pass (nothing to poll: the back-off is inside the worker)."""
    link = fed.link("school")
    link.set_mode(Mode.FORWARD)
    wait_for(
        lambda: time.monotonic() > link.restored_at + FAILURE_BACKOFF,
        "the discovery back-off to pass",
        FAILURE_BACKOFF + 5,
        interval=0.5,
    )


def log_lines(fed: Federation, text: str) -> int:
    return fed.brokers[0].log_path.read_text(encoding="utf-8").count(text)


@pytest.mark.parametrize(
    ("publisher", "language"), [(SAML_PUBLISHER, "nl"), (OIDC_PUBLISHER, "en")]
)
def test_a_hanging_school_times_out_cleanly_while_another_school_logs_in(
    fed: Federation, publisher: str, language: str
) -> None:
    browser = fed.browser(language)
    signed_in = fed.school_answered(browser, publisher, DEMO_OIDC_SCHOOL_ID, UID)
    location = signed_in.location
    assert location is not None, "the school's answer leads back to the broker"

    timeouts = log_lines(fed, "refused code=school_timeout ")
    fed.link("school").set_mode(Mode.HANG)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(browser.get, location)
        wait_for(lambda: fed.link("school").held() > 0, "the broker to call the hanging school", 10)
        # While one worker waits on the hanging school, another school's login goes through.
        assert_logins_work(fed, publisher, DEMO_SCHOOL_ID, UID)
        answer = waiting.result(timeout=30)

    assert answer.status == 504, answer.text[:300]
    assert answer.url.startswith(fed.broker_url)
    assert f'lang="{language}"' in answer.text
    assert TIMED_OUT[language] in answer.text
    assert "Traceback" not in answer.text
    assert log_lines(fed, "refused code=school_timeout ") == timeouts + 1
    if publisher == OIDC_PUBLISHER:
        # The way back to the service carries OAuth's "try again later", not a code.
        assert "error=temporarily_unavailable" in answer.text
    assert_healthy(fed)

    school_back(fed)
    assert_logins_work(fed, publisher, DEMO_OIDC_SCHOOL_ID, UID)


def test_a_school_that_hangs_when_a_login_starts_times_out_cleanly(fed: Federation) -> None:
    # New workers have not fetched the school's discovery document yet (it is cached per
    # process): the login's first step calls the school, which hangs.
    broker = fed.brokers[0]
    killed = broker.kill_workers()
    broker.wait_for_new_workers(killed)
    fed.link("school").set_mode(Mode.HANG)
    timeouts = log_lines(fed, "refused code=school_timeout ")
    page = fed.start(fed.browser("nl"), SAML_PUBLISHER, DEMO_OIDC_SCHOOL_ID)
    assert page.status == 504, page.text[:300]
    assert page.url.startswith(fed.broker_url)
    assert TIMED_OUT["nl"] in page.text
    assert log_lines(fed, "refused code=school_timeout ") == timeouts + 1
    school_back(fed)
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_OIDC_SCHOOL_ID, UID)
