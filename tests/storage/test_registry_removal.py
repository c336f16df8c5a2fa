"""Offboarding on SQLite and PostgreSQL: removing a school, a service or a publisher organisation
takes exactly what only makes sense with it, in one transaction, and keeps receipts and history
(broker/registry/removal.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.core.admins import AdminRole, Publisher
from broker.core.errors import UnknownSchool, UnknownService
from broker.core.model import (
    Chain,
    ClientAuthMethod,
    Declaration,
    OidcClient,
    OidcUpstream,
    Protocol,
    Release,
    School,
    Service,
    UpstreamIdentity,
)
from broker.core.receipts import ReceiptKeys, receipt_content
from broker.registry import SqlRegistry, migrate
from broker.registry.admin_tables import AdminRow, DeclarationChangeRow, InvitationRow, PublisherRow
from broker.registry.cached import CachedRegistryReader
from broker.registry.database import open_engine, session_on, writer
from broker.registry.errors import InvitationUnusable, PublisherInUse, UnknownPublisher
from broker.registry.id_reuse import IdReuse
from broker.registry.migration import alembic_config, model_drift
from broker.registry.receipt_tables import NoticePreferenceRow, ReceiptChainRow, ReceiptRow
from broker.registry.removal import Stamp, remove_publisher, remove_school, remove_service
from broker.registry.tables import (
    Base,
    DeclarationRow,
    OidcClientRow,
    PolicyChangeRow,
    ReleasePolicyRow,
    RemovalRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
)
from tests.support.races import held_open_while
from tests.support.sealing import TEST_SEAL
from tests.support.tables import table_of

KEYS = ReceiptKeys.from_key(bytes(range(32)))
SAML_SCHOOL = School("00AA", "Het Voorbeeld College", "https://idp.voorbeeld.nl/saml")
OIDC_SCHOOL = School(
    "11BB",
    "OIDC College",
    "https://login.oidc-college.nl",
    subject_attribute="sub",
    oidc=OidcUpstream("https://login.oidc-college.nl", "ketenbroker", "the-secret"),
)
DECLARED = (Declaration("given_name", "to greet the student"),)
SAML_SERVICE = Service(
    "lesmethode", "Lesmethode", "https://sp.lesmethode.nl", "uitgever-a", declarations=DECLARED
)
OIDC_SERVICE = Service(
    "toets",
    "Toets App",
    "toets",
    None,
    declarations=DECLARED,
    protocol=Protocol.OIDC,
    oidc=OidcClient(("https://toets.nl/cb",), ClientAuthMethod.SECRET_BASIC, secret_hash="0" * 64),
    publisher_id="uitgever-a",
)
EVERY_TABLE = (
    SchoolRow,
    SchoolOidcRow,
    ServiceRow,
    OidcClientRow,
    DeclarationRow,
    ReleasePolicyRow,
    PolicyChangeRow,
    DeclarationChangeRow,
    NoticePreferenceRow,
    ReceiptRow,
    ReceiptChainRow,
    AdminRow,
    InvitationRow,
    PublisherRow,
    RemovalRow,
)


@pytest.fixture
def federation(sql_registry: SqlRegistry) -> SqlRegistry:
    """Two schools and two services, every pair with a policy, a notice setting and a receipt;
    two administrators and an invitation for 00AA, one administrator for the publisher."""
    registry = sql_registry
    registry.add_chain(Chain("uitgever-a", "Uitgever A"))
    registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    registry.add_school(SAML_SCHOOL, "<idp/>")
    registry.add_school(OIDC_SCHOOL, "")
    registry.add_service(SAML_SERVICE, "<sp/>")
    registry.add_service(OIDC_SERVICE, None)
    book = registry.receipt_book(KEYS)
    for school in (SAML_SCHOOL, OIDC_SCHOOL):
        for service in (SAML_SERVICE, OIDC_SERVICE):
            registry.set_policy(school.id, service.id, frozenset({"given_name"}), "test")
            book.set_notice_mode(school.id, service.id, "changes")
            release = Release("p" * 64, {"given_name": ("Ada",)}, 1)
            identity = UpstreamIdentity(school.id, "leerling-1")
            book.append(
                receipt_content(
                    KEYS,
                    issued_at=1_800_000_000,
                    school=school,
                    service=service,
                    identity=identity,
                    release=release,
                )
            )
    accounts = registry.accounts
    accounts.add_admin("ict@voorbeeld.nl", "h", "S", AdminRole.SCHOOL, "00AA")
    accounts.add_admin("rector@voorbeeld.nl", "h", "S", AdminRole.SCHOOL, "00AA")
    accounts.add_admin("ict@oidc-college.nl", "h", "S", AdminRole.SCHOOL, "11BB")
    accounts.add_admin("dev@uitgever-a.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-a")
    expires = datetime.now(UTC) + timedelta(days=1)
    accounts.add_invitation("a" * 64, "new@voorbeeld.nl", AdminRole.SCHOOL, "00AA", expires, 1)
    return registry


def counts(registry: SqlRegistry) -> dict[str, int]:
    with session_on(registry._engine) as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in EVERY_TABLE
        }


def gone(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Rows removed, by table (tables that lost none left out)."""
    return {name: before[name] - after[name] for name in before if before[name] != after[name]}


