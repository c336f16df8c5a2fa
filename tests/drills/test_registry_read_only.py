"""PostgreSQL that answers but takes no writes (a demoted primary, a PgBouncer pointed at a
standby, `default_transaction_read_only`): reads work, every login's receipt fails. The student
gets the localised 503 ("try again"), never a 500; /readyz says `registry_read_only` so a load
balancer stops sending students; logins work again once the server takes writes.
"""

from __future__ import annotations

import pytest
import requests

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from tests.drills.expect import assert_healthy, assert_logins_work, assert_try_again_page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]

UID = "sanne.jansen"


def set_read_only(postgres: PostgresServer, database: str, *, on: bool) -> None:
    """The database's default for new sessions, and every session open on it ended (as a
    failover does): the brokers' pools reconnect and get the new default."""
    setting = (
        "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    )
    with postgres.admin() as admin:
        admin.execute(f'ALTER DATABASE "{database}" {setting}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )


def readyz(fed: Federation) -> tuple[int, str]:
    answer = requests.get(f"{fed.brokers[0].url}/readyz", timeout=10)
    return answer.status_code, answer.text


def test_a_read_only_registry_gives_a_localised_503_and_is_not_ready(
    fed: Federation, postgres: PostgresServer, database: str
) -> None:
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    assert readyz(fed) == (200, "ready\n")
    set_read_only(postgres, database, on=True)
    try:
        for publisher, school, language in (
            (SAML_PUBLISHER, DEMO_SCHOOL_ID, "nl"),
            (OIDC_PUBLISHER, DEMO_OIDC_SCHOOL_ID, "en"),
        ):
            browser = fed.browser(language)
            page = fed.start(browser, publisher, school)
            page = fed.sign_in_at_school(browser, page, school, UID)
            assert_try_again_page(fed, fed.deliver(browser, page, publisher), language)
        status, text = readyz(fed)
        assert status == 503 and "registry_read_only" in text, text
        assert_healthy(fed)
        log = fed.brokers[0].log_path.read_text(encoding="utf-8")
        assert "InternalError" not in log and "refused code=registry_unavailable " in log
    finally:
        set_read_only(postgres, database, on=False)
    assert readyz(fed) == (200, "ready\n")
    assert_logins_work(fed, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    assert_logins_work(fed, OIDC_PUBLISHER, DEMO_OIDC_SCHOOL_ID, UID)
