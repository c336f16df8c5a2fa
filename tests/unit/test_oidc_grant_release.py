"""Codes and tokens follow the school's release as it is now (oidc/grants.py `released_now`):
each use applies the release rule again to what the login delivered. A narrowed policy drops
claims at once, a switched-off service or a withdrawn required attribute ends the grant, and
nothing is ever added (a widened policy waits for the next login)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker.core.model import Declaration, ReleasePolicy, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.oidc.grants import Grantee, released_now
from broker.oidc.requested_claims import PREVIOUS_SUB, claims_as_attributes, release_claims
from broker.registry.errors import ServiceSwitchedOff
from tests.unit.test_sealed_and_flow import FakeRegistry

SCHOOL = "99XX00"
CLIENT = "https://rp.example"
SERVICE = "lesplatform"
CHAIN = "leermiddelen"
DELIVERED = {"given_name": "Sanne", "eduperson_affiliation": ["student"], "groups": ["klas-3a"]}


class Registry(FakeRegistry):
    """The fake registry with one OIDC service and a policy the test changes."""

    def __init__(self, *, required: frozenset[str] = frozenset()) -> None:
        super().__init__()
        declared = ("given_name", "family_name", "affiliation", "groups")
        self._services[SERVICE] = Service(
            SERVICE,
            "Lesplatform",
            CLIENT,
            CHAIN,
            declarations=tuple(Declaration(a, f"for {a}", a in required) for a in declared),
        )
        self.switched_off = False
        self.release(frozenset({"given_name", "affiliation", "groups"}))

    def release(self, attributes: frozenset[str]) -> None:
        self._policies[(SCHOOL, SERVICE)] = ReleasePolicy(SCHOOL, SERVICE, attributes, 7)

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        if self.switched_off:
            raise ServiceSwitchedOff(school_id, service_id)
        return super().policy(school_id, service_id)


def grantee(claims: Mapping[str, object] | None = None, school: str = SCHOOL) -> Grantee:
    return Grantee(
        "a" * 64,
        dict(DELIVERED if claims is None else claims),
        1,
        None,
        "_sid",
        "family",
        int(time.time()) + 3600,
        school,
    )


def test_an_unchanged_policy_leaves_the_grant_as_it_is() -> None:
    who = grantee()
    assert released_now(Registry(), CLIENT, who) is who


def test_a_narrowed_policy_drops_the_claims_it_no_longer_allows() -> None:
    registry = Registry()
    registry.release(frozenset({"affiliation"}))
    narrowed = released_now(registry, CLIENT, grantee())
    assert narrowed is not None
    assert narrowed.claims == {"eduperson_affiliation": ["student"]}
    assert (narrowed.sub, narrowed.sid, narrowed.family) == ("a" * 64, "_sid", "family")
    registry.release(frozenset())  # the pseudonym only: the grant stays, with sub alone
    kept = released_now(registry, CLIENT, grantee())
    assert kept is not None
    assert kept.claims == {}


def test_a_widened_policy_adds_nothing_the_login_did_not_deliver() -> None:
    registry = Registry()
    registry.release(frozenset({"given_name", "family_name", "affiliation", "groups"}))
    delivered = {"given_name": "Sanne"}
    kept = released_now(registry, CLIENT, grantee(delivered))
    assert kept is not None
    assert kept.claims == delivered


def test_a_switched_off_service_ends_the_grant() -> None:
    registry = Registry()
    registry.switched_off = True
    assert released_now(registry, CLIENT, grantee()) is None


def test_a_withdrawn_required_attribute_ends_the_grant() -> None:
    registry = Registry(required=frozenset({"given_name"}))
    assert released_now(registry, CLIENT, grantee()) is not None
    registry.release(frozenset({"affiliation", "groups"}))
    assert released_now(registry, CLIENT, grantee()) is None


def test_a_required_attribute_the_login_did_not_carry_is_no_reason_to_end_it() -> None:
    # The client did not ask for it (scope), so the login went without it; nothing changed.
    registry = Registry(required=frozenset({"groups"}))
    delivered = {"given_name": "Sanne"}
    kept = released_now(registry, CLIENT, grantee(delivered))
    assert kept is not None
    assert kept.claims == delivered


@pytest.mark.parametrize("gone", ["service", "school", "no school named"])
def test_a_removed_service_or_school_ends_the_grant(gone: str) -> None:
    registry = Registry()
    if gone == "service":
        del registry._services[SERVICE]
    who = grantee(school="gone" if gone == "school" else "")
    assert released_now(registry, CLIENT, who) is None


def in_window(registry: Registry, current: int = 2, *, ends_in: float = 3600) -> None:
    """The service's chain in a rotation window from version `current - 1` to `current`."""
    ends = datetime.now(UTC) + timedelta(seconds=ends_in)
    registry.key_versions[CHAIN] = ChainKeyVersion(CHAIN, current, current - 1, ends)


