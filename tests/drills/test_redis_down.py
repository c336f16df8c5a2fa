"""Redis stopped mid-login: the student gets a localised "please try again" page (503), nothing
is half-written, the workers stay healthy, and logins work again as soon as Redis is back.

The test's own redis-server is killed (SIGKILL, no persistence: a crash loses everything, as in
production without persistence) after the login started and before the school's answer reaches
the broker; then it is started again on the same port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from tests.drills.expect import assert_healthy, assert_try_again_page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.live import SSO_COOKIE
from tests.support.processes import RedisServer

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1}

UID = "sanne.jansen"


@pytest.fixture
def redis_back(redis: RedisServer) -> Iterator[RedisServer]:
    """Redis running again after the test, whatever happened in it."""
    yield redis
    if redis.process is None:
        redis.start()


@pytest.mark.parametrize(
    ("publisher", "school", "language"),
    [
        (SAML_PUBLISHER, DEMO_SCHOOL_ID, "nl"),
        (OIDC_PUBLISHER, DEMO_OIDC_SCHOOL_ID, "en"),
        (SAML_PUBLISHER, DEMO_OIDC_SCHOOL_ID, "en"),
        (OIDC_PUBLISHER, DEMO_SCHOOL_ID, "nl"),
    ],
)
def test_redis_stopped_mid_login_gives_a_localised_503_and_recovers(
    fed: Federation, redis_back: RedisServer, publisher: str, school: str, language: str
) -> None:
    browser = fed.browser(language)
    page = fed.start(browser, publisher, school)
    assert fed.at_school(page, school), page.url

    redis_back.stop()
    answer = fed.sign_in_at_school(browser, page, school, UID)

    assert_try_again_page(fed, answer, language)
    # Nothing half-written reached the student or the publisher: no SSO session cookie, no
    # SAML response, no redirect carrying a code, no visit to the publisher's endpoint.
    assert SSO_COOKIE not in answer.cookies_set
    assert SSO_COOKIE not in browser.cookies(fed.broker_url)
    assert not any(url.startswith(fed.publisher_url(publisher)) for url in answer.visited)
    # The worker itself is fine: it answers, and does not report the store as its own death.
    assert_healthy(fed)

    redis_back.start()
    # The very first login after Redis is back works: pooled connections to the dead server
    # are retried once on a fresh connection, not turned into another 503.
    retry = fed.login(browser, publisher, school, UID)
    assert retry.status == 200, retry.text[:500]
    assert fed.received_subject(browser, publisher) == fed.expected_pseudonym(school, UID)


def test_redis_down_when_the_login_starts_gives_the_503_page(
    fed: Federation, redis_back: RedisServer
) -> None:
    redis_back.stop()
    browser = fed.browser("nl")
    page = fed.start(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID)
    assert_try_again_page(fed, page, "nl")
    assert not any(url.startswith(fed.school_url) for url in page.visited)
