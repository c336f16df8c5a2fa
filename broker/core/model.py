"""The domain model: frozen dataclasses shared by every layer.

These objects carry no personal data except `UpstreamIdentity`, which lives in memory for one
request (and, sealed, in the login state) and is never written to the registry or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Protocol(StrEnum):
    SAML = "saml"
    OIDC = "oidc"


class NamingProfile(StrEnum):
    """How released attributes are named towards a SAML service (attributes.md)."""

    OID = "oid"
    PLAIN = "plain"


class AssertionEncryption(StrEnum):
    """Whether a SAML service's assertion is encrypted (revision 0019, the operator's switch).

    `auto`: encrypted when its SP metadata publishes an encryption key
    (saml/publisher_encryption.py), a key the broker cannot meet refused. `off`: signed and sent
    unencrypted whatever the metadata publishes, for a platform whose SAML software cannot
    decrypt AES-GCM (docs/saml-profile.md, "Encrypted assertions")."""

    AUTO = "auto"
    OFF = "off"


class ClientAuthMethod(StrEnum):
    """How an OIDC client authenticates at the token endpoint (RFC 7591 names)."""

    SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    SECRET_POST = "client_secret_post"  # noqa: S105
    PRIVATE_KEY_JWT = "private_key_jwt"
    # A public client (an app without a secret): PKCE S256 is then required.
    NONE = "none"


@dataclass(frozen=True)
class OidcClient:
    """A service's OpenID Connect client registration; its client id is the service's
    `entity_id`. The secret is kept only as a SHA-256 hash: it is printed once at creation."""

    redirect_uris: tuple[str, ...]
    auth_method: ClientAuthMethod
    secret_hash: str | None = None
    jwks_uri: str | None = None
    id_token_alg: str = "RS256"  # noqa: S105 - an algorithm name
    refresh_tokens: bool = False
    # Logout (RP-Initiated Logout 1.0, Back-Channel Logout 1.0): where end_session may send the
    # browser back to (exact match), and where the broker POSTs a logout token.
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False

    @property
    def is_public(self) -> bool:
        return self.auth_method is ClientAuthMethod.NONE


@dataclass(frozen=True)
class OidcUpstream:
    """A school's OpenID provider, where the broker is a client. Its issuer is also the school's
    `idp_entity_id`, so one lookup finds the school for either protocol."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    algorithms: tuple[str, ...] = ("RS256",)
    # The school's domain at a provider whose issuer is shared by many organisations (Google
    # Workspace's `hd`, core/hosted_domain.py): only its accounts sign in. Empty: none.
    hosted_domain: str = ""
    # Why the registry could not open the stored client secret (core/sealed_secrets.py: a key
    # this configuration lacks, a changed value); `client_secret` is then empty and every login
    # through the school is refused until the operator gives the secret again. Empty: opened.
    secret_problem: str = ""


@dataclass(frozen=True)
class Chain:
    id: str
    name: str


@dataclass(frozen=True)
class School:
    """A school: one or more identity providers and the attribute that identifies a student.

    `subject_attribute` is the canonical attribute (or `name_id` for the SAML persistent NameID,
    `sub` or another claim such as Entra ID's `oid` for an OIDC provider) whose value feeds
    the chain pseudonym. When `use_eck_id` is set, the ECK iD (`eck_id`) is used with the
    sector-wide namespace instead.
    """

    id: str
    name: str
    idp_entity_id: str
    subject_attribute: str = "name_id"
    use_eck_id: bool = False
    scopes: tuple[str, ...] = ()
    oidc: OidcUpstream | None = None
    # Where students and parents ask the school about their data: an https:// or mailto: URL.
    privacy_contact: str = ""
    # Its town (core/towns.py): tells schools of the same name apart on the discovery page, and
    # a student may search on it. Empty: not given.
    town: str = ""
    # Other names students know it by (core/school_aliases.py): a former name, an informal one,
    # a location's. The discovery page finds the school by them and shows its real name.
    aliases: tuple[str, ...] = ()

    @property
    def protocol(self) -> Protocol:
        return Protocol.OIDC if self.oidc is not None else Protocol.SAML