def rows_naming(registry: SqlRegistry, table: type[Base], column: str, value: str) -> int:
    with session_on(registry._engine) as session:
        where = getattr(table, column) == value
        return session.scalar(select(func.count()).select_from(table).where(where)) or 0


def test_a_dry_run_says_what_would_go_and_changes_nothing(federation: SqlRegistry) -> None:
    before, generation = counts(federation), federation.generation()
    removal = federation.remove_school("00AA", apply=False)
    assert removal.entry == SAML_SCHOOL and not removal.applied
    assert removal.policies == ("lesmethode", "toets")
    assert (removal.notice_settings, removal.admins, removal.invitations) == (2, 2, 1)
    assert (removal.receipts, removal.policy_history) == (2, 2)
    service = federation.remove_service("toets", apply=False)
    assert service.policies == ("00AA", "11BB") and service.declaration_history == 1
    assert counts(federation) == before and federation.generation() == generation


def test_removing_a_school_takes_what_only_makes_sense_with_it(federation: SqlRegistry) -> None:
    before, generation = counts(federation), federation.generation()
    removal = federation.remove_school("11BB", apply=True, removed_by="cli:ops")
    assert removal.applied and removal.policies == ("lesmethode", "toets")
    # The school, its OIDC registration, its two policies and notice settings, its one admin.
    assert gone(before, counts(federation)) == {
        "schools": 1,
        "school_oidc_providers": 1,
        "release_policies": 2,
        "notice_preferences": 2,
        "admins": 1,
        "removals": -1,  # the record of it
    }
    assert federation.school("11BB") is None and federation.school("00AA") is not None
    assert rows_naming(federation, ReceiptRow, "school_id", "11BB") == 2
    assert federation.policy_history("11BB", "toets")[0].changed_by == "test"
    assert federation.receipt_book(KEYS).verify("11BB").problem is None
    assert federation.generation() > generation


def test_a_removed_schools_administrators_and_invitations_go(federation: SqlRegistry) -> None:
    admins = {a.email: a for a in federation.accounts.admins()}
    federation.remove_school("00AA", apply=True)
    left = {a.email for a in federation.accounts.admins()}
    assert left == {"ict@oidc-college.nl", "dev@uitgever-a.nl"}
    assert federation.accounts.admin(admins["ict@voorbeeld.nl"].id) is None
    assert rows_naming(federation, InvitationRow, "tenant_id", "00AA") == 0
    # Never given out again: a portal session names its administrator by id.
    newcomer = federation.accounts.add_admin("op@broker.nl", "h", "S", AdminRole.OPERATOR, None)
    assert newcomer.id > max(a.id for a in admins.values())


def test_removing_a_service_keeps_its_publisher_and_history(federation: SqlRegistry) -> None:
    before = counts(federation)
    federation.remove_service("toets", apply=True)
    assert gone(before, counts(federation)) == {
        "services": 1,
        "oidc_clients": 1,
        "declarations": 1,
        "release_policies": 2,
        "notice_preferences": 2,
        "removals": -1,
    }
    assert federation.any_service("toets") is None
    assert federation.accounts.publisher("uitgever-a") is not None
    assert [s.id for s in federation.all_services("uitgever-a")] == []
    assert len(federation.declaration_history("toets")) == 1
    assert rows_naming(federation, ReceiptRow, "service_id", "toets") == 2


