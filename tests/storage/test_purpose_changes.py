"""A new purpose stops a release, on SQLite and PostgreSQL (core/purposes.py,
registry/purpose_drops.py): the attribute whose Dutch purpose changed is taken out of the choice
of each school that released it, as a new version of that school's policy, and released again
once the school ticks it again; new wording of the same purpose keeps every choice; a choice made
on a page that showed the old purpose is refused; and a registry import does the same, only
when the operator confirms it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, joinedload

from broker.core.admins import Publisher
from broker.core.model import Declaration, School, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.database import locked_row
from broker.registry.declaration_writes import replace_declarations
from broker.registry.errors import DeclarationsChanged
from broker.registry.purpose_drops import purpose_drops
from broker.registry.removal import Stamp, remove_school
from broker.registry.snapshot import Snapshot
from broker.registry.tables import ServiceRow
from tests.storage.test_registry_removal import _racing_the_removal

SCHOOL = School("00AA", "Het Voorbeeld College", "https://idp.voorbeeld.nl/saml")
OTHER = School("00BB", "Het Andere College", "https://idp.ander.nl/saml")
THIRD = School("00CC", "Het Derde College", "https://idp.derde.nl/saml")
MAIL = Declaration("email", "Om de leerling een inloglink te sturen", purpose_en="To send a link")
GROUPS = Declaration("groups", "Om de klas te vinden", required=True)
SERVICE = Service(
    "lesweb",
    "Lesweb",
    "https://sp.lesweb.nl/saml",
    None,
    declarations=(MAIL, GROUPS),
    publisher_id="uitgever-a",
)
MARKETING = (replace(MAIL, purpose="Voor marketing"), GROUPS)
BOTH = frozenset({"email", "groups"})


def _registered(registry: SqlRegistry) -> SqlRegistry:
    """00AA releases e-mail and groups, 00BB groups only, 00CC e-mail but switched off."""
    for school in (SCHOOL, OTHER, THIRD):
        registry.add_school(school, "<idp/>")
    registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    registry.add_service(SERVICE, "<sp/>")
    registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1")
    registry.set_policy(OTHER.id, "lesweb", frozenset({"groups"}), "admin:1")
    registry.set_policy(THIRD.id, "lesweb", frozenset({"email"}), "admin:1", active=False)
    return registry


def _with_marketing(exported: Snapshot) -> Snapshot:
    """The registry's file with e-mail's purpose changed to marketing."""
    return replace(
        exported,
        services=tuple(
            replace(entry, service=replace(entry.service, declarations=MARKETING))
            for entry in exported.services
        ),
    )


def test_a_new_purpose_stops_that_attribute_where_it_was_released(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    replaced = registry.set_declarations("lesweb", MARKETING, "admin:2")
    assert (replaced.version, replaced.purpose_changed) == (2, frozenset({"email"}))
    assert replaced.dropped == ((SCHOOL.id, ("email",)), (THIRD.id, ("email",)))
    service = registry.service("lesweb")
    assert service is not None
    # Not a change every school must confirm: the rest of each choice keeps counting.
    assert (service.declaration_version, service.reconfirm_version) == (2, 1)
    assert registry.policy(SCHOOL.id, "lesweb").attributes == {"groups"}
    assert registry.policy(OTHER.id, "lesweb").attributes == {"groups"}

    # A new version of each such school's policy, by the broker, naming the declaration
    # version; the school's accepted declarations and its on/off switch unchanged.
    history = registry.policy_history(SCHOOL.id, "lesweb")
    assert [(c.version, sorted(c.attributes), c.changed_by) for c in history] == [
        (1, ["email", "groups"], "admin:1"),
        (2, ["groups"], "purpose-change:2"),
    ]
    assert history[-1].declaration_version == 1 and history[-1].active
    third = registry.policy_history(THIRD.id, "lesweb")[-1]
    assert (third.attributes, third.active) == (frozenset(), False)
    # A school that did not release it has no new version.
    assert len(registry.policy_history(OTHER.id, "lesweb")) == 1
    choices = registry.choices_of_school(SCHOOL.id)
    assert choices["lesweb"].purpose_dropped and not choices["lesweb"].needs_confirmation
    assert not registry.choices_of_school(OTHER.id)["lesweb"].purpose_dropped

    # What the school's page says: which attribute, from which purpose to which.
    versions = {c.version: c.declarations for c in registry.declaration_history("lesweb")}
    (drop,) = purpose_drops(history, versions)
    assert (drop.attribute, drop.version) == ("email", 2)
    assert drop.before == MAIL and drop.after == MARKETING[0]

    # One save releases it again, under the new purpose; the notice is gone.
    registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1", declarations_seen=2)
    assert registry.policy(SCHOOL.id, "lesweb").attributes == BOTH
    assert not registry.choices_of_school(SCHOOL.id)["lesweb"].purpose_dropped
    assert purpose_drops(registry.policy_history(SCHOOL.id, "lesweb"), versions) == []


def test_new_wording_of_the_same_purpose_keeps_every_release(sql_registry: SqlRegistry) -> None:
    registry = _registered(sql_registry)
    reworded = (
        replace(MAIL, purpose="Om de leerling een  Inloglink te sturen.", purpose_en="Marketing"),
        replace(GROUPS, purpose_en="To find the class."),
    )
    replaced = registry.set_declarations("lesweb", reworded, "admin:2")
    assert (replaced.version, replaced.purpose_changed, replaced.dropped) == (2, frozenset(), ())
    assert registry.policy(SCHOOL.id, "lesweb").attributes == BOTH
    assert len(registry.policy_history(SCHOOL.id, "lesweb")) == 1


def test_a_choice_made_on_the_page_with_the_old_purpose_is_refused(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    registry.set_declarations("lesweb", MARKETING, "admin:2")
    before = registry.policy_history(SCHOOL.id, "lesweb")
    with pytest.raises(DeclarationsChanged):
        registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1", declarations_seen=1)
    assert registry.policy_history(SCHOOL.id, "lesweb") == before
    assert registry.policy(SCHOOL.id, "lesweb").attributes == {"groups"}


def test_a_new_purpose_with_an_added_attribute_resets_and_drops(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    name = Declaration("given_name", "Om te begroeten")
    registry.set_declarations("lesweb", (*MARKETING, name), "admin:2")
    # Every school confirms again (an attribute added); the stored choice no longer ticks the
    # attribute whose purpose changed, so confirming it as shown does not release it.
    assert registry.policy(SCHOOL.id, "lesweb").attributes == frozenset()
    choice = registry.choices_of_school(SCHOOL.id)["lesweb"]
    assert choice.needs_confirmation and choice.attributes == {"groups"}
    registry.set_policy(SCHOOL.id, "lesweb", choice.attributes, "admin:1", declarations_seen=2)
    assert registry.policy(SCHOOL.id, "lesweb").attributes == {"groups"}


def test_an_import_with_a_new_purpose_waits_for_the_operators_confirmation(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    exported = registry.snapshot()
    edited = _with_marketing(exported)
    before = registry.snapshot()
    report = registry.import_snapshot(edited, "import:t")
    # Worked out, rolled back: what it would stop, and nothing changed.
    assert not report.applied
    assert report.dropped == {"00AA/lesweb": {"email"}, "00CC/lesweb": {"email"}}
    assert registry.snapshot() == before
    report = registry.import_snapshot(edited, "import:t", stop_releases=True)
    assert report.applied and report.changed == ["service lesweb"]
    # The file's policies (accepted under the old purposes) do not bring the release back.
    assert registry.policy(SCHOOL.id, "lesweb").attributes == {"groups"}
    assert registry.policy_history(SCHOOL.id, "lesweb")[-1].changed_by == "purpose-change:2"
    # Imported again: nothing to stop, nothing changed.
    again = registry.import_snapshot(registry.snapshot(), "import:t")
    assert again.applied and not again.touched and not again.dropped
    # An older file's choice, made under the old purpose, does not bring the release back.
    fresh = Snapshot(
        policies=tuple(
            replace(p, school_id=OTHER.id, attributes=BOTH)
            for p in exported.policies
            if p.school_id == SCHOOL.id
        )
    )
    report = registry.import_snapshot(fresh, "import:t")
    # 00BB did not release e-mail before: nothing stops, so nothing to confirm.
    assert report.applied and not report.dropped
    assert registry.policy(OTHER.id, "lesweb").attributes == {"groups"}


def test_the_same_file_imported_twice_stops_nothing_the_second_time(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    exported = registry.snapshot()
    edited = _with_marketing(exported)
    first = registry.import_snapshot(edited, "import:t", stop_releases=True)
    assert first.applied and first.dropped == {"00AA/lesweb": {"email"}, "00CC/lesweb": {"email"}}
    # GROUPS is required, e-mail is not: nothing of the stop refuses logins.
    assert not first.dropped_required
    before = registry.snapshot()
    again = registry.import_snapshot(edited, "import:t")
    assert again.applied and not again.touched and not again.dropped
    assert registry.snapshot() == before


def test_a_file_that_accepted_the_new_purpose_keeps_the_release_without_confirmation(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    exported = registry.snapshot()
    edited = replace(
        _with_marketing(exported),
        # 00AA's choice was made under version 2 (the new purpose): it keeps e-mail.
        policies=tuple(
            replace(p, declaration_version=2, version=5) if p.school_id == SCHOOL.id else p
            for p in exported.policies
        ),
    )
    report = registry.import_snapshot(edited, "import:t")
    # 00CC's (switched off) choice still stops, so the operator confirms that one only.
    assert not report.applied and report.dropped == {"00CC/lesweb": {"email"}}
    report = registry.import_snapshot(edited, "import:t", stop_releases=True)
    assert report.applied and report.dropped == {"00CC/lesweb": {"email"}}
    assert registry.policy(SCHOOL.id, "lesweb").attributes == BOTH


def test_a_stop_made_by_an_import_is_its_own_version_after_the_files(
    sql_registry: SqlRegistry,
) -> None:
    """The school released e-mail again under the new purpose; an older file's choice (made
    under the old one) is written as the file's version, then the stop as the broker's, so
    the school's page says what stopped and why."""
    registry = _registered(sql_registry)
    old = registry.snapshot()
    registry.set_declarations("lesweb", MARKETING, "admin:2")
    registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1", declarations_seen=2)
    older_file = Snapshot(
        policies=tuple(replace(p, active=False) for p in old.policies if p.school_id == SCHOOL.id)
    )
    report = registry.import_snapshot(older_file, "import:t")
    assert not report.applied and report.dropped == {"00AA/lesweb": {"email"}}
    report = registry.import_snapshot(older_file, "import:t", stop_releases=True)
    assert report.applied
    history = registry.policy_history(SCHOOL.id, "lesweb")
    assert [(c.changed_by, c.attributes) for c in history[-2:]] == [
        ("import:t", BOTH),
        ("purpose-change:2", {"groups"}),
    ]


