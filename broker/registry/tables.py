"""The registry's tables as typed SQLAlchemy models, and their mapping to the core model.

Rows never leave `broker/registry`: readers turn them into the core's frozen dataclasses with the
`to_*` methods while the session is open. Enumerations are stored as short strings with CHECK
constraints rather than native enum types, so adding a value later is a one-line migration on
every database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    column,
    false,
    table,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from broker.core.errors import BadRequest
from broker.core.model import (
    AssertionEncryption,
    Chain,
    ClientAuthMethod,
    Declaration,
    NamingProfile,
    OidcClient,
    OidcUpstream,
    Protocol,
    ReleasePolicy,
    School,
    Service,
)
from broker.core.sealed_secrets import SecretBinding, SecretSeal, SecretUnreadable
from broker.core.towns import MAX_TOWN
from broker.registry.policy_change import PolicyChange

ID = String(64)
NAME = String(200)
ENTITY_ID = String(1024)
ATTRIBUTE = String(64)
TOWN = String(MAX_TOWN)
# A reason code (snake_case, ours): never a message, which may carry what a server sent.
REASON_CODE = String(64)


class Base(DeclarativeBase):
    # Named constraints make later migrations (especially SQLite batch moves) deterministic.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp the registry writes is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Alembic's own table, not a model (Alembic makes and keeps it, and `model_drift` leaves it out):
# the revisions the schema is at, read beside the generation by /readyz (schema_in_use.py).
ALEMBIC_VERSION = table("alembic_version", column("version_num", String(32)))


class SchemaReadersRow(Base):
    """The oldest code revision that can still run on this schema (revision 0016): one row,
    written by the migrations only (migration.py), read before a version serves on a registry
    a newer version migrated. The value is the key: a table with a primary key can be
    replicated."""

    __tablename__ = "schema_readers"

    oldest_reader: Mapped[str] = mapped_column(String(32), primary_key=True)


class SchoolNamingIdpRow(Base):
    """An IdP whose logins must name their school (core/shared_idp.py, revision 0015): one row
    per entity id, the one place this is kept. No foreign key: it outlives the IdP's schools."""

    __tablename__ = "idps_naming_school"

    entity_id: Mapped[str] = mapped_column(ENTITY_ID, primary_key=True)


class SchoolRow(Base):
    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    # Not unique: a school board's IdP may serve several schools (revision 0014).
    idp_entity_id: Mapped[str] = mapped_column(ENTITY_ID, index=True)
    subject_attribute: Mapped[str] = mapped_column(ATTRIBUTE)
    use_eck_id: Mapped[bool] = mapped_column(Boolean)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # Where students and parents ask the school about their data (an https or mailto: URL).
    privacy_contact: Mapped[str] = mapped_column(ENTITY_ID, server_default="")
    # Its town (core/towns.py), shown and searched on the discovery page; empty: not given.
    town: Mapped[str] = mapped_column(TOWN, server_default=text("''"))
    # Its other names (core/school_aliases.py: at most a handful), searched on the discovery
    # page: a list in the row, as `scopes`, read with the school and written with it.
    aliases: Mapped[list[str]] = mapped_column(JSON, server_default=text("'[]'"))
    # Deferred: the login path reads schools on every login and never needs the XML.
    # Empty for a school whose provider speaks OpenID Connect (see `oidc`).
    idp_metadata: Mapped[str] = mapped_column(Text, deferred=True)
    # The https URL that metadata was given by (revision 0027), fetched again by `metadata
    # refresh` (cli/url_refresh.py); NULL: given as a file, which nothing fetches again.
    idp_metadata_url: Mapped[str | None] = mapped_column(Text, deferred=True)
    # What `metadata refresh` last made of that URL (revision 0028, cli/url_refresh.py): the
    # last copy fetched and accepted (or given by URL), the last refused and its reason code.
    # Written without a generation bump (logins never read them); NULL: not yet.
    idp_refreshed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), deferred=True
    )
    idp_refresh_failed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), deferred=True
    )
    idp_refresh_failure: Mapped[str | None] = mapped_column(REASON_CODE, deferred=True)
    oidc: Mapped[SchoolOidcRow | None] = relationship(lazy="joined", cascade="all, delete-orphan")

    @classmethod
    def from_school(
        cls, school: School, idp_metadata: str, seal: SecretSeal, url: str | None = None
    ) -> SchoolRow:
        return cls(
            id=school.id,
            name=school.name,
            idp_entity_id=school.idp_entity_id,
            subject_attribute=school.subject_attribute,
            use_eck_id=school.use_eck_id,
            scopes=list(school.scopes),
            privacy_contact=school.privacy_contact,
            town=school.town,
            aliases=list(school.aliases),
            idp_metadata=idp_metadata,
            idp_metadata_url=url,
            oidc=SchoolOidcRow.from_upstream(school.oidc, school.id, seal) if school.oidc else None,
        )

    def to_school(self, seal: SecretSeal) -> School:
        """`seal` opens the client secret of a school on OpenID Connect (`NO_KEYS` where the
        caller needs none: the school comes back with `secret_problem` set if it was sealed)."""
        return School(
            id=self.id,
            name=self.name,
            idp_entity_id=self.idp_entity_id,
            subject_attribute=self.subject_attribute,
            use_eck_id=self.use_eck_id,
            scopes=tuple(self.scopes),
            oidc=self.oidc.to_upstream(seal) if self.oidc is not None else None,
            privacy_contact=self.privacy_contact,
            town=self.town,
            aliases=tuple(self.aliases or ()),
        )