def test_unknown_ids_are_refused_and_change_nothing(federation: SqlRegistry) -> None:
    before, generation = counts(federation), federation.generation()
    with pytest.raises(UnknownSchool, match="no school with id 'nope'"):
        federation.remove_school("nope", apply=True)
    with pytest.raises(UnknownService, match="no service with id 'lesmethode-x'"):
        federation.remove_service("lesmethode-x", apply=True)
    assert counts(federation) == before and federation.generation() == generation


def test_every_workers_view_drops_a_removed_entry(federation: SqlRegistry) -> None:
    other_worker = CachedRegistryReader(federation, max_staleness=0.0)
    assert other_worker.service_by_entity_id("toets") is not None
    assert other_worker.schools_by_idp(SAML_SCHOOL.idp_entity_id)
    federation.remove_service("toets", apply=True)
    federation.remove_school("00AA", apply=True)
    assert other_worker.service_by_entity_id("toets") is None
    assert other_worker.schools_by_idp(SAML_SCHOOL.idp_entity_id) == ()
    assert [s.id for s in other_worker.schools()] == ["11BB"]
    assert SAML_SCHOOL.idp_entity_id not in federation.school_metadata()


def test_registered_again_its_versions_continue(federation: SqlRegistry) -> None:
    federation.set_policy("00AA", "lesmethode", frozenset(), "test")  # version 2
    federation.remove_school("00AA", apply=True)
    federation.remove_service("lesmethode", apply=True)
    federation.add_school(SAML_SCHOOL, "<idp/>")
    # Its id again, for the same (no) publisher organisation: the operator's flag (id_reuse.py).
    federation.add_service(SAML_SERVICE, "<sp/>", reuse=IdReuse.SAME_PUBLISHER)
    assert federation.any_service("lesmethode").declaration_version == 2  # type: ignore[union-attr]
    policy = federation.set_policy("00AA", "lesmethode", frozenset({"given_name"}), "again")
    assert policy.version == 3
    history = federation.policy_history("00AA", "lesmethode")
    assert [(c.version, c.changed_by) for c in history] == [(1, "test"), (2, "test"), (3, "again")]
    assert [c.version for c in federation.declaration_history("lesmethode")] == [1, 2]


def test_an_import_after_a_removal_continues_the_versions_too(federation: SqlRegistry) -> None:
    exported = federation.snapshot()
    federation.remove_school("00AA", apply=True)
    federation.remove_service("lesmethode", apply=True)
    report = federation.import_snapshot(exported, "import:test", reuse=IdReuse.SAME_PUBLISHER)
    assert "school 00AA" in report.added and "service lesmethode" in report.added
    history = federation.policy_history("00AA", "lesmethode")
    assert [c.version for c in history] == [1, 2]  # the file's version 1 follows the kept one
    assert [c.version for c in federation.declaration_history("lesmethode")] == [1, 2]
    assert federation.policy("00AA", "lesmethode").attributes == frozenset({"given_name"})


def test_a_removal_is_recorded_and_its_name_still_names_its_receipts(
    federation: SqlRegistry,
) -> None:
    federation.remove_service("toets", apply=True, removed_by="cli:ops")
    with session_on(federation._engine) as session:
        (row,) = session.scalars(select(RemovalRow))
        assert (row.kind, row.entry_id, row.name, row.removed_by) == (
            "service",
            "toets",
            "Toets App",
            "cli:ops",
        )
    names = federation.service_names()
    assert names == {"lesmethode": "Lesmethode", "toets": "Toets App"}


def test_a_publisher_with_services_is_refused_and_nothing_changes(
    federation: SqlRegistry,
) -> None:
    before, generation = counts(federation), federation.generation()
    for apply in (False, True):
        with pytest.raises(PublisherInUse) as refused:
            federation.remove_publisher("uitgever-a", apply=apply)
        assert refused.value.services == ("toets",)
        assert "still has services toets" in str(refused.value)
        assert "publisher remove SERVICE --yes" in str(refused.value)
    with pytest.raises(UnknownPublisher, match="no publisher with id 'nope'"):
        federation.remove_publisher("nope", apply=True)
    assert counts(federation) == before and federation.generation() == generation
    assert federation.accounts.publisher("uitgever-a") is not None