@dataclass(frozen=True)
class Declaration:
    """One attribute a service declared it needs, with the purpose a parent can read.

    `purpose` is the Dutch text (required: Dutch is every page's default); `purpose_en` the
    English one, empty when the publisher gave none (English pages then show the Dutch text).
    A reason entered before purposes were bilingual counts as the Dutch one.
    """

    attribute: str
    purpose: str
    required: bool = False
    purpose_en: str = ""

    def purpose_in(self, language: str) -> str:
        """The purpose in `language` ("nl" or "en"), falling back to the Dutch text."""
        return self.purpose_en if self.purpose_language(language) == "en" else self.purpose

    def purpose_language(self, language: str) -> str:
        """The language `purpose_in(language)` is written in: "en" where the English text is
        given, else "nl" (the fallback)."""
        return "en" if language == "en" and self.purpose_en else "nl"


def pseudonym_chain(chain_id: str | None, service_id: str) -> str:
    """The pseudonym's chain input for a service with `chain_id`: its chain, or for a service
    in no chain `service:<id>` (a chain of its own). Receipts record both ids, so their
    per-chain subject is made from exactly this value (core/receipts.py)."""
    return chain_id if chain_id else f"service:{service_id}"


@dataclass(frozen=True)
class Service:
    """A publisher's or distributor's platform: a SAML SP (`entity_id` is its entity id) or an
    OIDC client (`entity_id` is its client id, `oidc` its registration).

    `approved`: an operator let it in; until then no school sees it and no login reaches it.
    `publisher_id`: the publisher whose administrators manage it (None: operators only).
    `declaration_version` counts changes of `declarations` (every change, for an honest
    history). `reconfirm_version` is the latest of those versions that changed what a school
    agreed to (an attribute added, an attribute's required-ness changed; declarations.py): a
    school's choice accepted under an older version releases the pseudonym alone until the
    school confirms it again. A removed attribute (the release rule narrows at once), or new
    texts for the same purpose, keep schools' choices valid; a new purpose (core/purposes.py)
    takes that attribute out of the schools' choices instead (registry/purpose_drops.py).
    """

    id: str
    name: str
    entity_id: str
    chain_id: str | None
    naming: NamingProfile = NamingProfile.OID
    declarations: tuple[Declaration, ...] = ()
    protocol: Protocol = Protocol.SAML
    oidc: OidcClient | None = None
    approved: bool = True
    publisher_id: str | None = None
    declaration_version: int = 1
    reconfirm_version: int = 1
    assertion_encryption: AssertionEncryption = AssertionEncryption.AUTO

    @property
    def pseudonym_chain(self) -> str:
        """The chain input of the pseudonym: a service in no chain is a chain of its own."""
        return pseudonym_chain(self.chain_id, self.id)

    def declaration(self, attribute: str) -> Declaration | None:
        for declaration in self.declarations:
            if declaration.attribute == attribute:
                return declaration
        return None


@dataclass(frozen=True)
class ReleasePolicy:
    """What one school releases to one service. Version 0 is the default: the pseudonym alone."""

    school_id: str
    service_id: str
    attributes: frozenset[str] = frozenset()
    version: int = 0


@dataclass(frozen=True)
class UpstreamIdentity:
    """What the school's identity provider told us, mapped to canonical names.

    `subject` is the value of the school's configured subject (persistent NameID, `sub`, or the
    attribute the school chose). It is used once to derive the pseudonym and never stored.
    """

    school_id: str
    subject: str
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    authn_context: str | None = None
    # What the school gave to name its session, for logging out there (login/logout.py):
    # SAML `name_id`, `name_id_format`, `name_qualifier`, `sp_name_qualifier`, `session_index`;
    # OIDC `id_token` (the id_token_hint) and `sid`. Sealed with the rest, never logged.
    upstream_session: dict[str, str] = field(default_factory=dict)
    # When the school's own session ends (SAML SessionNotOnOrAfter, epoch seconds), if it said:
    # the broker's SSO session, which vouches for the school's login, ends no later.
    session_ends: float | None = None
    # The AuthenticatingAuthority values the school's own assertion listed (its IdP proxied the
    # login further: SAML core 3.4.1.5.1), in its order; passed on only where the school's
    # identity is released (core/authenticating_authority.py).
    authorities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Release:
    """The outcome of the release rule for one login."""

    pseudonym: str
    attributes: dict[str, tuple[str, ...]]
    policy_version: int
    previous_pseudonym: str | None = None
    # The key version `pseudonym` was derived with (0: not given), so that what outlives the
    # login (OIDC codes and tokens) can tell whether the window of `previous_pseudonym` is over.
    key_version: int = 0
    # The chain input `previous_pseudonym` was derived in when a chain move's window released
    # it ("": the service's own chain, a rotation's window; core/chain_move.py).
    previous_chain: str = ""
