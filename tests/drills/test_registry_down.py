"""PostgreSQL unreachable: the login pages answer with a clear, localised 503 (never a 500 or a
stack trace), /healthz stays 200, workers started meanwhile boot, and logins work again as soon
as the database is back.

The brokers reach PostgreSQL through a forwarder the test controls: REFUSE is a database that is
down (connections cut, new ones closed at once), HANG one that accepts connections and never
answers (a black-holed network, a server stuck before the handshake).
"""

from __future__ import annotations

import pytest
import requests

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from tests.drills.expect import assert_healthy, assert_logins_work, assert_try_again_page
from tests.support.client import Browser, Page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.live import shows_discovery
from tests.support.processes import Mode

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1, "registry_link": True}

UID = "sanne.jansen"


def attempt(
    fed: Federation, browser: Browser, publisher: str, school: str, *, named: bool = True
) -> Page:
    """A login, as far as it gets: the first page that is not the next step. With `named`
    off the publisher does not name the school and the student chooses it on the broker's
    page. A page within a second of the outage may still come from the worker's registry cache
    (broker/registry/cached.py); the next step that reads the database stops."""
    if named:
        page = fed.start(browser, publisher, school)
    else:
        page = browser.get(f"{fed.publisher_url(publisher)}/login")
        if not shows_discovery(page, fed.broker_url):
            return page
        form = next(f for f in page.forms if ("school", school) in f.buttons)
        page = browser.post(form.action, {**form.fields, "school": school})
    if not fed.at_school(page, school):
        return page
    page = fed.sign_in_at_school(browser, page, school, UID)
    return fed.deliver(browser, page, publisher)


@pytest.mark.parametrize("mode", [Mode.REFUSE, Mode.HANG])
def test_registry_unreachable_gives_a_localised_503_and_recovers(
    fed: Federation, mode: Mode
) -> None:
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    fed.link("registry").set_mode(mode)
    # The broker must answer within the client's timeout (15 s): a hung database may cost a
    # request the connect timeout, never a worker.
    for publisher, school, language in (
        (SAML_PUBLISHER, DEMO_SCHOOL_ID, "nl"),
        (OIDC_PUBLISHER, DEMO_OIDC_SCHOOL_ID, "en"),
    ):
        assert_try_again_page(fed, attempt(fed, fed.browser(language), publisher, school), language)
    # The school choice page (no school named) as well.
    chooser = attempt(fed, fed.browser("nl"), SAML_PUBLISHER, DEMO_SCHOOL_ID, named=False)
    assert_try_again_page(fed, chooser, "nl")
    assert_healthy(fed)
    # The operator is pointed at PostgreSQL, not at Redis: the log's refusals, the setbacks'
    # reason and a gauge an alert can see (docker/alerts.yml).
    log = fed.brokers[0].log_path.read_text(encoding="utf-8")
    assert "refused code=registry_unavailable " in log
    assert "refused code=store_unavailable " not in log
    page = requests.get(f"{fed.brokers[0].url}/metrics", timeout=10).text
    # A setback is counted where the login's step is one the metrics name (not at the notice,
    # where a login may meet the outage too); never as the store's.
    setbacks = [line for line in page.splitlines() if line.startswith("ketenbroker_login_setbacks")]
    assert not any('reason="store_unavailable"' in line for line in setbacks), setbacks
    assert "ketenbroker_registry_reachable 0.0" in page

    fed.link("registry").set_mode(Mode.FORWARD)
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    assert_logins_work(fed, OIDC_PUBLISHER, DEMO_OIDC_SCHOOL_ID, UID)


def test_workers_started_while_the_registry_is_down_boot_and_serve_once_it_is_back(
    fed: Federation,
) -> None:
    broker = fed.brokers[0]
    fed.link("registry").set_mode(Mode.REFUSE)
    killed = broker.kill_workers()
    broker.wait_for_new_workers(killed)
    assert_healthy(fed)
    assert_try_again_page(fed, attempt(fed, fed.browser(), SAML_PUBLISHER, DEMO_SCHOOL_ID), "en")
    fed.link("registry").set_mode(Mode.FORWARD)
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
