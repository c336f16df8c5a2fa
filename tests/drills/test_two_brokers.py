"""Two broker processes (gunicorn, two workers each) on one Redis and one PostgreSQL registry,
as behind a load balancer: a login that starts at one finishes at the other, in every protocol
pairing, and an OIDC code issued by one is redeemed exactly once when 20 redeemers race at both.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests

from tests.drills.expect import NOWHERE, issued_code, registered_client
from tests.support.federation import (
    OIDC_PUBLISHER,
    SAML_PUBLISHER,
    SCHOOLS,
    Federation,
)
from tests.support.processes import wait_for

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 2}

UID = "fatima.elamrani"
RACERS = 20


@pytest.mark.parametrize("school", SCHOOLS)
@pytest.mark.parametrize("publisher", [SAML_PUBLISHER, OIDC_PUBLISHER])
def test_a_login_started_at_one_broker_finishes_at_the_other(
    fed: Federation, publisher: str, school: str
) -> None:
    answers_at_1 = fed.brokers[1].served(*fed.answer_path(school))
    browser = fed.browser(via=0)
    page = fed.start(browser, publisher, school)  # request and login record: broker 0
    fed.route(browser, 1)  # the school's answer reaches broker 1
    page = fed.sign_in_at_school(browser, page, school, UID)
    # gunicorn writes the access line after the answer went out: poll for it.
    wait_for(
        lambda: fed.brokers[1].served(*fed.answer_path(school)) == answers_at_1 + 1,
        "broker 1 to log the school's answer",
        seconds=10,
    )
    page = fed.deliver(browser, page, publisher)
    assert page.status == 200, page.text[:500]
    assert fed.received_subject(browser, publisher) == fed.expected_pseudonym(school, UID)
    # The SSO session written by broker 1 is honoured by broker 0.
    fed.route(browser, 0)
    again = fed.start(browser, publisher, school)
    again = fed.deliver(browser, again, publisher)
    assert again.status == 200, again.text[:500]
    assert not any(url.startswith(fed.school_base(school)) for url in again.visited)
    assert fed.received_subject(browser, publisher) == fed.expected_pseudonym(school, UID)


def test_a_code_from_one_broker_is_redeemed_once_when_twenty_race_at_both(fed: Federation) -> None:
    client_id, secret = registered_client(fed, "race")
    code, verifier = issued_code(fed, client_id, UID)

    start = Barrier(RACERS)

    def redeem(index: int) -> requests.Response:
        start.wait(10)
        return requests.post(
            f"{fed.brokers[index % 2].url}/oidc/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": NOWHERE,
                "code_verifier": verifier,
            },
            auth=(client_id, secret),
            timeout=20,
        )

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(redeem, range(RACERS)))
    won = [a for a in answers if a.status_code == 200]
    lost = [a for a in answers if a.status_code != 200]
    assert len(won) == 1, [a.status_code for a in answers]
    assert len(lost) == RACERS - 1
    for loser in lost:
        assert loser.status_code == 400, loser.text
        assert loser.json()["error"] == "invalid_grant"
    # The losers' reuse revoked the login's family: the winner's access token is dead as well,
    # at either broker (RFC 6749 section 4.1.2: a code used twice revokes what it gave).
    access = won[0].json()["access_token"]
    for broker in fed.brokers:
        userinfo = requests.get(
            f"{broker.url}/oidc/userinfo",
            headers={"Authorization": f"Bearer {access}"},
            timeout=10,
        )
        assert userinfo.status_code == 401, userinfo.text
