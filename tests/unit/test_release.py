"""The release rule (attributes.md): policy ∩ declared ∩ requested ∩ available, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core.catalogue import CATALOGUE
from broker.core.errors import MissingSubject, PolicyRefusal, RequiredAttributeMissing
from broker.core.model import (
    Declaration,
    ReleasePolicy,
    School,
    Service,
    UpstreamIdentity,
)
from broker.core.pseudonym import PseudonymKeys, derive_chain_pseudonym
from broker.core.pseudonym_rotation import KeyVersions
from broker.core.release import compute_release, release_for, required_not_released

NAMES = sorted(CATALOGUE)
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))

names = st.frozensets(st.sampled_from(NAMES))
values = st.lists(st.text(min_size=1, max_size=8), max_size=3).map(tuple)
available_maps = st.dictionaries(st.sampled_from(NAMES), values)


def _service(
    declared: frozenset[str] | set[str] = frozenset(),
    required: frozenset[str] | set[str] = frozenset(),
    chain_id: str | None = "leermiddelen",
) -> Service:
    declarations = tuple(
        Declaration(name, f"purpose of {name}", name in required)
        for name in sorted(set(declared) | set(required))
    )
    return Service(
        "uitgever", "Uitgeverij", "https://sp.example/metadata", chain_id, declarations=declarations
    )


def _policy(attributes: frozenset[str] | set[str] = frozenset(), version: int = 3) -> ReleasePolicy:
    return ReleasePolicy("99XX00", "uitgever", frozenset(attributes), version)


@settings(max_examples=300)
@given(
    policy=names,
    declared=names,
    requested=st.none() | names,
    available=available_maps,
)
def test_release_is_the_intersection(
    policy: frozenset[str],
    declared: frozenset[str],
    requested: frozenset[str] | None,
    available: dict[str, tuple[str, ...]],
) -> None:
    result = release_for(_service(declared), _policy(policy), requested, available)
    keys = set(result)
    # A request that names nothing leaves the declaration as the request.
    asked = declared if requested is None else requested
    assert keys <= policy
    assert keys <= declared
    assert keys <= asked
    assert keys <= set(available)
    with_values = {name for name, vals in available.items() if vals}
    assert keys == policy & declared & asked & with_values
    for name, vals in result.items():
        assert vals == available[name]


@settings(max_examples=200)
@given(
    policy=names,
    declared=names,
    required=names,
    requested=st.none() | names,
    available=available_maps,
)
def test_required_refuses_exactly_what_is_missing(
    policy: frozenset[str],
    declared: frozenset[str],
    required: frozenset[str],
    requested: frozenset[str] | None,
    available: dict[str, tuple[str, ...]],
) -> None:
    service = _service(declared, required)
    all_declared = declared | required
    asked = all_declared if requested is None else all_declared & requested
    with_values = {name for name, vals in available.items() if vals}
    releasable = policy & asked & with_values
    expected_missing = tuple(sorted((required & asked) - releasable))
    if expected_missing:
        with pytest.raises(RequiredAttributeMissing) as caught:
            release_for(service, _policy(policy), requested, available)
        assert caught.value.missing == expected_missing
    else:
        assert set(release_for(service, _policy(policy), requested, available)) == releasable


@settings(max_examples=200)
@given(policy=names, declared=names, required=names)
def test_what_the_portal_warns_of_is_what_a_login_refuses(
    policy: frozenset[str], declared: frozenset[str], required: frozenset[str]
) -> None:
    """The school's portal asks `required_not_released` with the policy alone: a login that
    names nothing, of a student with every attribute, is refused exactly when it answers any,
    and for exactly those (docs/portals.md)."""
    service = _service(declared, required)
    warned = required_not_released(service, policy)
    assert set(warned) == required - policy
    # In the service's declaration order (the pages show them in the catalogue's).
    assert list(warned) == [d.attribute for d in service.declarations if d.attribute in warned]
    everything = {name: ("x",) for name in NAMES}
    if warned:
        with pytest.raises(RequiredAttributeMissing) as caught:
            release_for(service, _policy(policy), None, everything)
        assert caught.value.missing == tuple(sorted(warned))
    else:
        release_for(service, _policy(policy), None, everything)


def test_default_policy_releases_nothing() -> None:
    service = _service({"given_name", "email"})
    available = {"given_name": ("Sanne",), "email": ("s@example.org",)}
    assert release_for(service, ReleasePolicy("99XX00", "uitgever"), None, available) == {}
    assert ReleasePolicy("99XX00", "uitgever").version == 0


def test_undeclared_attribute_is_never_released() -> None:
    service = _service({"given_name"})
    policy = _policy({"given_name", "email"})
    available = {"given_name": ("Sanne",), "email": ("s@example.org",)}
    assert release_for(service, policy, frozenset({"given_name", "email"}), available) == {
        "given_name": ("Sanne",)
    }


def test_required_missing_names_exactly_the_missing_attributes() -> None:
    service = _service({"given_name"}, {"affiliation", "school_id", "email"})
    policy = _policy({"given_name", "affiliation", "email"})
    available = {"given_name": ("Sanne",), "affiliation": ("student",), "email": ()}
    with pytest.raises(RequiredAttributeMissing) as caught:
        release_for(service, policy, None, available)
    assert caught.value.missing == ("email", "school_id")
    assert caught.value.service_id == "uitgever"
    assert isinstance(caught.value, PolicyRefusal)
    assert caught.value.status == 403
    assert "Sanne" not in str(caught.value)


def test_required_attribute_left_out_of_the_request_does_not_refuse() -> None:
    service = _service({"given_name"}, {"affiliation"})
    policy = _policy({"given_name"})
    available = {"given_name": ("Sanne",)}
    assert release_for(service, policy, frozenset({"given_name"}), available) == {
        "given_name": ("Sanne",)
    }
    # The same login asking for the required attribute is refused.
    with pytest.raises(RequiredAttributeMissing):
        release_for(service, policy, frozenset({"given_name", "affiliation"}), available)


def test_empty_request_releases_nothing() -> None:
    service = _service({"given_name"})
    assert release_for(service, _policy({"given_name"}), frozenset(), {"given_name": ("S",)}) == {}


def _identity(subject: str = "persistent-1") -> UpstreamIdentity:
    return UpstreamIdentity(
        "99XX00", subject, {"given_name": ("Sanne",), "email": ("s@example.org",)}
    )


SCHOOL = School("99XX00", "De Demoschool", "https://idp.demo.example")


def test_compute_release_pseudonym_and_attributes() -> None:
    keys = PseudonymKeys(1, {1: KEY_1})
    release = compute_release(
        keys, SCHOOL, _service({"given_name"}), _identity(), _policy({"given_name"}, 4), None
    )
    assert release.pseudonym == derive_chain_pseudonym(
        KEY_1, "leermiddelen", "school:99XX00", "persistent-1"
    )
    assert release.attributes == {"given_name": ("Sanne",)}
    assert release.policy_version == 4
    assert release.previous_pseudonym is None


def test_compute_release_with_previous_key() -> None:
    keys = PseudonymKeys(2, {1: KEY_1, 2: KEY_2})
    release = compute_release(
        keys, SCHOOL, _service(), _identity(), _policy(), None, KeyVersions(2, 1)
    )
    assert release.pseudonym == derive_chain_pseudonym(
        KEY_2, "leermiddelen", "school:99XX00", "persistent-1"
    )
    assert release.previous_pseudonym == derive_chain_pseudonym(
        KEY_1, "leermiddelen", "school:99XX00", "persistent-1"
    )
    assert release.previous_pseudonym != release.pseudonym


def test_service_in_no_chain_is_a_chain_of_its_own() -> None:
    keys = PseudonymKeys(1, {1: KEY_1})
    service = _service(chain_id=None)
    assert service.pseudonym_chain == "service:uitgever"
    release = compute_release(keys, SCHOOL, service, _identity(), _policy(), None)
    assert release.pseudonym == derive_chain_pseudonym(
        KEY_1, "service:uitgever", "school:99XX00", "persistent-1"
    )
    in_chain = compute_release(keys, SCHOOL, _service(), _identity(), _policy(), None)
    assert in_chain.pseudonym != release.pseudonym


def test_compute_release_without_subject_fails() -> None:
    keys = PseudonymKeys(1, {1: KEY_1})
    with pytest.raises(MissingSubject):
        compute_release(keys, SCHOOL, _service(), _identity(""), _policy(), None)


def test_compute_release_same_pseudonym_for_every_service_in_a_chain() -> None:
    keys = PseudonymKeys(1, {1: KEY_1})
    one = _service()
    two = Service("distributeur", "Distributeur", "https://d.example/md", "leermiddelen")
    first = compute_release(keys, SCHOOL, one, _identity(), _policy(), None)
    second = compute_release(keys, SCHOOL, two, _identity(), _policy(), None)
    assert first.pseudonym == second.pseudonym
