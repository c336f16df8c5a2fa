"""The round trips of a logout (docs/performance.md, "A slow phone connection"): once the
services have had their chance, the run's page goes on itself (to the school, or to the final
page) instead of redirecting to `/logout/<run>/next` first, and comes there again on a reload.
"""

from __future__ import annotations

import pytest

from tests.support.client import Browser
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.logout import carry_saml_posts, read_final, run_id_of


@pytest.fixture(scope="module")
def stap(demo: LiveDemo) -> OidcPublisher:
    """A platform told by the back channel alone: nothing for the run's page to wait for."""
    return demo.add_oidc_publisher("stap", "leermiddelen", scope="openid", logout=True)


def test_a_run_with_nothing_to_wait_for_goes_on_without_a_detour(
    demo: LiveDemo, stap: OidcPublisher
) -> None:
    browser = Browser()
    assert demo.login(browser, "stap", "daan.devries").final.status == 200
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    started = browser.post(form.action, dict(form.fields), follow=False)
    assert started.status == 303 and started.location is not None
    run_page = browser.get(started.location, follow=False)
    # The run's own address answers with its next step: the way to the school.
    assert run_page.url.endswith(f"/logout/{run_id_of(run_page)}")
    assert run_page.status == 303 and run_page.location is not None, run_page.text
    assert run_page.location.startswith(demo.school_url), run_page.location
    final = carry_saml_posts(browser, browser.get(run_page.location))
    outcome = read_final(final)
    assert list(outcome.services.values()) == ["confirmed"]
    assert outcome.school == "confirmed"
    # A reload of the run's address (Back from the school): its final page, nobody told again.
    again = browser.get(started.location)
    assert again.status == 200 and again.url.endswith("/done"), again.url
