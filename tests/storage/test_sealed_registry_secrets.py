"""Staff TOTP secrets and schools' OIDC client secrets sealed at rest (core/sealed_secrets.py,
revision 0020), on SQLite and PostgreSQL: what this version writes is sealed and bound to its
row; what older code wrote in clear is still read until `seal-secrets` seals it; a wrong key, a
changed value or one moved to another row opens nothing, says which row and changes nothing;
a rotated session secret loses nothing while its predecessor is configured."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute

from broker.accounts import totp
from broker.accounts.tokens import new_token, token_hash
from broker.core.admins import AdminRole
from broker.core.errors import BadRequest, ConfigurationError
from broker.core.model import OidcUpstream, School
from broker.core.sealed_secrets import (
    IN_CLEAR,
    PREFIX,
    SecretBinding,
    SecretInClear,
    SecretSeal,
    SecretUnreadable,
)
from broker.registry import SqlRegistry, migrate
from broker.registry.admin_tables import AdminRow, InvitationRow
from broker.registry.cached import CachedRegistryReader
from broker.registry.migration import migration_connection, model_drift
from broker.registry.secret_sealing import INVITATIONS, SCHOOLS, STAFF, SecretsUnreadable
from broker.registry.tables import SchoolOidcRow
from tests.storage.test_publisher_integrity import HEAD, _move, _revision
from tests.support.invitations import store_old_invitation
from tests.support.sealing import TEST_SEAL, TEST_SESSION_SECRET
from tests.support.tables import table_of

ISSUER = "https://sso.lyceum.example/realms/school"
CLIENT_SECRET = "qzx-client-secret-marker-1"
OTHER_CLIENT_SECRET = "qzx-client-secret-marker-2"
OIDC_SCHOOL = School(
    "12AB00", "OIDC-lyceum", ISSUER, "sub", oidc=OidcUpstream(ISSUER, "broker", CLIENT_SECRET)
)
OTHER_ISSUER = "https://sso.college.example/realms/school"
OTHER_SCHOOL = School(
    "34CD00",
    "OIDC-college",
    OTHER_ISSUER,
    "sub",
    oidc=OidcUpstream(OTHER_ISSUER, "broker", OTHER_CLIENT_SECRET),
)
OPERATOR, SCHOOL_ADMIN, INVITEE = "op@broker.example", "ict@lyceum.example", "new@lyceum.example"
NEW_SESSION_SECRET = b"the session secret after a rotation, 32+ characters"


def _stored(url: str) -> list[str]:
    """Every stored secret, as a database dump shows it."""
    with migration_connection(url) as connection:
        return [
            *connection.scalars(select(AdminRow.totp_secret)),
            *connection.scalars(select(InvitationRow.totp_secret)),
            *connection.scalars(select(SchoolOidcRow.client_secret)),
        ]


def _client_secret(registry: SqlRegistry, school_id: str = OIDC_SCHOOL.id) -> OidcUpstream:
    school = registry.school(school_id)
    assert school is not None and school.oidc is not None
    return school.oidc


class _Federation:
    """Two administrators and two OIDC schools, written by this version, and an open invitation
    an older version sent, with the seed it showed (COMPAT(invitation-stored-seed))."""

    def __init__(self, registry: SqlRegistry, registry_url: str) -> None:
        self.totp = {OPERATOR: totp.new_secret(), SCHOOL_ADMIN: totp.new_secret()}
        self.invitation_secret = totp.new_secret()
        self.token = new_token()
        registry.add_school(OIDC_SCHOOL, "")
        registry.add_school(OTHER_SCHOOL, "")
        accounts = registry.accounts
        accounts.add_admin(OPERATOR, "h", self.totp[OPERATOR], AdminRole.OPERATOR, None)
        accounts.add_admin(
            SCHOOL_ADMIN, "h", self.totp[SCHOOL_ADMIN], AdminRole.SCHOOL, OIDC_SCHOOL.id
        )
        store_old_invitation(
            registry_url,
            TEST_SEAL,
            token_hash(self.token),
            INVITEE,
            AdminRole.SCHOOL,
            OIDC_SCHOOL.id,
            self.invitation_secret,
        )

    @property
    def secrets(self) -> list[str]:
        return [*self.totp.values(), self.invitation_secret, CLIENT_SECRET, OTHER_CLIENT_SECRET]


@pytest.fixture
def federation(sql_registry: SqlRegistry, registry_url: str) -> _Federation:
    return _Federation(sql_registry, registry_url)


def test_what_this_version_writes_is_sealed_and_opens_again(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    stored = _stored(registry_url)
    assert len(stored) == 5 and all(value.startswith(PREFIX) for value in stored)
    dump = "\n".join(stored)
    assert not [secret for secret in federation.secrets if secret in dump]
    # Read back opened: sign-in, the invitation page, the login path's view.
    accounts = sql_registry.accounts
    for email, secret in federation.totp.items():
        found = accounts.credentials(email)
        assert found is not None and found.totp_secret == secret
    assert accounts.invitation(token_hash(federation.token)).totp_secret == (
        federation.invitation_secret
    )
    view = CachedRegistryReader(sql_registry)
    school = view.school(OIDC_SCHOOL.id)
    assert school is not None and school.oidc == OIDC_SCHOOL.oidc
    assert sql_registry.secrets_in_clear() == 0


def test_an_accepted_invitation_passes_its_secret_on_and_keeps_none(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    accounts = sql_registry.accounts
    accounts.accept_invitation(token_hash(federation.token), "h", federation.invitation_secret, 7)
    found = accounts.credentials(INVITEE)
    assert found is not None and found.totp_secret == federation.invitation_secret
    with migration_connection(registry_url) as connection:
        kept = connection.scalar(select(InvitationRow.totp_secret))
        sealed = connection.scalar(select(AdminRow.totp_secret).where(AdminRow.email == INVITEE))
    assert kept == ""
    assert sealed is not None and sealed.startswith(PREFIX)


def _as_older_code(url: str) -> dict[str, str]:
    """An administrator, an invitation and an OIDC school as code before 0020 wrote them."""
    secrets = {"admin": totp.new_secret(), "invitation": totp.new_secret()}
    now = datetime.now(UTC)
    with migration_connection(url) as connection:
        statements = (
            "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
            f"scopes, idp_metadata) VALUES ('{OIDC_SCHOOL.id}', 'OIDC-lyceum', '{ISSUER}', "
            "'sub', false, '[]', '')",
            "INSERT INTO school_oidc_providers (school_id, issuer, client_id, client_secret, "
            f"algorithms) VALUES ('{OIDC_SCHOOL.id}', '{ISSUER}', 'broker', '{CLIENT_SECRET}', "
            "'[\"RS256\"]')",
        )
        for statement in statements:
            connection.exec_driver_sql(statement)
        _older_accounts(connection, secrets, now)
    return secrets


def _older_accounts(connection: Connection, secrets: dict[str, str], now: datetime) -> None:
    connection.execute(
        insert(table_of(AdminRow)).values(
            email=SCHOOL_ADMIN, password_hash="h", totp_secret=secrets["admin"],
            totp_last_step=-1, role="school", tenant_id=OIDC_SCHOOL.id, created_at=now,
        )
    )  # fmt: skip
    for token, used in (("a" * 64, False), ("b" * 64, True)):
        connection.execute(
            insert(table_of(InvitationRow)).values(
                token_hash=token, email=INVITEE, role="school", tenant_id=OIDC_SCHOOL.id,
                totp_secret=secrets["invitation"], expires_at=now + timedelta(days=1),
                created_by=1, used=used,
            )
        )  # fmt: skip


def _upgraded_with_clear_values(url: str) -> dict[str, str]:
    """A registry upgraded to this version from 0020 with what older code left in clear:
    revision 0021 finds values in clear and leaves the registry unmarked."""
    _move(url, "0020", down=True)
    secrets = _as_older_code(url)
    migrate(url)
    return secrets


def test_clear_values_of_older_code_work_until_sealed_then_sealed_in_one_go(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    secrets = _upgraded_with_clear_values(registry_url)
    assert sql_registry.sealed_only_since() is None
    accounts = sql_registry.accounts
    # Read as they are (COMPAT(clear-registry-secrets)), without a key too.
    found = accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret == secrets["admin"]
    assert accounts.invitation("a" * 64).totp_secret == secrets["invitation"]
    assert _client_secret(sql_registry).client_secret == CLIENT_SECRET
    keyless = SqlRegistry(registry_url)
    try:
        assert _client_secret(keyless).client_secret == CLIENT_SECRET
    finally:
        keyless.close()
    # The used invitation's secret counts as nothing to seal: it is emptied.
    assert sql_registry.secrets_in_clear() == 3

    dry = sql_registry.seal_secrets(apply=False)
    assert not dry.applied and dry.clear_left == 3 and dry.forgotten == 1
    assert dry.marks and dry.sealed_only_since is None
    assert secrets["admin"] in _stored(registry_url)  # a dry run changes nothing
    assert sql_registry.sealed_only_since() is None

    report = sql_registry.seal_secrets()
    assert report.applied and report.forgotten == 1
    # Nothing left in clear: from now on the registry refuses values in clear.
    assert report.marks and report.sealed_only_since == sql_registry.sealed_only_since()
    assert report.sealed_only_since is not None
    assert report.sealed == {STAFF: 1, INVITATIONS: 1, SCHOOLS: 1}
    assert not report.resealed and not report.current
    stored = _stored(registry_url)
    assert not [secret for secret in (*secrets.values(), CLIENT_SECRET) if secret in stored]
    assert sorted(value[: len(PREFIX)] for value in stored if value) == [PREFIX] * 3
    assert "" in stored  # the used invitation's
    assert sql_registry.secrets_in_clear() == 0
    # Still the same secrets, opened.
    found = accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret == secrets["admin"]
    assert accounts.invitation("a" * 64).totp_secret == secrets["invitation"]
    assert _client_secret(sql_registry).client_secret == CLIENT_SECRET
    # Once more: nothing left to do, the mark kept as it was.
    again = sql_registry.seal_secrets()
    assert not again.sealed and again.current == {STAFF: 1, INVITATIONS: 1, SCHOOLS: 1}
    assert not again.marks and again.sealed_only_since == report.sealed_only_since
    # A value put back in clear afterwards (a row of the back-up from before) is refused.
    with migration_connection(registry_url) as connection:
        connection.execute(update(AdminRow).values(totp_secret=secrets["admin"]))
    found = accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret is None and found.totp_in_clear


CHOSEN_TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CHOSEN_CLIENT_SECRET = "qzx-client-secret-chosen"


def test_a_registry_holding_sealed_secrets_only_refuses_values_put_in_clear(
    sql_registry: SqlRegistry,
    registry_url: str,
    federation: _Federation,
    caught: pytest.LogCaptureFixture,
) -> None:
    """Someone with write access to the database (or a row restored from an old back-up) puts
    a TOTP secret and a client secret of their choosing in clear: none is used, none sealed."""
    # A new registry: revision 0021 found nothing in clear and marked it.
    assert sql_registry.sealed_only_since() is not None
    _put(registry_url, CHOSEN_TOTP, CHOSEN_CLIENT_SECRET, OIDC_SCHOOL.id)
    before = _stored(registry_url)
    accounts = sql_registry.accounts
    found = accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret is None and found.totp_in_clear
    by_id = accounts.credentials_by_id(found.admin.id)
    assert by_id is not None and by_id.totp_secret is None and by_id.totp_in_clear
    with pytest.raises(SecretInClear):
        accounts.invitation(token_hash(federation.token))
    with pytest.raises(SecretInClear):
        accounts.accept_invitation(token_hash(federation.token), "h", CHOSEN_TOTP, 7)
    # The login path's view: the school comes with the reason and no secret (its logins are
    # refused as for a secret that does not open, oidc/back.py).
    view = CachedRegistryReader(sql_registry)
    upstream = view.school(OIDC_SCHOOL.id).oidc  # type: ignore[union-attr]
    assert upstream is not None and upstream.client_secret == "" and upstream.secret_problem
    assert upstream.secret_problem == IN_CLEAR
    assert view.schools_by_idp(ISSUER)[0].oidc.secret_problem == IN_CLEAR  # type: ignore[union-attr]
    snapshot = {entry.school.id: entry.school for entry in sql_registry.snapshot().schools}
    assert snapshot[OIDC_SCHOOL.id].oidc.client_secret == ""  # type: ignore[union-attr]
    # What stayed sealed still opens.
    assert _client_secret(sql_registry, OTHER_SCHOOL.id).client_secret == OTHER_CLIENT_SECRET
    operator = accounts.credentials(OPERATOR)
    assert operator is not None and operator.totp_secret == federation.totp[OPERATOR]
    # Sealing them would make the chosen values the secrets for good: refused, nothing changed.
    with pytest.raises(SecretsUnreadable) as refused:
        sql_registry.seal_secrets()
    assert "3 secret(s) cannot be opened" in refused.value.detail
    assert refused.value.detail.count("in clear, and the registry holds sealed secrets only") == 3
    assert _stored(registry_url) == before
    logged = _logged(caught)
    assert f"school client secret unreadable school={OIDC_SCHOOL.id}" in logged
    for hidden in (SCHOOL_ADMIN, CHOSEN_TOTP, CHOSEN_CLIENT_SECRET):
        assert hidden not in logged + refused.value.detail
    # Given again, the school's secret is sealed and opens.
    sql_registry.update_school_idp(OIDC_SCHOOL, "")
    assert _client_secret(sql_registry).client_secret == CLIENT_SECRET


def test_revision_0021_marks_a_registry_with_nothing_in_clear_and_goes_down_cleanly(
    registry_url: str,
) -> None:
    def marked() -> bool:
        registry = SqlRegistry(registry_url)
        try:
            return registry.sealed_only_since() is not None
        finally:
            registry.close()

    migrate(registry_url)
    assert marked()  # a new registry: no secret yet
    # Down: the table goes, and code at 0020 reads values in clear again.
    _move(registry_url, "0020", down=True)
    with migration_connection(registry_url) as connection:
        assert "sealed_only" not in inspect(connection).get_table_names()
    secrets = _as_older_code(registry_url)
    # Up with values in clear: left unmarked, they are read until `seal-secrets`.
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == [] and not marked()
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        found = registry.accounts.credentials(SCHOOL_ADMIN)
        assert found is not None and found.totp_secret == secrets["admin"]
        assert registry.seal_secrets().marks
    finally:
        registry.close()
    assert marked()
    # Down and up again with everything sealed: marked again by the revision.
    _move(registry_url, "0020", down=True)
    migrate(registry_url)
    assert marked()


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR):
        yield caplog


def _logged(caught: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caught.records)


def _tamper(url: str, column: InstrumentedAttribute[str], where: ColumnElement[bool]) -> None:
    """Change one character of a sealed value's ciphertext."""
    with migration_connection(url) as connection:
        value = connection.scalar(select(column).where(where))
        assert value is not None and value.startswith(PREFIX)
        changed = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
        connection.execute(update(column.class_).where(where).values({column: changed}))


