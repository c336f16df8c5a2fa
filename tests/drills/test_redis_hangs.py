"""Redis that hangs (accepts connections, never answers) or drops every connection: the login
ends with the localised 503 within the store's one-second timeouts instead of holding the worker,
and works again when Redis answers."""

from __future__ import annotations

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.drills.expect import assert_healthy, assert_logins_work, assert_try_again_page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.processes import Mode

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1, "store_link": True}

UID = "sanne.jansen"


@pytest.mark.parametrize("mode", [Mode.HANG, Mode.REFUSE])
@pytest.mark.parametrize(
    ("publisher", "language"), [(SAML_PUBLISHER, "nl"), (OIDC_PUBLISHER, "en")]
)
def test_a_hanging_redis_gives_the_503_page_and_recovers(
    fed: Federation, mode: Mode, publisher: str, language: str
) -> None:
    browser = fed.browser(language)
    answer = fed.school_answered(browser, publisher, DEMO_SCHOOL_ID, UID)
    fed.link("store").set_mode(mode)
    # Within the client's 15-second timeout: the store's own timeouts end the request.
    assert_try_again_page(fed, browser.submit(answer, fed.acs_url), language)
    assert_healthy(fed)
    fed.link("store").set_mode(Mode.FORWARD)
    assert_logins_work(fed, publisher, DEMO_SCHOOL_ID, UID)