class SchoolOidcRow(Base):
    """The broker's client registration at a school's OpenID provider."""

    __tablename__ = "school_oidc_providers"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    issuer: Mapped[str] = mapped_column(ENTITY_ID)
    client_id: Mapped[str] = mapped_column(ENTITY_ID)
    # The school's secret for the broker's client, needed in clear to call its token endpoint:
    # sealed under a key from the configuration (core/sealed_secrets.py, since revision 0020;
    # clear before `registry seal-secrets`, COMPAT(clear-registry-secrets)).
    client_secret: Mapped[str] = mapped_column(Text)
    algorithms: Mapped[list[str]] = mapped_column(JSON)
    # Google Workspace's `hd` (core/hosted_domain.py, revision 0013); NULL: none.
    hosted_domain: Mapped[str | None] = mapped_column(String(253))

    @classmethod
    def from_upstream(
        cls, upstream: OidcUpstream, school_id: str, seal: SecretSeal
    ) -> SchoolOidcRow:
        return cls(
            issuer=upstream.issuer,
            client_id=upstream.client_id,
            client_secret=sealed_client_secret(upstream, school_id, seal),
            algorithms=list(upstream.algorithms),
            hosted_domain=upstream.hosted_domain or None,
        )

    def to_upstream(self, seal: SecretSeal) -> OidcUpstream:
        # Opened here, once per read of the school: the login path reads schools from the
        # worker's view (cached.py), so once per registry generation, never per login.
        try:
            binding = SecretBinding.school_client_secret(self.school_id)
            secret, problem = seal.open(self.client_secret, binding), ""
        except SecretUnreadable as unreadable:
            secret, problem = "", unreadable.reason
        return OidcUpstream(
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=secret,
            algorithms=tuple(self.algorithms),
            hosted_domain=self.hosted_domain or "",
            secret_problem=problem,
        )


def sealed_client_secret(upstream: OidcUpstream, school_id: str, seal: SecretSeal) -> str:
    """A school's client secret as stored: sealed, bound to the school. One read that could not
    be opened is never written back (it holds no secret): the secret must be given again."""
    if upstream.secret_problem:
        raise BadRequest(
            f"school {school_id}: its client secret cannot be opened "
            f"({upstream.secret_problem}); give the secret again",
            code="client_secret_unreadable",
        )
    return seal.seal(upstream.client_secret, SecretBinding.school_client_secret(school_id))


class ChainRow(Base):
    __tablename__ = "chains"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)

    def to_chain(self) -> Chain:
        return Chain(id=self.id, name=self.name)