def _put(url: str, totp_secret: str, client_secret: str, school_id: str) -> None:
    """As someone with write access to the database would: `totp_secret` into the school
    administrator's row and the invitation, `client_secret` into `school_id`'s."""
    with migration_connection(url) as connection:
        connection.execute(
            update(AdminRow).where(AdminRow.email == SCHOOL_ADMIN).values(totp_secret=totp_secret)
        )
        connection.execute(update(InvitationRow).values(totp_secret=totp_secret))
        connection.execute(
            update(SchoolOidcRow)
            .where(SchoolOidcRow.school_id == school_id)
            .values(client_secret=client_secret)
        )


def test_a_changed_value_opens_nothing_and_names_its_row_only(
    sql_registry: SqlRegistry,
    registry_url: str,
    federation: _Federation,
    caught: pytest.LogCaptureFixture,
) -> None:
    _tamper(registry_url, AdminRow.totp_secret, AdminRow.email == SCHOOL_ADMIN)
    _tamper(registry_url, SchoolOidcRow.client_secret, SchoolOidcRow.school_id == OIDC_SCHOOL.id)
    before = _stored(registry_url)
    found = sql_registry.accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret is None
    # The school comes with the reason, no secret; the view loads, and logs it once.
    view = CachedRegistryReader(sql_registry)
    upstream = view.school(OIDC_SCHOOL.id).oidc  # type: ignore[union-attr]
    assert upstream is not None and upstream.client_secret == ""
    assert "does not open" in upstream.secret_problem
    assert _client_secret(sql_registry, OTHER_SCHOOL.id).client_secret == OTHER_CLIENT_SECRET
    # Sealing refuses as a whole, naming the rows by id, and changes nothing.
    with pytest.raises(SecretsUnreadable) as refused:
        sql_registry.seal_secrets()
    assert "2 secret(s) cannot be opened" in refused.value.detail
    assert f"school {OIDC_SCHOOL.id}" in refused.value.detail
    assert "administrator " in refused.value.detail
    assert _stored(registry_url) == before
    logged = _logged(caught)
    assert "admin totp secret unreadable admin=" in logged
    assert f"school client secret unreadable school={OIDC_SCHOOL.id}" in logged
    # No address, no secret, no stored value in any line.
    everything = logged + refused.value.detail
    for hidden in (SCHOOL_ADMIN, *federation.secrets, *(v.rsplit("$", 1)[1] for v in before)):
        assert hidden not in everything


