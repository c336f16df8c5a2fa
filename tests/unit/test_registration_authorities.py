"""A source limited to some registration authorities (broker/saml/registration_authority.py):
only the members whose mdrpi:RegistrationInfo (their own, else their nearest group's, MDRPI
2.1.1) names a listed federation are read; the others are counted and named in the log with a
reason code. Feeds are built and signed as in test_metadata_aggregate.py
(bench/metadata_aggregate.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench.metadata_aggregate import MDRPI, idp_entity, registered_by, signed_aggregate, sp_entity
from broker.saml.aggregate import MAX_NAMED_NOT_LISTED, MetadataRefused
from tests.unit.test_metadata_aggregate import MEMBER_CERT, NOW, SIGNER, read

NATIONAL = "https://www.federation.example/"
ABROAD = "https://federation.abroad.example/"


def school(number: int, authority: str | None) -> str:
    entity = idp_entity(
        f"https://idp{number}.example/metadata", f"https://idp{number}.example/sso", MEMBER_CERT
    )
    return registered_by(entity, authority) if authority is not None else entity


def feed(members: list[str], group_authority: str | None = None) -> bytes:
    if group_authority is not None:
        # The aggregate's own RegistrationInfo, as some federations publish it.
        members = [
            f'<md:Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="{MDRPI}" '
            f'registrationAuthority="{group_authority}"/></md:Extensions>',
            *members,
        ]
    return signed_aggregate(members, SIGNER[0], valid_until=NOW + timedelta(days=7))


def ids(data: bytes, *authorities: str) -> set[str]:
    return {e.entity_id for e in read(data, authorities=frozenset(authorities)).entities}


def test_without_a_list_every_member_is_read() -> None:
    data = feed([school(1, NATIONAL), school(2, ABROAD), school(3, None)])
    assert ids(data) == {f"https://idp{n}.example/metadata" for n in (1, 2, 3)}
    assert read(data).not_listed == 0


def test_a_list_reads_only_the_members_its_federations_registered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="broker.saml.aggregate")
    data = feed([school(1, NATIONAL), school(2, ABROAD), school(3, None)])
    result = read(data, authorities=frozenset({NATIONAL}))
    assert [e.entity_id for e in result.entities] == ["https://idp1.example/metadata"]
    assert result.not_listed == 2 and result.skipped == 0
    counted = {
        r.__dict__["reason"]: r.__dict__["count"]
        for r in caplog.records
        if r.getMessage() == "metadata entities skipped"
    }
    assert counted == {"registration_authority_not_listed": 1, "registration_authority_missing": 1}
    named = [
        (r.__dict__["reason"], r.__dict__["entity"])
        for r in caplog.records
        if r.getMessage() == "metadata entity left out"
    ]
    assert named == [
        ("registration_authority_not_listed", "https://idp2.example/metadata"),
        ("registration_authority_missing", "https://idp3.example/metadata"),
    ]
    assert ids(data, NATIONAL, ABROAD) == {
        "https://idp1.example/metadata",
        "https://idp2.example/metadata",
    }


def test_the_same_entity_id_registered_abroad_is_not_read_from_a_national_list() -> None:
    # The case the setting is for: another federation registers a national school's entity id
    # with its own key, and an interfederation feed carries it.
    attacker = registered_by(
        idp_entity("https://idp1.example/metadata", "https://evil.example/sso", MEMBER_CERT),
        ABROAD,
    )
    result = read(feed([attacker, school(1, NATIONAL)]), authorities=frozenset({NATIONAL}))
    (only,) = result.entities
    assert "evil.example" not in only.xml


def group(members: list[str], authority: str | None = None) -> str:
    """A nested EntitiesDescriptor around `members`, tagged with `authority` when given."""
    info = (
        f'<md:Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="{MDRPI}" '
        f'registrationAuthority="{authority}"/></md:Extensions>'
        if authority is not None
        else ""
    )
    return f"<md:EntitiesDescriptor>{info}{''.join(members)}</md:EntitiesDescriptor>"


def test_a_feed_tagged_only_at_the_aggregate_is_read_for_its_members() -> None:
    # MDRPI 2.1.1: a RegistrationInfo on an EntitiesDescriptor is as an identical one on each
    # descendant. A federation that tags its aggregate once must not be locked out (before,
    # every member was `registration_authority_missing` and the feed `no_listed_entities`).
    data = feed([school(1, None), school(2, None)], group_authority=NATIONAL)
    result = read(data, authorities=frozenset({NATIONAL}))
    assert [e.entity_id for e in result.entities] == [
        "https://idp1.example/metadata",
        "https://idp2.example/metadata",
    ]
    assert result.not_listed == 0
    refused_abroad = feed([school(1, None)], group_authority=ABROAD)
    with pytest.raises(MetadataRefused) as caught:
        read(refused_abroad, authorities=frozenset({NATIONAL}))
    assert caught.value.code == "no_listed_entities"


def test_in_nested_groups_the_nearest_registration_info_speaks() -> None:
    data = feed(
        [
            group([school(1, None), group([school(2, None)])], NATIONAL),
            group([school(3, None)], ABROAD),
            group([school(4, None)]),  # says nothing, nor does the aggregate
        ]
    )
    result = read(data, authorities=frozenset({NATIONAL}))
    assert [e.entity_id for e in result.entities] == [
        "https://idp1.example/metadata",
        "https://idp2.example/metadata",
    ]
    assert result.not_listed == 2
    # A group's tag overrules the aggregate's for its members.
    inner_abroad = feed([school(5, None), group([school(6, None)], ABROAD)], NATIONAL)
    assert ids(inner_abroad, NATIONAL) == {"https://idp5.example/metadata"}
    assert ids(inner_abroad, ABROAD) == {"https://idp6.example/metadata"}


def test_the_entitys_own_registration_info_wins_over_its_groups() -> None:
    data = feed([school(1, ABROAD), group([school(2, NATIONAL)], ABROAD)], NATIONAL)
    assert ids(data, NATIONAL) == {"https://idp2.example/metadata"}
    assert ids(data, ABROAD) == {"https://idp1.example/metadata"}


def test_a_registration_info_elsewhere_in_the_entity_does_not_count() -> None:
    # Only the EntityDescriptor's own Extensions: not one inside a role descriptor's.
    entity = idp_entity("https://idp4.example/metadata", "https://idp4.example/sso", MEMBER_CERT)
    inside_role = entity.replace(
        "<md:KeyDescriptor",
        f'<md:Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="{MDRPI}" '
        f'registrationAuthority="{NATIONAL}"/></md:Extensions><md:KeyDescriptor',
        1,
    )
    assert ids(feed([school(1, NATIONAL), inside_role]), NATIONAL) == {
        "https://idp1.example/metadata"
    }


def test_a_list_that_takes_no_member_refuses_the_feed() -> None:
    # Most likely a mistyped URI: refused with its own code, the copy held stays in force.
    data = feed([school(1, NATIONAL)])
    with pytest.raises(MetadataRefused) as caught:
        read(data, authorities=frozenset({"https://www.federation.example"}))  # no slash
    assert caught.value.code == "no_listed_entities"


def test_many_left_out_are_counted_and_the_first_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="broker.saml.aggregate")
    abroad = [
        registered_by(
            sp_entity(f"https://sp{n}.example/md", f"https://sp{n}.example/acs", MEMBER_CERT),
            ABROAD,
        )
        for n in range(MAX_NAMED_NOT_LISTED + 5)
    ]
    result = read(feed([school(1, NATIONAL), *abroad]), authorities=frozenset({NATIONAL}))
    assert result.not_listed == MAX_NAMED_NOT_LISTED + 5
    named = [r for r in caplog.records if r.getMessage() == "metadata entity left out"]
    assert len(named) == MAX_NAMED_NOT_LISTED
    assert named[0].__dict__["entity"] == "https://sp0.example/md"