class ServiceRow(Base):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("naming IN ('oid', 'plain')", name="naming"),
        CheckConstraint("protocol IN ('saml', 'oidc')", name="protocol"),
        CheckConstraint("assertion_encryption IN ('auto', 'off')", name="assertion_encryption"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    entity_id: Mapped[str] = mapped_column(ENTITY_ID, unique=True)
    chain_id: Mapped[str | None] = mapped_column(ForeignKey("chains.id"), index=True)
    naming: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str] = mapped_column(String(8))
    sp_metadata: Mapped[str | None] = mapped_column(Text, deferred=True)
    # Revision 0003: rows that existed before it are approved, so nothing running breaks.
    approved: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # A foreign key since revision 0009: a service never names an organisation that is gone.
    publisher_id: Mapped[str | None] = mapped_column(ForeignKey("publishers.id"), index=True)
    declaration_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # Revision 0010: the latest declaration version that needs schools to confirm again
    # (core/declarations.py); rows from before it get their declaration version, as then every
    # change did.
    reconfirm_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # Revision 0019: the operator's switch (core/model.py AssertionEncryption); rows from
    # before it, and rows older code writes, are `auto`.
    assertion_encryption: Mapped[str] = mapped_column(String(8), server_default=text("'auto'"))
    # Revision 0029, as the schools' 0027 and 0028: the https URL the SP metadata was given by,
    # fetched again by `metadata refresh` (cli/url_refresh.py; NULL: a file or pasted text,
    # which nothing fetches again), and what the refresh last made of it. Written without a
    # generation bump (logins never read them); NULL: not yet.
    sp_metadata_url: Mapped[str | None] = mapped_column(Text, deferred=True)
    sp_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), deferred=True)
    sp_refresh_failed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), deferred=True
    )
    sp_refresh_failure: Mapped[str | None] = mapped_column(REASON_CODE, deferred=True)
    declarations: Mapped[list[DeclarationRow]] = relationship(
        order_by="DeclarationRow.position", cascade="all, delete-orphan"
    )
    oidc: Mapped[OidcClientRow | None] = relationship(lazy="joined", cascade="all, delete-orphan")

    def to_service(self) -> Service:
        return Service(
            id=self.id,
            name=self.name,
            entity_id=self.entity_id,
            chain_id=self.chain_id,
            naming=NamingProfile(self.naming),
            declarations=tuple(row.to_declaration() for row in self.declarations),
            protocol=Protocol(self.protocol),
            oidc=self.oidc.to_client() if self.oidc is not None else None,
            approved=self.approved,
            publisher_id=self.publisher_id,
            declaration_version=self.declaration_version,
            reconfirm_version=self.reconfirm_version,
            assertion_encryption=AssertionEncryption(self.assertion_encryption),
        )


class OidcClientRow(Base):
    """An OIDC service's client registration; the client id is the service's entity id."""

    __tablename__ = "oidc_clients"
    __table_args__ = (
        CheckConstraint(
            "auth_method IN ('client_secret_basic', 'client_secret_post', "
            "'private_key_jwt', 'none')",
            name="auth_method",
        ),
    )

    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), primary_key=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    auth_method: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the generated secret: the secret itself is shown once and never stored.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    jwks_uri: Mapped[str | None] = mapped_column(ENTITY_ID)
    id_token_alg: Mapped[str] = mapped_column(String(16))
    refresh_tokens: Mapped[bool] = mapped_column(Boolean)
    # Revision 0007 (logout): empty and off for clients registered before it.
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, server_default=text("'[]'"))
    backchannel_logout_uri: Mapped[str | None] = mapped_column(ENTITY_ID)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, server_default=false()
    )

    @classmethod
    def from_client(cls, client: OidcClient) -> OidcClientRow:
        return cls(
            redirect_uris=list(client.redirect_uris),
            auth_method=client.auth_method.value,
            secret_hash=client.secret_hash,
            jwks_uri=client.jwks_uri,
            id_token_alg=client.id_token_alg,
            refresh_tokens=client.refresh_tokens,
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
            backchannel_logout_uri=client.backchannel_logout_uri,
            backchannel_logout_session_required=client.backchannel_logout_session_required,
        )

    def to_client(self) -> OidcClient:
        return OidcClient(
            redirect_uris=tuple(self.redirect_uris),
            auth_method=ClientAuthMethod(self.auth_method),
            secret_hash=self.secret_hash,
            jwks_uri=self.jwks_uri,
            id_token_alg=self.id_token_alg,
            refresh_tokens=self.refresh_tokens,
            post_logout_redirect_uris=tuple(self.post_logout_redirect_uris or ()),
            backchannel_logout_uri=self.backchannel_logout_uri,
            backchannel_logout_session_required=self.backchannel_logout_session_required,
        )