def test_a_value_moved_to_another_row_does_not_open(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    with migration_connection(registry_url) as connection:
        operator = connection.scalar(select(AdminRow.totp_secret).where(AdminRow.email == OPERATOR))
        school = connection.scalar(
            select(SchoolOidcRow.client_secret).where(SchoolOidcRow.school_id == OIDC_SCHOOL.id)
        )
    assert operator is not None and school is not None
    # The operator's TOTP secret into the school administrator's row and into the invitation;
    # one school's client secret into the other's.
    _put(registry_url, operator, school, OTHER_SCHOOL.id)
    accounts = sql_registry.accounts
    found = accounts.credentials(SCHOOL_ADMIN)
    assert found is not None and found.totp_secret is None
    with pytest.raises(SecretUnreadable, match="invitation-totp secret of invitation"):
        accounts.invitation(token_hash(federation.token))
    assert _client_secret(sql_registry, OTHER_SCHOOL.id).secret_problem
    # Where they belong they still open.
    found = accounts.credentials(OPERATOR)
    assert found is not None and found.totp_secret == federation.totp[OPERATOR]
    assert _client_secret(sql_registry).client_secret == CLIENT_SECRET


def test_another_key_opens_nothing_and_no_key_writes_nothing(
    registry_url: str, sql_registry: SqlRegistry, federation: _Federation
) -> None:
    other = SqlRegistry(registry_url, seal=SecretSeal.from_secrets(NEW_SESSION_SECRET))
    keyless = SqlRegistry(registry_url)
    try:
        for registry in (other, keyless):
            found = registry.accounts.credentials(OPERATOR)
            assert found is not None and found.totp_secret is None
            with pytest.raises(SecretUnreadable):
                registry.accounts.invitation(token_hash(federation.token))
        assert "neither keys.session_secret" in _client_secret(other).secret_problem
        assert "without the broker's configuration" in _client_secret(keyless).secret_problem
        # A registry without the configuration's key writes no secret at all, in clear least.
        before = _stored(registry_url)
        with pytest.raises(ConfigurationError, match="without the broker's configuration"):
            keyless.accounts.add_admin("x@broker.example", "h", "S", AdminRole.OPERATOR, None)
        with pytest.raises(ConfigurationError, match="without the broker's configuration"):
            keyless.seal_secrets()
        assert _stored(registry_url) == before
    finally:
        other.close()
        keyless.close()


def test_a_rotated_session_secret_loses_nothing_while_the_previous_one_is_configured(
    registry_url: str, sql_registry: SqlRegistry, federation: _Federation
) -> None:
    rotated = SecretSeal.from_secrets(NEW_SESSION_SECRET, previous=TEST_SESSION_SECRET)
    registry = SqlRegistry(registry_url, seal=rotated)
    try:
        # Opened with the previous key meanwhile; new writes under the new one.
        found = registry.accounts.credentials(OPERATOR)
        assert found is not None and found.totp_secret == federation.totp[OPERATOR]
        assert _client_secret(registry).client_secret == CLIENT_SECRET
        report = registry.seal_secrets()
        assert report.resealed == {STAFF: 2, INVITATIONS: 1, SCHOOLS: 2}
        assert not report.sealed
    finally:
        registry.close()
    # Then the new secret alone opens everything, and the old one nothing.
    alone = SqlRegistry(registry_url, seal=SecretSeal.from_secrets(NEW_SESSION_SECRET))
    try:
        found = alone.accounts.credentials(SCHOOL_ADMIN)
        assert found is not None and found.totp_secret == federation.totp[SCHOOL_ADMIN]
        assert alone.accounts.invitation(token_hash(federation.token)).totp_secret == (
            federation.invitation_secret
        )
        assert _client_secret(alone, OTHER_SCHOOL.id).client_secret == OTHER_CLIENT_SECRET
    finally:
        alone.close()
    found = sql_registry.accounts.credentials(OPERATOR)
    assert found is not None and found.totp_secret is None


def test_a_school_secret_that_does_not_open_is_never_written_back(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    _tamper(registry_url, SchoolOidcRow.client_secret, SchoolOidcRow.school_id == OIDC_SCHOOL.id)
    read = sql_registry.school(OIDC_SCHOOL.id)
    assert read is not None
    with pytest.raises(BadRequest, match="give the secret again"):
        sql_registry.update_school_idp(read, "")
    # Given again, it is sealed anew and opens.
    sql_registry.update_school_idp(OIDC_SCHOOL, "")
    assert _client_secret(sql_registry).client_secret == CLIENT_SECRET


def test_revision_0020_goes_down_only_while_nothing_is_sealed(registry_url: str) -> None:
    _move(registry_url, "0019")
    secrets = _as_older_code(registry_url)
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    # Clear values only: down and up again, nothing lost.
    _move(registry_url, "0019", down=True)
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        found = registry.accounts.credentials(SCHOOL_ADMIN)
        assert found is not None and found.totp_secret == secrets["admin"]
        registry.seal_secrets()
    finally:
        registry.close()
    # Sealed: code at 0019 could read none of it, so the downgrade refuses, changing nothing.
    before = _stored(registry_url)
    with pytest.raises(ConfigurationError, match="downgrade below revision 0020 refused: 3 "):
        _move(registry_url, "0019", down=True)
    assert _revision(registry_url) == HEAD and _stored(registry_url) == before


def test_a_sealed_totp_secret_fits_where_a_clear_one_did(registry_url: str) -> None:
    """PostgreSQL kept 64 characters before revision 0020; a sealed secret is longer."""
    migrate(registry_url)
    with migration_connection(registry_url) as connection:
        long_value = TEST_SEAL.seal("A" * 64, SecretBinding.admin_totp("x@y.nl"))
        connection.execute(
            insert(table_of(AdminRow)).values(
                email="x@y.nl", password_hash="h", totp_secret=long_value, totp_last_step=-1,
                role="operator", tenant_id=None, created_at=datetime.now(UTC),
            )
        )  # fmt: skip
        assert connection.scalar(text("SELECT length(totp_secret) FROM admins")) > 64


def _invitation(connection: Connection, token: str, secret: str, expires_at: datetime) -> None:
    connection.execute(
        insert(table_of(InvitationRow)).values(
            token_hash=token, email=INVITEE, role="school", tenant_id=OIDC_SCHOOL.id,
            totp_secret=secret, expires_at=expires_at, created_by=1, used=False,
        )
    )  # fmt: skip


def _invitation_secrets(url: str) -> dict[str, str]:
    with migration_connection(url) as connection:
        rows = connection.execute(select(InvitationRow.token_hash, InvitationRow.totp_secret))
        return {token: secret for token, secret in rows}


def test_an_expired_invitation_keeps_no_secret_and_never_stops_the_seal_run(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    # Expired, unused: one sealed under a session secret since replaced without
    # keys.previous_session_secret (it opens under no key configured), one in clear.
    past = datetime.now(UTC) - timedelta(hours=1)
    lost = SecretSeal.from_secrets(NEW_SESSION_SECRET)
    with migration_connection(registry_url) as connection:
        binding = SecretBinding.invitation_totp("c" * 64)
        _invitation(connection, "c" * 64, lost.seal(totp.new_secret(), binding), past)
        _invitation(connection, "d" * 64, totp.new_secret(), past)
    # Neither is a secret still to seal, nor one that stops the run: both are emptied.
    assert sql_registry.secrets_in_clear() == 0
    report = sql_registry.seal_secrets()
    assert report.applied and report.forgotten == 2
    assert report.current == {STAFF: 2, INVITATIONS: 1, SCHOOLS: 2}
    kept = _invitation_secrets(registry_url)
    assert kept["c" * 64] == kept["d" * 64] == ""
    assert kept[token_hash(federation.token)].startswith(PREFIX)  # the open one is untouched

    # Sending an invitation empties the secrets of those that expired meanwhile.
    with migration_connection(registry_url) as connection:
        _invitation(connection, "e" * 64, lost.seal("S", SecretBinding.invitation_totp("e" * 64)), past)  # fmt: skip
    sql_registry.accounts.add_invitation(
        "f" * 64, "other@lyceum.example", AdminRole.SCHOOL, OIDC_SCHOOL.id,
        datetime.now(UTC) + timedelta(days=1), 1,
    )  # fmt: skip
    kept = _invitation_secrets(registry_url)
    assert kept["e" * 64] == ""
    # A new invitation stores no seed (web/portal/invitation_seed.py); the older open one's stays.
    assert kept["f" * 64] == "" and kept[token_hash(federation.token)].startswith(PREFIX)


def test_a_school_without_a_client_secret_is_neither_counted_nor_sealed(
    sql_registry: SqlRegistry, registry_url: str, federation: _Federation
) -> None:
    with migration_connection(registry_url) as connection:
        connection.execute(
            update(SchoolOidcRow)
            .where(SchoolOidcRow.school_id == OTHER_SCHOOL.id)
            .values(client_secret="")
        )
    assert sql_registry.secrets_in_clear() == 0
    report = sql_registry.seal_secrets()
    assert not report.sealed and report.current == {STAFF: 2, INVITATIONS: 1, SCHOOLS: 1}
    assert _client_secret(sql_registry, OTHER_SCHOOL.id).client_secret == ""
    assert "" in _stored(registry_url)


def test_a_value_of_a_later_sealed_format_also_refuses_the_downgrade(registry_url: str) -> None:
    migrate(registry_url)
    with migration_connection(registry_url) as connection:
        _older_accounts(connection, {"admin": "$kbs2$0a1b2c3d$AAAA", "invitation": ""}, datetime.now(UTC))  # fmt: skip
    before = _stored(registry_url)
    with pytest.raises(ConfigurationError, match="downgrade below revision 0020 refused: 1 "):
        _move(registry_url, "0019", down=True)
    assert _revision(registry_url) == HEAD and _stored(registry_url) == before


_LOCKING = re.compile(
    r"^(?:SELECT .*\bFROM (\w+).*FOR UPDATE|UPDATE (\w+)|DELETE FROM (\w+))", re.S
)


@pytest.fixture
def locking(registry_url: str) -> Iterator[list[str]]:
    """The tables whose rows a transaction locks (`SELECT … FOR UPDATE`, `UPDATE`, `DELETE`),
    each named once, in the order it first locks them (PostgreSQL: SQLite's writers are serial,
    and it renders no FOR UPDATE)."""
    if not registry_url.startswith("postgresql"):
        pytest.skip("row locks: PostgreSQL only")
    locked: list[str] = []

    def seen(*args: object) -> None:
        found = _LOCKING.match(str(args[2]))
        table = found and next(name for name in found.groups() if name)
        if table and table not in locked:
            locked.append(table)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield locked
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def test_the_seal_run_and_removals_lock_invitations_before_administrators(
    sql_registry: SqlRegistry, federation: _Federation, locking: list[str]
) -> None:
    """One order for every transaction that locks both: else the seal run and a removal, each
    holding one table's rows, could wait for each other (a deadlock)."""
    sql_registry.seal_secrets()
    assert locking == ["invitations", "admins", "school_oidc_providers"]
    school_admin = sql_registry.accounts.credentials(SCHOOL_ADMIN)
    assert school_admin is not None
    for remove in (
        lambda: sql_registry.accounts.remove_admin(school_admin.admin.id),
        lambda: sql_registry.remove_school(OIDC_SCHOOL.id, apply=True),
    ):
        locking.clear()
        remove()
        both = [table for table in locking if table in ("invitations", "admins")]
        assert both == ["invitations", "admins"]


def test_two_runs_marking_at_once_both_end_on_the_one_mark(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two `seal-secrets` runs on a registry with no secret row lock nothing: both can find no
    # mark, and the second one's insert meets the first one's row. It reads that one instead of
    # failing with a duplicate key.
    from sqlalchemy import create_engine, delete
    from sqlalchemy.orm import Session

    from broker.registry import sealed_only

    migrate(registry_url)
    engine = create_engine(registry_url)
    first = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    try:
        with Session(engine) as session, session.begin():
            session.execute(delete(sealed_only.SealedOnlyRow))
            sealed_only.mark_sealed_only(session, first)  # the other run, committed
        original = sealed_only.sealed_only_since
        calls: list[None] = []

        def first_finds_none(session: Session) -> datetime | None:
            calls.append(None)
            return None if len(calls) == 1 else original(session)

        monkeypatch.setattr(sealed_only, "sealed_only_since", first_finds_none)
        with Session(engine) as session, session.begin():
            assert sealed_only.mark_sealed_only(session, first + timedelta(hours=1)) == first
    finally:
        engine.dispose()