def test_a_publisher_without_services_goes_with_its_accounts(federation: SqlRegistry) -> None:
    accounts = federation.accounts
    expires = datetime.now(UTC) + timedelta(days=1)
    accounts.add_invitation(
        "c" * 64, "ops@uitgever-a.nl", AdminRole.PUBLISHER, "uitgever-a", expires, 1
    )
    accounts.add_publisher(Publisher("uitgever-b", "Uitgever B"))
    accounts.add_admin("dev@uitgever-b.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-b")
    federation.remove_service("toets", apply=True)
    before, generation = counts(federation), federation.generation()
    plan = federation.remove_publisher("uitgever-a", apply=False)
    assert plan.entry == Publisher("uitgever-a", "Uitgever A") and not plan.applied
    assert (plan.admins, plan.invitations, plan.policies, plan.receipts) == (1, 1, (), 0)
    assert counts(federation) == before and federation.generation() == generation

    removal = federation.remove_publisher("uitgever-a", apply=True, removed_by="cli:ops")
    assert removal.applied and (removal.admins, removal.invitations) == (1, 1)
    assert gone(before, counts(federation)) == {
        "admins": 1,
        "invitations": 1,
        "publishers": 1,
        "removals": -1,  # the record of it, as for a school or a service (revision 0009)
    }
    with session_on(federation._engine) as session:
        row = session.scalars(select(RemovalRow).where(RemovalRow.kind == "publisher")).one()
        assert (row.entry_id, row.name, row.removed_by) == ("uitgever-a", "Uitgever A", "cli:ops")
    # Only services' records name receipts: an organisation's does not become a service name.
    assert "uitgever-a" not in federation.service_names()
    assert accounts.publisher("uitgever-a") is None
    assert [p.id for p in accounts.publishers()] == ["uitgever-b"]
    assert accounts.credentials("dev@uitgever-a.nl") is None
    assert accounts.credentials("dev@uitgever-b.nl") is not None
    assert len([a for a in accounts.admins() if a.role is AdminRole.SCHOOL]) == 3
    assert federation.generation() > generation
    # Its former service's receipts and history stay (kept by the service's removal).
    assert rows_naming(federation, ReceiptRow, "service_id", "toets") == 2
    with pytest.raises(UnknownPublisher):
        federation.add_service(replace(OIDC_SERVICE, id="toets2", entity_id="toets2"), None)


def test_revision_0008_keeps_administrators_and_history_and_lets_the_school_go(
    registry_url: str,
) -> None:
    """A registry at 0007 with a school, a service, a policy and two administrators: after the
    upgrade the school can be removed with its history kept, and the removed administrator's
    id (the highest) is not given out again, on SQLite either."""
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            command.upgrade(alembic_config(connection), "0007")
    finally:
        engine.dispose()
    # The school, the service and its policy in SQL of that revision: today's models have
    # columns of later revisions (0010: services.reconfirm_version, 0011: schools.town).
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            for statement in (
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                f"scopes, idp_metadata) VALUES ('{SAML_SCHOOL.id}', '{SAML_SCHOOL.name}', "
                f"'{SAML_SCHOOL.idp_entity_id}', 'name_id', false, '[]', '<idp/>')",
                "INSERT INTO services (id, name, entity_id, naming, protocol, sp_metadata) "
                "VALUES ('lesweb', 'Lesweb', 'https://lw.example', 'oid', 'saml', '<sp/>')",
                "INSERT INTO release_policies (school_id, service_id, attributes, version, "
                "changed_at, changed_by) VALUES ('00AA', 'lesweb', '[]', 1, "
                "'2026-01-01 00:00:00', 'test')",
                "INSERT INTO policy_changes (school_id, service_id, version, attributes, "
                "changed_at, changed_by) VALUES ('00AA', 'lesweb', 1, '[]', "
                "'2026-01-01 00:00:00', 'test')",
            ):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    # The two administrators as code at 0007 wrote them: a TOTP secret in clear (revision 0020
    # makes room for sealed ones; this version seals every one it writes).
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            for email, role, tenant in (
                ("op@broker.nl", "operator", None),
                ("ict@vb.nl", "school", "00AA"),
            ):
                connection.execute(
                    table_of(AdminRow)
                    .insert()
                    .values(
                        email=email,
                        password_hash="h",
                        totp_secret="S",
                        totp_last_step=-1,
                        role=role,
                        tenant_id=tenant,
                        created_at=datetime.now(UTC),
                    )
                )
    finally:
        engine.dispose()
    migrate(registry_url)
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        operator = registry.accounts.admin_with_email("op@broker.nl")
        school_admin = registry.accounts.admin_with_email("ict@vb.nl")
        assert operator is not None and school_admin is not None
        # Read as they are (COMPAT(clear-registry-secrets)) until `registry seal-secrets`.
        credentials = registry.accounts.credentials("ict@vb.nl")
        assert credentials is not None and credentials.totp_secret == "S"
    finally:
        registry.close()
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        assert registry.accounts.admin(operator.id) == operator
        registry.remove_school("00AA", apply=True)
        assert [c.version for c in registry.policy_history("00AA", "lesweb")] == [1]
        newcomer = registry.accounts.add_admin("new@broker.nl", "h", "S", AdminRole.OPERATOR, None)
        assert newcomer.id > school_admin.id
    finally:
        registry.close()