def test_the_previous_pseudonym_stays_with_the_grant_during_its_window() -> None:
    registry = Registry()
    in_window(registry)
    registry.release(frozenset({"groups"}))
    who = replace(
        grantee({**DELIVERED, PREVIOUS_SUB: "b" * 64, "unknown_claim": "x"}), key_version=2
    )
    narrowed = released_now(registry, CLIENT, who)
    assert narrowed is not None
    assert narrowed.claims == {"groups": ["klas-3a"], PREVIOUS_SUB: "b" * 64}


@pytest.mark.parametrize(
    "after", ["the window's end passed", "finish", "never rotated", "a later rotation's window"]
)
def test_the_previous_pseudonym_stops_when_its_window_is_over(after: str) -> None:
    """A refresh family lives up to 30 days; a window may end sooner. The rest of the grant
    stays: only previous_sub goes, as it would for a new login."""
    registry = Registry()
    if after == "the window's end passed":
        in_window(registry, ends_in=-1)
    elif after == "finish":
        registry.key_versions[CHAIN] = ChainKeyVersion(CHAIN, 2)
    elif after == "a later rotation's window":
        in_window(registry, current=3)  # the grant's sub is version 2's: its window is over
    who = replace(grantee({**DELIVERED, PREVIOUS_SUB: "b" * 64}), key_version=2)
    dropped = released_now(registry, CLIENT, who)
    assert dropped == replace(who, claims=DELIVERED)


@pytest.mark.parametrize("window_open", [True, False])
def test_a_grant_that_names_no_key_version_follows_the_open_window(window_open: bool) -> None:
    registry = Registry()
    in_window(registry, ends_in=3600 if window_open else -1)
    who = grantee({**DELIVERED, PREVIOUS_SUB: "b" * 64})  # key_version 0: issued before
    kept = released_now(registry, CLIENT, who)
    assert kept is not None
    assert (PREVIOUS_SUB in kept.claims) is window_open


def test_the_grant_names_its_key_version_in_the_store() -> None:
    who = replace(grantee(), key_version=3)
    assert Grantee.from_payload(who.to_payload()) == who
    old = {k: v for k, v in who.to_payload().items() if k != "key_version"}
    assert Grantee.from_payload(old).key_version == 0


def test_claims_turn_back_into_the_attributes_they_came_from() -> None:
    attributes = {"given_name": ("Sanne",), "groups": ("klas-3a", "klas-3b"), "email": ("s@x",)}
    claims = release_claims(attributes)
    assert claims_as_attributes(claims) == attributes
    assert release_claims(claims_as_attributes(claims)) == claims
    # Values of another shape are no attribute values.
    assert claims_as_attributes({"given_name": 3, "groups": [1], "sub": "x"}) == {}


def test_the_grant_keeps_its_other_fields() -> None:
    registry = Registry()
    registry.release(frozenset({"given_name"}))
    who = replace(grantee(), acr="urn:level:2", auth_time=42)
    narrowed = released_now(registry, CLIENT, who)
    assert narrowed == replace(who, claims={"given_name": "Sanne"})
