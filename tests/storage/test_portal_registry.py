"""The portals' registry on SQLite and PostgreSQL: administrators, invitations, approval,
switched-off services, versioned declarations, and the upgrade of a database holding 0001 data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text

from broker.accounts import totp
from broker.accounts.tokens import new_token, token_hash
from broker.core.admins import AdminRole, Publisher
from broker.core.errors import BadRequest, UnknownSchool
from broker.core.model import Chain, Declaration, School, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine, writer
from broker.registry.errors import (
    InvitationOpen,
    InvitationUnusable,
    ServiceSwitchedOff,
    UnknownPublisher,
)
from broker.registry.migration import alembic_config, model_drift

SCHOOL = School("00AA", "Het Voorbeeld College", "https://idp.voorbeeld.nl/saml")
DECLARED = (
    Declaration("given_name", "to greet the student"),
    Declaration("groups", "to find the class", required=True),
)
NEW_SERVICE = Service(
    "lesweb",
    "Lesweb",
    "https://sp.lesweb.nl/saml",
    None,
    declarations=DECLARED,
    approved=False,
    publisher_id="uitgever-a",
)


@pytest.fixture
def portal(sql_registry: SqlRegistry) -> SqlRegistry:
    sql_registry.add_school(SCHOOL, "<idp/>")
    sql_registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    sql_registry.add_service(NEW_SERVICE, "<sp/>")
    return sql_registry


def test_unapproved_service_is_invisible_to_the_login_view_until_approved(
    portal: SqlRegistry,
) -> None:
    assert portal.service("lesweb") is None
    assert portal.service_by_entity_id(NEW_SERVICE.entity_id) is None
    assert "lesweb" not in {s.id for s in portal.services()}
    assert NEW_SERVICE.entity_id not in portal.service_metadata()
    assert portal.any_service("lesweb") == NEW_SERVICE
    before = portal.generation()
    portal.approve_service("lesweb")
    assert portal.generation() > before
    assert portal.service_by_entity_id(NEW_SERVICE.entity_id) is not None
    assert NEW_SERVICE.entity_id in portal.service_metadata()


def test_service_of_unknown_publisher_is_refused(sql_registry: SqlRegistry) -> None:
    with pytest.raises(UnknownPublisher):
        sql_registry.add_service(NEW_SERVICE, "<sp/>")
    assert sql_registry.any_service("lesweb") is None


def test_switched_off_service_refuses_logins_of_that_school(portal: SqlRegistry) -> None:
    portal.approve_service("lesweb")
    portal.set_policy("00AA", "lesweb", frozenset({"groups"}), "admin:1", active=False)
    with pytest.raises(ServiceSwitchedOff):
        portal.policy("00AA", "lesweb")
    portal.set_policy("00AA", "lesweb", frozenset({"groups"}), "admin:1")
    assert portal.policy("00AA", "lesweb").attributes == {"groups"}
    history = portal.policy_history("00AA", "lesweb")
    assert [(c.version, c.active) for c in history] == [(1, False), (2, True)]


def test_new_declarations_need_the_schools_confirmation(portal: SqlRegistry) -> None:
    portal.approve_service("lesweb")
    portal.set_policy("00AA", "lesweb", frozenset({"given_name", "groups"}), "admin:1")
    replaced = portal.set_declarations(
        "lesweb",
        (Declaration("groups", "to find the class", required=True), Declaration("email", "x")),
        "admin:2",
    )
    assert replaced.version == 2
    service = portal.service("lesweb")
    assert service is not None
    assert {d.attribute for d in service.declarations} == {"groups", "email"}
    # Until the school confirms: the pseudonym only, and the portal says why.
    assert portal.policy("00AA", "lesweb").attributes == frozenset()
    assert portal.choices_of_school("00AA")["lesweb"].needs_confirmation
    portal.set_policy("00AA", "lesweb", frozenset({"groups"}), "admin:1")
    assert portal.policy("00AA", "lesweb").attributes == {"groups"}
    assert not portal.choices_for_service("lesweb")[0].needs_confirmation
    assert [c.version for c in portal.declaration_history("lesweb")] == [1, 2]


def test_admin_accounts_and_single_use_codes(portal: SqlRegistry) -> None:
    accounts = portal.accounts
    admin = accounts.add_admin("ICT@Voorbeeld.nl ", "hash", "SECRET", AdminRole.SCHOOL, "00AA")
    found = accounts.credentials("ict@voorbeeld.nl")
    assert found is not None and found.admin == admin and admin.email == "ict@voorbeeld.nl"
    with pytest.raises(BadRequest) as duplicate:
        accounts.add_admin("ict@voorbeeld.nl", "h", "S", AdminRole.SCHOOL, "00AA")
    assert "voorbeeld" not in duplicate.value.detail  # details get logged
    with pytest.raises(UnknownSchool):
        accounts.add_admin("x@y.nl", "h", "S", AdminRole.SCHOOL, "99ZZ99")
    with pytest.raises(BadRequest):
        accounts.add_admin("op@y.nl", "h", "S", AdminRole.OPERATOR, "00AA")
    assert accounts.use_totp_step(admin.id, 100)
    assert not accounts.use_totp_step(admin.id, 100)
    assert not accounts.use_totp_step(admin.id, 99)


def test_invitation_is_single_use_and_expires(portal: SqlRegistry) -> None:
    accounts = portal.accounts
    token = new_token()
    accounts.add_invitation(
        token_hash(token),
        "dev@uitgever.nl",
        AdminRole.PUBLISHER,
        "uitgever-a",
        datetime.now(UTC) + timedelta(days=1),
        1,
    )
    assert accounts.invitation(token_hash(token)).tenant_id == "uitgever-a"
    secret = totp.new_secret()
    admin = accounts.accept_invitation(token_hash(token), "hash", secret, 5)
    assert admin.role is AdminRole.PUBLISHER
    found = accounts.credentials("dev@uitgever.nl")
    assert found is not None and found.totp_secret == secret
    with pytest.raises(InvitationUnusable):
        accounts.accept_invitation(token_hash(token), "hash", secret, 6)
    expired = new_token()
    accounts.add_invitation(
        token_hash(expired),
        "late@uitgever.nl",
        AdminRole.PUBLISHER,
        "uitgever-a",
        datetime.now(UTC) - timedelta(seconds=1),
        1,
    )
    with pytest.raises(InvitationUnusable):
        accounts.invitation(token_hash(expired))


def test_one_open_invitation_per_address_replaced_only_when_named(portal: SqlRegistry) -> None:
    """A second invitation for an address with one open is refused (a reload re-sends the
    form); one that names the open one replaces it, and its link stops working. Naming one no
    longer open (that answer reloaded) is refused too; an expired one is no obstacle."""
    accounts = portal.accounts
    soon = datetime.now(UTC) + timedelta(days=1)

    def invite(email: str, replaces: str = "", expires: datetime = soon) -> str:
        hashed = token_hash(new_token())
        accounts.add_invitation(
            hashed, email, AdminRole.PUBLISHER, "uitgever-a", expires, 1, replaces=replaces
        )
        return hashed

    first = invite("Dev@Uitgever.nl")
    with pytest.raises(InvitationOpen) as refused:
        invite(" dev@uitgever.nl")
    assert refused.value.invitation.token_hash == first
    assert "@" not in refused.value.detail
    second = invite("dev@uitgever.nl", replaces=first)
    with pytest.raises(InvitationUnusable):
        accounts.invitation(first)
    with pytest.raises(InvitationOpen):
        invite("dev@uitgever.nl", replaces=first)
    assert [i.token_hash for i in accounts.open_invitations()] == [second]
    invite("late@uitgever.nl", expires=datetime.now(UTC) - timedelta(seconds=1))
    invite("late@uitgever.nl")


def test_upgrade_of_a_database_with_0001_data_keeps_every_login_working(
    registry_url: str,
) -> None:
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        with writer(engine).begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO schools VALUES ('00AA', 'School', 'https://idp', 'name_id', "
                    ":f, '[]', '<idp/>')"
                ),
                {"f": False},
            )
            connection.execute(text("INSERT INTO chains VALUES ('keten', 'Keten')"))
            connection.execute(
                text(
                    "INSERT INTO services VALUES ('oud', 'Oud', 'https://sp.oud', 'keten', "
                    "'oid', 'saml', '<sp/>')"
                )
            )
            connection.execute(
                text("INSERT INTO declarations VALUES ('oud', 'groups', 0, 'klas', :f)"),
                {"f": False},
            )
            connection.execute(
                text(
                    "INSERT INTO release_policies VALUES ('00AA', 'oud', '[\"groups\"]', 1, "
                    ":at, 'cli:root')"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
    finally:
        engine.dispose()
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        service = registry.service_by_entity_id("https://sp.oud")
        assert service is not None and service.approved and service.declaration_version == 1
        assert registry.policy("00AA", "oud").attributes == {"groups"}
        registry.add_chain(Chain("nieuw", "Nieuw"))  # the schema takes writes after the upgrade
    finally:
        registry.close()