class DeclarationRow(Base):
    __tablename__ = "declarations"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), primary_key=True)
    attribute: Mapped[str] = mapped_column(ATTRIBUTE, primary_key=True)
    # Kept so a service's declarations read back in the order it registered them.
    position: Mapped[int] = mapped_column(Integer)
    # The Dutch purpose (or, before revision 0010, the only one); `purpose_en` may be empty.
    purpose: Mapped[str] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(Boolean)
    purpose_en: Mapped[str] = mapped_column(Text, server_default=text("''"))

    @classmethod
    def rows_of(cls, declarations: tuple[Declaration, ...]) -> list[DeclarationRow]:
        """The rows of a service's declarations, positions in the order given."""
        return [
            cls(
                attribute=d.attribute,
                position=i,
                purpose=d.purpose,
                required=d.required,
                purpose_en=d.purpose_en,
            )
            for i, d in enumerate(declarations)
        ]

    def to_declaration(self) -> Declaration:
        return Declaration(
            attribute=self.attribute,
            purpose=self.purpose,
            required=self.required,
            purpose_en=self.purpose_en,
        )


class ReleasePolicyRow(Base):
    """The current policy of one school for one service; absent means the default."""

    __tablename__ = "release_policies"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), primary_key=True)
    # A sorted JSON list: the same set always serialises the same way.
    attributes: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(NAME)
    # False: the school switched the service off; its students' logins there are refused.
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # The service's declaration version the school saw when it chose; older means "confirm again".
    declaration_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    def to_policy(self) -> ReleasePolicy:
        return ReleasePolicy(
            school_id=self.school_id,
            service_id=self.service_id,
            attributes=frozenset(self.attributes),
            version=self.version,
        )


class PolicyChangeRow(Base):
    """Append-only history: one row per version of every policy, written with the policy.
    Removing a school or service keeps its rows; registered again, its versions continue."""

    __tablename__ = "policy_changes"
    __table_args__ = (UniqueConstraint("school_id", "service_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign keys (revision 0008): the history outlives a removed school or service, as
    # the receipts that name its versions do.
    school_id: Mapped[str] = mapped_column(ID)
    service_id: Mapped[str] = mapped_column(ID)
    version: Mapped[int] = mapped_column(Integer)
    attributes: Mapped[list[str]] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(NAME)
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    declaration_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    @classmethod
    def recording(cls, policy: ReleasePolicyRow) -> PolicyChangeRow:
        """The history's line for `policy` as it stands now, written with each of its versions."""
        return cls(
            school_id=policy.school_id,
            service_id=policy.service_id,
            version=policy.version,
            attributes=list(policy.attributes),
            changed_at=policy.changed_at,
            changed_by=policy.changed_by,
            active=policy.active,
            declaration_version=policy.declaration_version,
        )

    def to_change(self) -> PolicyChange:
        return PolicyChange(
            school_id=self.school_id,
            service_id=self.service_id,
            version=self.version,
            attributes=frozenset(self.attributes),
            changed_at=as_utc(self.changed_at),
            changed_by=self.changed_by,
            active=self.active,
            declaration_version=self.declaration_version,
        )


class RemovalRow(Base):
    """Append-only (revision 0008): who removed which school, service, (revision 0009)
    publisher organisation or (revision 0017) chain when, and its name, so the receipts that
    outlive a registration still name it (removal.py); (revision 0024) a service's publisher."""

    __tablename__ = "removals"
    __table_args__ = (
        CheckConstraint("kind IN ('school', 'service', 'publisher', 'chain')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[str] = mapped_column(ID, index=True)
    name: Mapped[str] = mapped_column(NAME)
    removed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str] = mapped_column(NAME)
    # A service's publisher organisation (revision 0024), "" for none; NULL for the other kinds
    # and for removals recorded before it: whether its id goes to the same publisher again
    # (id_reuse.py).
    publisher_id: Mapped[str | None] = mapped_column(ID)


class RegistryStateRow(Base):
    """One row whose `generation` changes with every change to schools, services or metadata."""

    __tablename__ = "registry_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)


STATE_ROW_ID = 1