@pytest.mark.postgres
def test_a_policy_or_notice_change_racing_a_removal_finds_no_service(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: a school's policy or notice setting that comes while the service is being
    removed waits for the removal and then refuses as for an unknown service; it does not fail on
    the foreign key of a policy for a service just deleted (a 500 in the portal), nor leave a
    notice setting that would come back with the service registered again."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    stamp = Stamp("cli:test", datetime.now(UTC))
    book = registry.receipt_book(KEYS)
    third = replace(SAML_SERVICE, id="derde", entity_id="https://sp.derde.nl")
    try:
        registry.add_chain(Chain("uitgever-a", "Uitgever A"))
        registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
        registry.add_school(SAML_SCHOOL, "<idp/>")
        for service in (SAML_SERVICE, OIDC_SERVICE, third):
            registry.add_service(service, None if service.oidc else "<sp/>")
        registry.set_policy(SAML_SCHOOL.id, SAML_SERVICE.id, frozenset({"given_name"}), "test")
        book.set_notice_mode(SAML_SCHOOL.id, OIDC_SERVICE.id, "changes")
        races: list[tuple[str, Callable[[], object]]] = [
            (
                SAML_SERVICE.id,
                lambda: registry.set_policy(SAML_SCHOOL.id, SAML_SERVICE.id, frozenset(), "ict"),
            ),
            # a notice setting there was (it would be updated), and none yet (it would be added)
            (
                OIDC_SERVICE.id,
                lambda: book.set_notice_mode(SAML_SCHOOL.id, OIDC_SERVICE.id, "session"),
            ),
            (third.id, lambda: book.set_notice_mode(SAML_SCHOOL.id, third.id, "changes")),
        ]
        for service_id, change in races:
            outcome = _racing_the_removal(
                postgres_registry_url,
                lambda s: remove_service(s, service_id, stamp),
                change,
            )
            assert len(outcome) == 1 and isinstance(outcome[0], UnknownService), outcome
        for table in (ReleasePolicyRow, NoticePreferenceRow):
            assert rows_naming(registry, table, "school_id", SAML_SCHOOL.id) == 0
    finally:
        registry.close()


def _racing_the_removal(
    url: str, remove: Callable[[Session], object], change: Callable[[], object]
) -> list[BaseException | None]:
    """Run `change` in a thread while a removal (`remove`, done but not committed) is held open;
    the outcome of `change` once the removal committed."""
    return [held_open_while(url, remove, change)]


@pytest.mark.postgres
def test_portal_changes_racing_a_removal_refuse_as_for_an_unknown_entry(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: a publisher's declaration or client change, or a school administrator's move
    to another IdP, that comes while its service or school is being removed refuses as for an
    unknown one, as a policy change does: no StaleDataError or foreign key failure (a 500 in the
    portal), nothing half-written."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    stamp = Stamp("cli:test", datetime.now(UTC))
    try:
        registry.add_chain(Chain("uitgever-a", "Uitgever A"))
        registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
        registry.add_school(SAML_SCHOOL, "<idp/>")
        registry.add_service(SAML_SERVICE, "<sp/>")
        registry.add_service(OIDC_SERVICE, None)
        declared = (Declaration("email", "to send the results"),)
        outcome = _racing_the_removal(
            postgres_registry_url,
            lambda s: remove_service(s, SAML_SERVICE.id, stamp),
            lambda: registry.set_declarations(SAML_SERVICE.id, declared, "publisher"),
        )
        assert len(outcome) == 1 and isinstance(outcome[0], UnknownService), outcome
        assert rows_naming(registry, DeclarationRow, "service_id", SAML_SERVICE.id) == 0
        client = OIDC_SERVICE.oidc
        assert client is not None
        outcome = _racing_the_removal(
            postgres_registry_url,
            lambda s: remove_service(s, OIDC_SERVICE.id, stamp),
            lambda: registry.update_oidc_client(OIDC_SERVICE.id, client),
        )
        assert len(outcome) == 1 and isinstance(outcome[0], UnknownService), outcome
        moved = School(SAML_SCHOOL.id, SAML_SCHOOL.name, "https://idp.elders.nl/saml")
        outcome = _racing_the_removal(
            postgres_registry_url,
            lambda s: remove_school(s, SAML_SCHOOL.id, stamp),
            lambda: registry.update_school_idp(moved, "<idp/>"),
        )
        assert len(outcome) == 1 and isinstance(outcome[0], UnknownSchool), outcome
        assert rows_naming(registry, SchoolRow, "id", SAML_SCHOOL.id) == 0
    finally:
        registry.close()


@pytest.mark.postgres
def test_an_invitation_accepted_while_its_school_goes_is_unusable(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: a school administrator accepting their invitation while the school is being
    removed gets the clear "invitation unusable" answer once the removal committed (not a
    StaleDataError, a 500), and no account of a removed school is left behind."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    try:
        registry.add_school(SAML_SCHOOL, "<idp/>")
        expires = datetime.now(UTC) + timedelta(days=1)
        registry.accounts.add_invitation(
            "b" * 64, "nieuw@voorbeeld.nl", AdminRole.SCHOOL, SAML_SCHOOL.id, expires, 1
        )
        stamp = Stamp("cli:test", datetime.now(UTC))
        outcome = _racing_the_removal(
            postgres_registry_url,
            lambda s: remove_school(s, SAML_SCHOOL.id, stamp),
            lambda: registry.accounts.accept_invitation("b" * 64, "h", "S", 1),
        )
        assert len(outcome) == 1 and isinstance(outcome[0], InvitationUnusable), outcome
        assert rows_naming(registry, AdminRow, "tenant_id", SAML_SCHOOL.id) == 0
    finally:
        registry.close()


@pytest.mark.postgres
def test_a_service_or_account_added_while_its_publisher_goes_is_refused(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: a service registered for a publisher, or an administrator or invitation added
    for it, while the publisher is being removed waits for the removal and is then refused as for
    an unknown publisher: no service naming a publisher that is gone, no account outliving it."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    stamp = Stamp("cli:test", datetime.now(UTC))
    expires = datetime.now(UTC) + timedelta(days=1)
    accounts = registry.accounts
    late: list[Callable[[], object]] = [
        lambda: registry.add_service(OIDC_SERVICE, None),
        lambda: accounts.add_admin(
            "dev@uitgever-a.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-a"
        ),
        lambda: accounts.add_invitation(
            "d" * 64, "ops@uitgever-a.nl", AdminRole.PUBLISHER, "uitgever-a", expires, 1
        ),
    ]
    try:
        for change in late:
            accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
            outcome = _racing_the_removal(
                postgres_registry_url,
                lambda s: remove_publisher(s, "uitgever-a", stamp),
                change,
            )
            assert len(outcome) == 1 and isinstance(outcome[0], UnknownPublisher), outcome
        assert rows_naming(registry, ServiceRow, "publisher_id", "uitgever-a") == 0
        assert rows_naming(registry, AdminRow, "tenant_id", "uitgever-a") == 0
        assert rows_naming(registry, InvitationRow, "tenant_id", "uitgever-a") == 0
        assert rows_naming(registry, PublisherRow, "id", "uitgever-a") == 0
    finally:
        registry.close()