@pytest.mark.postgres
def test_a_new_purpose_racing_a_schools_choice_refuses_the_stale_choice(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: a school's choice made on the page with the old purpose that arrives while
    the publisher's change holds the service row waits for it, then is refused; an operator's
    choice without a version (`policy set`) waits too and then numbers its version after the
    broker's, instead of failing on the history's unique version."""
    migrate(postgres_registry_url)
    registry = _registered(SqlRegistry(postgres_registry_url))
    try:
        outcome = _racing_a_purpose_change(
            postgres_registry_url,
            2,
            lambda: registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1", declarations_seen=1),
        )
        assert len(outcome) == 1 and isinstance(outcome[0], DeclarationsChanged), outcome
        assert registry.policy(SCHOOL.id, "lesweb").attributes == {"groups"}

        registry.set_policy(SCHOOL.id, "lesweb", BOTH, "admin:1", declarations_seen=2)
        outcome = _racing_a_purpose_change(
            postgres_registry_url,
            3,
            lambda: registry.set_policy(SCHOOL.id, "lesweb", BOTH, "cli:beheer"),
        )
        assert outcome == [None]
        history = registry.policy_history(SCHOOL.id, "lesweb")
        assert [(c.version, c.changed_by) for c in history] == [
            (1, "admin:1"),
            (2, "purpose-change:2"),
            (3, "admin:1"),
            (4, "purpose-change:3"),
            (5, "cli:beheer"),
        ]
    finally:
        registry.close()


def _racing_a_purpose_change(
    url: str, version: int, change: Callable[[], object]
) -> list[BaseException | None]:
    """Run `change` in a thread while a publisher's change giving e-mail a new purpose, as
    `version`, holds the service row (done, not committed); its outcome once that committed."""

    def publishing(session: Session) -> None:
        # As set_declarations does: the service row locked first, then read.
        assert locked_row(session, ServiceRow.id, "lesweb")
        row = session.get(ServiceRow, "lesweb", options=[joinedload(ServiceRow.declarations)])
        assert row is not None
        new = (replace(MAIL, purpose=f"Voor marketing, ronde {version}"), GROUPS)
        replace_declarations(session, row, new, version, (datetime.now(UTC), "admin:2"))

    return _racing_the_removal(url, publishing, change)


@pytest.mark.postgres
def test_a_new_purpose_racing_a_schools_removal_skips_the_removed_school(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: the purpose change waits for the school's removal, which deletes the
    school's choice, and then narrows the choices that are left: no StaleDataError (a 500 in
    the portal), no history version for the removed school's choice."""
    migrate(postgres_registry_url)
    registry = _registered(SqlRegistry(postgres_registry_url))
    try:
        outcome = _racing_the_removal(
            postgres_registry_url,
            lambda s: remove_school(s, SCHOOL.id, Stamp("cli:test", datetime.now(UTC))),
            lambda: registry.set_declarations("lesweb", MARKETING, "admin:2"),
        )
        assert outcome == [None]
        assert [c.changed_by for c in registry.policy_history(SCHOOL.id, "lesweb")] == ["admin:1"]
        assert registry.policy_history(THIRD.id, "lesweb")[-1].changed_by == "purpose-change:2"
    finally:
        registry.close()
