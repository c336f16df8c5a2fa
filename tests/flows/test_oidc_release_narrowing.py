"""A school's change of mind reaches tokens already issued, on every worker: after the school
narrows what it releases to an OpenID Connect platform, or switches the platform off, userinfo,
an unredeemed code and a refresh answer with today's release at their next use; a widened
release waits for the student's next login. Store round trips per userinfo stay one.

A demo of its own: two workers stay behind its port for the rest of this module."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import requests

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Declaration
from broker.web.wiring import Broker
from tests.flows.test_offboarding import on_each_worker, refresh, userinfo
from tests.flows.test_oidc_provider_checks import Client, id_token_claims, store_calls
from tests.flows.test_oidc_provider_checks import register as checks_client
from tests.support.client import Browser
from tests.support.live import LiveDemo, running_demo

SCOPE = "openid profile school groups"
ALL = frozenset({"given_name", "affiliation", "groups"})
DELIVERED = {"given_name", "eduperson_affiliation", "groups"}
PROTOCOL_CLAIMS = {"sub"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("release-narrowing-demo")) as live:
        yield live


def register(demo: LiveDemo, client_id: str, *, required: frozenset[str] = frozenset()) -> Client:
    """A client that asks for (and is released) given_name, affiliation and groups."""
    declarations = tuple(Declaration(a, f"For {a}.", a in required) for a in sorted(ALL))
    return checks_client(demo, client_id, declarations=declarations, refresh_tokens=True)


def release(
    demo: LiveDemo, client_id: str, attributes: frozenset[str], active: bool = True
) -> None:
    """As the school's portal page saves it (a new policy version)."""
    demo.registry.set_policy(DEMO_SCHOOL_ID, client_id, attributes, "test", active=active)


def claims_of(answer: requests.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return set(answer.json()) - PROTOCOL_CLAIMS


def test_a_narrowed_release_reaches_issued_tokens_at_their_next_use(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "narrowed-rp")
    token, claims = client.login(Browser(), scope=SCOPE)
    assert DELIVERED <= set(claims)
    params = client.params(scope=SCOPE)
    code = client.redirect(Browser(), params)["code"]  # issued, not yet redeemed
    assert all(claims_of(a) == DELIVERED for a in on_each_worker(lambda: userinfo(client, token)))

    release(demo, client.client_id, frozenset({"affiliation"}))

    for answer in on_each_worker(lambda: userinfo(client, token)):
        assert claims_of(answer) == {"eduperson_affiliation"}
        assert answer.json()["sub"] == claims["sub"]  # the same grant, narrowed
    redeemed = client.redeem(code, params["_verifier"])
    assert redeemed.status_code == 200, redeemed.text
    narrowed_id_token = id_token_claims(demo, redeemed.json()["id_token"], client.client_id)
    assert "eduperson_affiliation" in narrowed_id_token
    assert not {"given_name", "groups"} & set(narrowed_id_token)
    refreshed = refresh(client, token)
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(userinfo(client, refreshed.json())) == {"eduperson_affiliation"}

    # Widening needs a new login: the refreshed family holds the narrowed claims only.
    release(demo, client.client_id, ALL)
    assert claims_of(userinfo(client, refreshed.json())) == {"eduperson_affiliation"}
    again = refresh(client, refreshed.json())
    assert claims_of(userinfo(client, again.json())) == {"eduperson_affiliation"}
    fresh, _ = client.login(Browser(), scope=SCOPE)
    assert claims_of(userinfo(client, fresh)) == DELIVERED


def test_the_pseudonym_only_keeps_the_tokens_with_sub_alone(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "pseudonym-only-rp")
    token, _ = client.login(Browser(), scope=SCOPE)
    release(demo, client.client_id, frozenset())
    for answer in on_each_worker(lambda: userinfo(client, token)):
        assert claims_of(answer) == set()
    assert refresh(client, token).status_code == 200


def test_a_switched_off_platform_loses_its_codes_and_tokens(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "switched-off-rp")
    token, _ = client.login(Browser(), scope=SCOPE)
    params = client.params(scope=SCOPE)
    code = client.redirect(Browser(), params)["code"]

    release(demo, client.client_id, ALL, active=False)

    for answer in on_each_worker(lambda: userinfo(client, token)):
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    redeemed = client.redeem(code, params["_verifier"])
    assert redeemed.status_code == 400 and redeemed.json()["error"] == "invalid_grant"
    refused = refresh(client, token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # Switched on again: the refused refresh did not burn the token, yet nothing comes back
    # that the school does not release then.
    release(demo, client.client_id, frozenset({"groups"}))
    assert claims_of(userinfo(client, refresh(client, token).json())) == {"groups"}


def test_a_withdrawn_required_attribute_ends_the_tokens(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "required-rp", required=frozenset({"given_name"}))
    token, _ = client.login(Browser(), scope=SCOPE)
    release(demo, client.client_id, frozenset({"affiliation", "groups"}))
    assert userinfo(client, token).status_code == 401
    refused = refresh(client, token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_userinfo_after_a_narrowing_is_still_one_store_round_trip(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "round-trip-rp")
    token, _ = client.login(Browser(), scope=SCOPE)
    release(demo, client.client_id, frozenset({"groups"}))
    for _ in range(2):  # one on each worker
        with store_calls(demo) as calls:
            assert claims_of(userinfo(client, token)) == {"groups"}
        assert [kind for kind, _ in calls] == ["batch"], calls
    with store_calls(demo) as calls:
        assert refresh(client, token).status_code == 200
    digest = hashlib.sha256(token["refresh_token"].encode()).hexdigest()
    # As before the change: the endpoint's rate limit, the token read, its family's mark (with
    # the store's history mark, grants.py) read, the token taken, the new ones written.
    assert [kind for kind, _ in calls] == ["count", "get", "batch", "take", "batch"], calls
    assert calls[1][1] == [f"get oidc-refresh:{digest}"]
    assert calls[2][1][1:] == ["get oidc:history-since"]
