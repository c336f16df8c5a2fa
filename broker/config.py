"""The one configuration object: frozen dataclasses loaded from one TOML file.

Relative paths resolve against the file's folder; secrets come from files or `KETENBROKER_*`
environment variables. A bad file fails at start-up with the key and the reason; after loading
there is no raw dict anywhere.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.core.assurance import DEFAULT_ASSURANCE, Assurance, AssuranceLevel
from broker.core.assurance import order_problem as assurance_order_problem
from broker.core.errors import ConfigurationError
from broker.core.pseudonym import KEY_LENGTH, PseudonymKeys
from broker.core.receipts import ReceiptKeys
from broker.core.sealed_secrets import SecretSeal

ENV_CONFIG = "KETENBROKER_CONFIG"
ENV_PREVIOUS_SECRET = "KETENBROKER_PREVIOUS_SECRET_KEY"  # noqa: S105 - a variable's name


@dataclass(frozen=True)
class SamlSettings:
    signing_key: Path
    signing_cert: Path
    clock_skew_seconds: int = 180
    assertion_lifetime_seconds: int = 300
    # Publish encryption keys in the SP metadata and decrypt schools' encrypted assertions
    # (AES-GCM with RSA-OAEP only); off, a school that encrypts is refused.
    accept_encrypted_assertions: bool = False


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID provider's signing keys (RS256 always; ES256 offered to clients that ask)."""

    rsa_key: Path
    ec_key: Path | None = None
    code_lifetime_seconds: int = 60
    access_token_lifetime_seconds: int = 600
    refresh_token_lifetime_seconds: int = 8 * 3600
    # Outbound calls to schools' providers (discovery, JWKS, token, userinfo).
    http_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class KeyRotationSettings:
    """The signing key set (docs/operations.md, "Rolling the signing keys"): the manifest that
    `ketenbroker keys rotate` writes (`keys.key_set`; while it does not exist, the one key that
    `keys.saml_signing_key` and `keys.oidc_signing_key` name is a key set of one), how long a
    next key is published before it signs (`[keys.rotation]` publish_days or publish_seconds),
    and how often a worker looks whether the manifest changed."""

    manifest: Path
    publish_seconds: int = 8 * 24 * 3600
    check_seconds: int = 5


@dataclass(frozen=True)
class ReceiptSettings:
    """Receipts (docs/receipts.md): the key that names students in them and seals their chain
    (`keys.receipt_key`, 64 hex characters, or $KETENBROKER_RECEIPT_KEY), and how long they are
    kept before `ketenbroker receipts prune` removes them."""

    keys: ReceiptKeys
    retention_days: int = 365


@dataclass(frozen=True)
class MetricsSettings:
    """Who may read `/metrics` (docs/operations.md): direct requests from a loopback address
    (not forwarded by a proxy) when `allow_loopback`, and anyone presenting `token` as a bearer
    token when one is configured."""

    allow_loopback: bool = True
    token: str | None = None

    def __repr__(self) -> str:  # never print the token
        token = "set" if self.token else None
        return f"MetricsSettings(allow_loopback={self.allow_loopback}, token={token})"


@dataclass(frozen=True)
class RateLimits:
    """Requests per client address, in the `limits` library's notation ("600/minute", several joined
    by ";"); an empty string switches that limit off. A whole school reaches the broker from one
    address at 08:30, so the defaults only stop floods, not a busy Monday (security.md).
    `student_lookup` counts per portal account instead: a school administrator's lookups of a
    student's receipts by identifier (portal/student_lookup.py)."""

    sso: str = "600/minute"  # SAML SSO, OIDC authorize and end_session, the data page's sign-in
    acs: str = "600/minute"  # the SAML ACS and the OIDC callback (schools' side)
    token: str = "1200/minute"  # noqa: S105 - the OIDC token endpoint, a rate
    discovery: str = "1200/minute"  # the school chooser and its search
    student_lookup: str = "30/minute;300/day"  # per portal account: receipts by identifier


_RATE = re.compile(r"\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*")


def _rate(section: Mapping[str, Any], key: str, default: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not all(
        _RATE.fullmatch(part) for part in value.split(";") if value
    ):
        raise ConfigurationError(
            f'rate_limits.{key} must be like "600/minute" (several joined by ";"), or "" for none'
        )
    return value


def _rate_limits(data: Mapping[str, Any]) -> RateLimits:
    section = _section(data, "rate_limits")
    defaults = RateLimits()
    return RateLimits(
        sso=_rate(section, "sso", defaults.sso),
        acs=_rate(section, "acs", defaults.acs),
        token=_rate(section, "token", defaults.token),
        discovery=_rate(section, "discovery", defaults.discovery),
        student_lookup=_rate(section, "student_lookup", defaults.student_lookup),
    )


@dataclass(frozen=True)
class Logo:
    url: str
    width: int
    height: int


@dataclass(frozen=True)
class Organization:
    name: str = "Ketenbroker"
    url: str = ""
    contact_email: str = ""
    # Published as a `support` ContactPerson in the broker's metadata (technical: contact_email).
    support_email: str = ""
    # The metadata's mdui:UIInfo (both roles), as federation registries and discovery show the
    # broker: display names in Dutch and English (default: `name`), optional https URLs.
    display_name_nl: str = ""
    display_name_en: str = ""
    information_url: str = ""
    privacy_statement_url: str = ""
    logo: Logo | None = None

    def display_name(self, language: str) -> str:
        named = self.display_name_nl if language == "nl" else self.display_name_en
        return named or self.name


METADATA_ROLES = ("idp", "sp")
MAX_SOURCE_BYTES = 256 * 1024 * 1024
# A source takes the members of a few federations at most; a longer list is a mistake (eduGAIN
# counts some 80 federations: list the one to keep out on the national source instead).
MAX_REGISTRATION_AUTHORITIES = 20
MAX_AUTHORITY_LENGTH = 1024


@dataclass(frozen=True)
class MetadataSource:
    """One place the broker reads schools' IdP or publishers' SP metadata from: a single
    EntityDescriptor or a federation aggregate, at a URL or in a file (docs/configuration.md)."""

    name: str
    url: str | None
    file: Path | None
    # Pinned signer certificates; two while the federation rolls its signing key over.
    signing_certs: tuple[Path, ...]
    roles: tuple[str, ...] = METADATA_ROLES
    require_signature: bool = True
    require_valid_until: bool = True
    refresh_seconds: int = 3600
    max_bytes: int = 64 * 1024 * 1024
    # A document whose validUntil lies further ahead is refused (Shibboleth's
    # maxValidityInterval): the longer a signed feed holds, the longer it can be replayed.
    max_validity_days: int = 28
    # Only members whose mdrpi:RegistrationInfo/@registrationAuthority is listed are read: the
    # entity's own, else the nearest enclosing EntitiesDescriptor's (MDRPI 2.1.1); empty: every
    # member. A copy from a source with a list beats one from a source without.
    registration_authorities: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        return self.url or str(self.file)

    @property
    def max_validity(self) -> timedelta:
        return timedelta(days=self.max_validity_days)


@dataclass(frozen=True)
class MetadataSettings:
    """Metadata in (`sources`) and out (the broker's own documents' validity and cache hint)."""

    sources: tuple[MetadataSource, ...] = ()
    valid_days: int = 7
    cache_duration_seconds: int = 6 * 3600

    def refresh_periods(self) -> list[tuple[str, int]]:
        """(name, refresh_seconds) of every source, as `FederationStore.health` takes them."""
        return [(source.name, source.refresh_seconds) for source in self.sources]


@dataclass(frozen=True)
class Settings:
    base_url: str
    scope: str
    registry_url: str
    store_url: str
    saml: SamlSettings
    pseudonym_keys: PseudonymKeys
    secret_key: bytes
    organization: Organization
    receipts: ReceiptSettings
    oidc: OidcSettings | None = None
    key_rotation: KeyRotationSettings | None = None
    metrics: MetricsSettings = MetricsSettings()
    assurance: Assurance = DEFAULT_ASSURANCE
    metadata: MetadataSettings = MetadataSettings()
    rate_limits: RateLimits = RateLimits()
    login_ttl_seconds: int = 900
    sso_session_seconds: int = 8 * 3600
    # Reverse proxies in front of the broker that each append the address they saw to
    # X-Forwarded-For: the client is that many entries from the right (0: the connection's peer).
    proxy_hops: int = 0
    # The time zone of times shown to people (the my-data page, the school portal): a Dutch
    # parent reads 08:30, not 07:30 UTC. Stored and exported times stay UTC.
    time_zone: str = "Europe/Amsterdam"
    # How long the logout page waits for services to confirm before it moves on (login/logout.py).
    logout_wait_seconds: int = 5
    # `json` (one object per line, for log collectors) or `text` (for a terminal).
    log_format: str = "json"
    # The web workers' bound on each PostgreSQL statement (the server cancels it), and, a second
    # more, on each answer and on the wait for a pooled connection (registry/database.py). The
    # CLI and migrations run without one.
    registry_statement_timeout_seconds: int = 2
    # The same bounds for the school portal's reads over all of a school's receipts (its
    # receipts page and downloads), which grow with the school: slow, not a 503.
    registry_portal_statement_timeout_seconds: int = 30
    source: Path | None = None
    # Where the pseudonym key set was read from; None when KETENBROKER_PSEUDONYM_KEYS gave it
    # (then `pseudonym-key rotate` cannot add versions, and workers cannot read new ones).
    pseudonym_keys_file: Path | None = None
    # The session secret before the last rotation (`keys.previous_session_secret`): only to open
    # registry secrets sealed under it until `registry seal-secrets` re-sealed them. Never signs
    # or opens anything else (a replaced session secret still signs every administrator out).
    previous_secret_key: bytes | None = None

    def secret_seal(self) -> SecretSeal:
        """Seals and opens the secrets the registry keeps (core/sealed_secrets.py): under a key
        derived from the session secret, opening with the previous one's too."""
        return SecretSeal.from_secrets(self.secret_key, self.previous_secret_key)

    @property
    def peers_on_loopback(self) -> bool:
        """Whether outbound calls may go to loopback addresses: only for a broker that itself
        runs on loopback (the demo, the tests). A broker on a public origin never calls its own
        host, whatever an administrator types as a metadata URL or issuer."""
        host = urlsplit(self.base_url).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # zoneinfo keeps one object per name

    @property
    def issuer(self) -> str:
        """The OpenID provider's issuer: the broker's origin."""
        return self.base_url

    @property
    def my_data_url(self) -> str:
        """The my-data page's public address (web/my_data.py), which a school's portal gives
        its staff to pass on to a student or parent."""
        return f"{self.base_url}/my-data"

    def oidc_callback_url(self, school_id: str) -> str:
        """The redirect URI the broker registers at one school's OpenID provider: one per
        school, so a code that provider issues can only come back as that school's (RFC 9700
        4.4.2, the mix-up defence that works whether or not a provider sends `iss`)."""
        return f"{self.base_url}/oidc/rp/callback/{quote(school_id, safe='')}"

    def oidc_logout_callback_url(self, school_id: str) -> str:
        """The post_logout_redirect_uri the broker registers at one school's OpenID provider:
        where the student comes back after logging out there (RP-Initiated Logout 1.0)."""
        return f"{self.base_url}/oidc/rp/logout/{quote(school_id, safe='')}"

    def oidc_backchannel_logout_url(self, school_id: str) -> str:
        """The backchannel_logout_uri the broker registers at one school's OpenID provider:
        where that provider POSTs a logout token to end the student's SSO session at the
        broker (Back-Channel Logout 1.0). Per school, like the redirect URI."""
        return f"{self.base_url}/oidc/rp/backchannel-logout/{quote(school_id, safe='')}"

    @property
    def idp_entity_id(self) -> str:
        return f"{self.base_url}/saml/idp/metadata"

    @property
    def sp_entity_id(self) -> str:
        return f"{self.base_url}/saml/sp/metadata"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def __repr__(self) -> str:  # never print keys
        return f"Settings(base_url={self.base_url!r}, source={self.source!r})"


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f"[{name}] must be a table")
    return value


def _str(section: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}.{key} must be a non-empty string")
    return value


def _int(
    section: Mapping[str, Any], key: str, where: str, default: int, low: int, high: int
) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{where}.{key} must be a whole number from {low} to {high}")
    return value


def _time_zone(section: Mapping[str, Any]) -> str:
    value = section.get("time_zone", "Europe/Amsterdam")
    try:
        if not isinstance(value, str) or not value:
            raise ValueError(value)
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigurationError(
            'broker.time_zone must be a time zone name like "Europe/Amsterdam" or "UTC"'
        ) from None
    return value


def _choice(section: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed`; the first is the default."""
    value = section.get(key, allowed[0])
    if value not in allowed:
        raise ConfigurationError(f"{where}.{key} must be one of {', '.join(allowed)}")
    return str(value)


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_url(base: Path, url: str) -> str:
    """A relative SQLite path in the registry URL resolves against the config folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(_path(base, url[len(prefix) :]))
    return url


def _url_with_password_file(section: Mapping[str, Any], url: str, base: Path, where: str) -> str:
    """`password_file` (a container secret, say) put into the URL, so no password has to be
    written in the configuration file itself."""
    name = section.get("password_file")
    if name is None:
        return url
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}.password_file must be a non-empty string (a file path)")
    path = _path(base, name)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigurationError(
            f"{where}.password_file: cannot read {path}: {err.strerror}"
        ) from None
    if not password:
        raise ConfigurationError(f"{where}.password_file: {path} is empty")
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        raise ConfigurationError(f"{where}.url cannot be parsed") from None
    if has_password:
        raise ConfigurationError(
            f"{where}: give the password in the URL or in password_file, not both"
        )
    user, _, hosts = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))


def parse_pseudonym_keys(text: str) -> PseudonymKeys:
    """Key set format (TOML): `current = 1` and a table `[keys]` of `"1" = "<64 hex>"`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"pseudonym key set is not valid TOML: {err}") from None
    keys: dict[int, bytes] = {}
    table = data.get("keys")
    if not isinstance(table, dict) or not table:
        raise ConfigurationError("pseudonym key set needs a [keys] table")
    for version, value in table.items():
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            raw = b""
        if not version.isdigit() or len(raw) != KEY_LENGTH:
            raise ConfigurationError(f"pseudonym key {version!r} must be 64 hex characters")
        keys[int(version)] = raw
    current = data.get("current")
    previous = data.get("previous")
    if not isinstance(current, int) or current not in keys:
        raise ConfigurationError("pseudonym key set: `current` must name a version in [keys]")
    if previous is not None and (not isinstance(previous, int) or previous not in keys):
        raise ConfigurationError("pseudonym key set: `previous` must name a version in [keys]")
    return PseudonymKeys(current, keys, previous)


def _secret(env_name: str, file_value: str | None, base: Path, what: str) -> str:
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if not file_value:
        raise ConfigurationError(f"{what}: set {env_name} or the file path in the configuration")
    path = _path(base, file_value)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(f"{what}: cannot read {path}: {err.strerror}") from None


def _previous_session_secret(keys: Mapping[str, Any], base: Path, current: str) -> bytes | None:
    """`keys.previous_session_secret` (or KETENBROKER_PREVIOUS_SECRET_KEY): optional."""
    if not os.environ.get(ENV_PREVIOUS_SECRET) and not keys.get("previous_session_secret"):
        return None
    what = "keys.previous_session_secret"
    previous = _secret(ENV_PREVIOUS_SECRET, keys.get("previous_session_secret"), base, what)
    previous = previous.strip()
    if len(previous) < 32:
        raise ConfigurationError(f"{what} must hold at least 32 characters")
    if previous == current:
        raise ConfigurationError(
            f"{what} is the same as keys.session_secret: give the secret before the rotation"
        )
    return previous.encode()


def _oidc(keys: Mapping[str, Any], data: Mapping[str, Any], base: Path) -> OidcSettings | None:
    if "oidc_signing_key" not in keys:
        return None  # an instance made before OIDC: `ketenbroker init` writes the keys now
    oidc = _section(data, "oidc")
    ec = keys.get("oidc_ec_signing_key")
    return OidcSettings(
        rsa_key=_path(base, _str(keys, "oidc_signing_key", "keys")),
        ec_key=_path(base, _str(keys, "oidc_ec_signing_key", "keys")) if ec else None,
        code_lifetime_seconds=_int(oidc, "code_lifetime_seconds", "oidc", 60, 10, 600),
        access_token_lifetime_seconds=_int(
            oidc, "access_token_lifetime_seconds", "oidc", 600, 60, 3600
        ),
        refresh_token_lifetime_seconds=_int(
            oidc, "refresh_token_lifetime_seconds", "oidc", 8 * 3600, 60, 30 * 24 * 3600
        ),
        http_timeout_seconds=float(_int(oidc, "http_timeout_seconds", "oidc", 5, 1, 30)),
    )


DAY = 24 * 3600


def _key_rotation(
    keys: Mapping[str, Any], saml_key: Path, metadata: MetadataSettings, base: Path
) -> KeyRotationSettings:
    rotation = _section(keys, "rotation")
    if "publish_days" in rotation and "publish_seconds" in rotation:
        raise ConfigurationError("keys.rotation: give publish_days or publish_seconds, not both")
    # A peer may keep the broker's metadata until its validUntil: by the switch, every copy
    # still valid must already hold the next key. One day on top covers late refreshers.
    default = (metadata.valid_days + 1) * DAY
    if "publish_days" in rotation:
        publish = _int(rotation, "publish_days", "keys.rotation", 0, 1, 365) * DAY
    else:
        publish = _int(rotation, "publish_seconds", "keys.rotation", default, 1, 365 * DAY)
    if publish < metadata.cache_duration_seconds:
        raise ConfigurationError(
            "keys.rotation: the publish period must be at least metadata.cache_duration_seconds "
            f"({metadata.cache_duration_seconds} s), or peers sign in with a key they never saw"
        )
    manifest = keys.get("key_set")
    return KeyRotationSettings(
        manifest=_path(base, _str(keys, "key_set", "keys"))
        if manifest is not None
        else saml_key.parent / "key-set.toml",
        publish_seconds=publish,
        check_seconds=_int(rotation, "check_seconds", "keys.rotation", 5, 1, 60),
    )


def _receipts(keys: Mapping[str, Any], data: Mapping[str, Any], base: Path) -> ReceiptSettings:
    text = _secret(
        "KETENBROKER_RECEIPT_KEY",
        keys.get("receipt_key"),
        base,
        "keys.receipt_key (`ketenbroker receipts init-key` creates it)",
    ).strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != KEY_LENGTH:
        raise ConfigurationError("keys.receipt_key must hold 64 hex characters (32 bytes)")
    section = _section(data, "receipts")
    return ReceiptSettings(
        keys=ReceiptKeys.from_key(raw),
        retention_days=_int(section, "retention_days", "receipts", 365, 1, 3650),
    )


METRICS_TOKEN_ENV = "KETENBROKER_METRICS_TOKEN"  # noqa: S105 (a variable's name)
MIN_METRICS_TOKEN = 32


def _metrics(data: Mapping[str, Any], base: Path) -> MetricsSettings:
    section = _section(data, "metrics")
    allow_loopback = section.get("allow_loopback", True)
    if not isinstance(allow_loopback, bool):
        raise ConfigurationError("metrics.allow_loopback must be true or false")
    token_file = section.get("token_file")
    if token_file is not None and (not isinstance(token_file, str) or not token_file):
        raise ConfigurationError("metrics.token_file must be a non-empty string (a file path)")
    token = None
    if os.environ.get(METRICS_TOKEN_ENV) or token_file:
        token = _secret(METRICS_TOKEN_ENV, token_file, base, "metrics.token_file").strip()
        if len(token) < MIN_METRICS_TOKEN:
            raise ConfigurationError(
                f"metrics.token_file must hold at least {MIN_METRICS_TOKEN} characters"
            )
    return MetricsSettings(allow_loopback=allow_loopback, token=token)


def _assurance(data: Mapping[str, Any]) -> Assurance:
    section = _section(data, "assurance")
    levels = section.get("levels")
    if levels is None:
        return DEFAULT_ASSURANCE
    if not isinstance(levels, list) or not levels:
        raise ConfigurationError("[[assurance.levels]] must be a non-empty list of tables")
    parsed: list[AssuranceLevel] = []
    for index, level in enumerate(levels):
        where = f"assurance.levels[{index}]"
        if not isinstance(level, dict):
            raise ConfigurationError(f"{where} must be a table")
        lists = {}
        for key in ("saml", "oidc"):
            values = level.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise ConfigurationError(f"{where}.{key} must be a list of non-empty strings")
            lists[key] = tuple(values)
        parsed.append(AssuranceLevel(_str(level, "name", where), lists["saml"], lists["oidc"]))
    names = [level.name for level in parsed]
    if len(set(names)) != len(names):
        raise ConfigurationError("assurance.levels: every level needs a name of its own")
    if problem := assurance_order_problem(parsed):
        raise ConfigurationError(f"assurance.levels: {problem}")
    return Assurance(tuple(parsed))


def _bool(section: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}.{key} must be true or false")
    return value


def _registration_authorities(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Absolute URIs (a scheme, and for http(s) a host), as federations name themselves
    (SURFconext's is `http://www.surfconext.nl/`, plain http; `urn:mace:…`); compared exactly,
    so each is written as its federation's feed writes it."""
    key = f"{where}.registration_authorities"
    values = entry.get("registration_authorities", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigurationError(f"{key} must be a list of URIs")
    if len(values) > MAX_REGISTRATION_AUTHORITIES:
        raise ConfigurationError(f"{key}: at most {MAX_REGISTRATION_AUTHORITIES} authorities")
    for value in values:
        try:
            parts = urlsplit(value)
        except ValueError:  # an unclosed [IPv6] bracket
            parts = None
        if (
            parts is None
            or len(value) > MAX_AUTHORITY_LENGTH
            or any(c.isspace() for c in value)
            or not parts.scheme
            or (parts.scheme in ("http", "https") and not parts.netloc)
        ):
            raise ConfigurationError(
                f"{key}: {value[:80]!r} is not an absolute URI (as in the feed's "
                "registrationAuthority, e.g. https://www.federation.example/)"
            )
    if len(set(values)) != len(values):
        raise ConfigurationError(f"{key}: an authority is listed twice")
    return tuple(values)


MAX_DISPLAY_NAME = 120
MAX_UI_URL = 1024
MAX_LOGO_PIXELS = 1000


def _organization(org: Mapping[str, Any]) -> Organization:
    """[organization]: how the broker names itself in its metadata (Organization, ContactPerson,
    mdui:UIInfo)."""
    names = {}
    for key in ("display_name_nl", "display_name_en"):
        value = org.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_DISPLAY_NAME or value != value.strip():
            raise ConfigurationError(
                f"organization.{key} must be text of at most {MAX_DISPLAY_NAME} characters, "
                "without spaces around it"
            )
        names[key] = value
    logo = None
    if "logo_url" in org:
        logo = Logo(
            _ui_url(org, "logo_url"),
            _int(org, "logo_width", "organization", 0, 1, MAX_LOGO_PIXELS),
            _int(org, "logo_height", "organization", 0, 1, MAX_LOGO_PIXELS),
        )
    elif "logo_width" in org or "logo_height" in org:
        raise ConfigurationError("organization.logo_width and logo_height need logo_url")
    return Organization(
        name=str(org.get("name", "Ketenbroker")),
        url=str(org.get("url", "")),
        contact_email=str(org.get("contact_email", "")),
        support_email=str(org.get("support_email", "")),
        display_name_nl=names["display_name_nl"],
        display_name_en=names["display_name_en"],
        information_url=_ui_url(org, "information_url") if "information_url" in org else "",
        privacy_statement_url=(
            _ui_url(org, "privacy_statement_url") if "privacy_statement_url" in org else ""
        ),
        logo=logo,
    )


def _ui_url(org: Mapping[str, Any], key: str) -> str:
    """An https URL for the metadata's UIInfo: a registry shows it to people, so no other
    scheme, no spaces, at most MAX_UI_URL characters."""
    value = org.get(key)
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # an unclosed [IPv6] bracket
        parts = None
    if (
        parts is None
        or not isinstance(value, str)
        or len(value) > MAX_UI_URL
        or any(c.isspace() for c in value)
        or parts.scheme != "https"
        or not parts.hostname
    ):
        raise ConfigurationError(
            f"organization.{key} must be an https:// URL of at most {MAX_UI_URL} characters"
        )
    return value


def _metadata_source(entry: Any, where: str, base: Path) -> MetadataSource:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a table")
    name = _str(entry, "name", where)
    if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 64:
        raise ConfigurationError(f"{where}.name must be 1-64 letters, digits, '-' or '_'")
    url, file = entry.get("url"), entry.get("file")
    if (url is None) == (file is None):
        raise ConfigurationError(f"{where}: give either url or file")
    if url is not None:
        url = _str(entry, "url", where)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigurationError(f"{where}.url must be an http(s) URL")
    certs = entry.get("signing_certs", [])
    if not isinstance(certs, list) or not all(isinstance(c, str) and c for c in certs):
        raise ConfigurationError(f"{where}.signing_certs must be a list of certificate paths")
    if len(certs) > 2:
        raise ConfigurationError(f"{where}.signing_certs: at most two (old and new signer)")
    require_signature = _bool(entry, "require_signature", where, True)
    if require_signature and not certs:
        raise ConfigurationError(f"{where}.signing_certs: name the signer's certificate")
    if not require_signature and url is not None:
        # A download is only as trustworthy as its signature; a file was put there by hand.
        raise ConfigurationError(f"{where}: a url source must be signed (require_signature)")
    roles = entry.get("roles", list(METADATA_ROLES))
    if not isinstance(roles, list) or not roles or not set(roles) <= set(METADATA_ROLES):
        raise ConfigurationError(f"{where}.roles must list 'idp' and/or 'sp'")
    return MetadataSource(
        name=name,
        url=url,
        file=_path(base, _str(entry, "file", where)) if file is not None else None,
        signing_certs=tuple(_path(base, c) for c in certs),
        roles=tuple(r for r in METADATA_ROLES if r in roles),
        require_signature=require_signature,
        require_valid_until=_bool(entry, "require_valid_until", where, True),
        refresh_seconds=_int(entry, "refresh_seconds", where, 3600, 60, 7 * 24 * 3600),
        max_bytes=_int(entry, "max_bytes", where, 64 * 1024 * 1024, 1024, MAX_SOURCE_BYTES),
        max_validity_days=_int(entry, "max_validity_days", where, 28, 1, 365),
        registration_authorities=_registration_authorities(entry, where),
    )


def _metadata(data: Mapping[str, Any], base: Path) -> MetadataSettings:
    section = _section(data, "metadata")
    entries = section.get("sources", [])
    if not isinstance(entries, list):
        raise ConfigurationError("[[metadata.sources]] must be a list of tables")
    sources = tuple(
        _metadata_source(entry, f"metadata.sources[{i}]", base) for i, entry in enumerate(entries)
    )
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigurationError("metadata.sources: every source needs a name of its own")
    return MetadataSettings(
        sources=sources,
        valid_days=_int(section, "valid_days", "metadata", 7, 1, 365),
        cache_duration_seconds=_int(
            section, "cache_duration_seconds", "metadata", 6 * 3600, 60, 7 * 24 * 3600
        ),
    )


# Every table of the file and the keys it may hold: a key whose value is a table (or an array of
# tables) maps to that table's own keys, any other key to None. A key the loader does not read
# is refused, not ignored: a misspelled `registration_authority` would switch the
# interfederation rule off without a word, a `[[metadata.source]]` would mean "no sources".
_Keys = Mapping[str, "_Keys | None"]
_METADATA_SOURCE_KEYS: _Keys = dict.fromkeys(
    (
        "name",
        "url",
        "file",
        "signing_certs",
        "roles",
        "require_signature",
        "require_valid_until",
        "refresh_seconds",
        "max_bytes",
        "max_validity_days",
        "registration_authorities",
    )
)
KNOWN_KEYS: _Keys = {
    "broker": dict.fromkeys(("base_url", "scope", "proxy_hops", "time_zone")),
    "keys": {
        **dict.fromkeys(
            (
                "saml_signing_key",
                "saml_signing_cert",
                "pseudonym_keys",
                "session_secret",
                "previous_session_secret",
                "oidc_signing_key",
                "oidc_ec_signing_key",
                "receipt_key",
                "key_set",
            )
        ),
        "rotation": dict.fromkeys(("publish_days", "publish_seconds", "check_seconds")),
    },
    "registry": dict.fromkeys(
        ("url", "password_file", "statement_timeout_seconds", "portal_statement_timeout_seconds")
    ),
    "store": dict.fromkeys(("url", "password_file")),
    "metrics": dict.fromkeys(("allow_loopback", "token_file")),
    "saml": dict.fromkeys(
        ("clock_skew_seconds", "assertion_lifetime_seconds", "accept_encrypted_assertions")
    ),
    "oidc": dict.fromkeys(
        (
            "code_lifetime_seconds",
            "access_token_lifetime_seconds",
            "refresh_token_lifetime_seconds",
            "http_timeout_seconds",
        )
    ),
    "assurance": {"levels": dict.fromkeys(("name", "saml", "oidc"))},
    "login": dict.fromkeys(("ttl_seconds", "sso_session_seconds", "logout_wait_seconds")),
    "receipts": dict.fromkeys(("retention_days",)),
    "logging": dict.fromkeys(("format",)),
    "rate_limits": dict.fromkeys(("sso", "acs", "token", "discovery", "student_lookup")),
    "organization": dict.fromkeys(
        (
            "name",
            "url",
            "contact_email",
            "support_email",
            "display_name_nl",
            "display_name_en",
            "information_url",
            "privacy_statement_url",
            "logo_url",
            "logo_width",
            "logo_height",
        )
    ),
    "metadata": {
        "valid_days": None,
        "cache_duration_seconds": None,
        "sources": _METADATA_SOURCE_KEYS,
    },
}


def unknown_keys(data: Mapping[str, Any], known: _Keys = KNOWN_KEYS, where: str = "") -> list[str]:
    """What is wrong, one line per key of `data` the loader does not read, each naming its
    table and, when a known key is close, suggesting it (`refresh_second`: did you mean
    `refresh_seconds`?). Values that are not what the schema expects (a table given as a
    number) are left to the loader's own checks, which name the key and what it must be."""
    problems: list[str] = []
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in known:
            problems.append(_unknown(key, value, known, where))
            continue
        inner = known[key]
        if inner is None:
            continue
        if isinstance(value, dict):
            problems += unknown_keys(value, inner, name)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    problems += unknown_keys(item, inner, f"{name}[{index}]")
    return problems


def _unknown(key: str, value: Any, known: _Keys, where: str) -> str:
    """One unknown key, said as the file writes it: `[sam1]`, `[[metadata.source]]`, `saml.x`."""
    close = difflib.get_close_matches(key, list(known), n=1)
    prefix = f"{where}." if where else ""
    if isinstance(value, dict) or (
        isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
    ):
        left, right = ("[", "]") if isinstance(value, dict) else ("[[", "]]")
        hint = f" (did you mean {left}{prefix}{close[0]}{right}?)" if close else ""
        return f"unknown table {left}{prefix}{key}{right}{hint}"
    if where:
        return f"unknown key {where}.{key}" + (f" (did you mean {close[0]}?)" if close else "")
    # A key above every table header: say which table has it, if one does.
    home = [table for table, keys in known.items() if keys is not None and key in keys]
    hint = f" (it belongs in [{home[0]}])" if home else ""
    return f"unknown key {key} before the first [table]{hint}"


def _refuse_unknown_keys(data: Mapping[str, Any]) -> None:
    problems = unknown_keys(data)
    if problems:
        raise ConfigurationError(
            "; ".join(problems)
            + ". The broker reads no key it does not know: check the spelling against "
            "docs/configuration.md (a key newer than this version: upgrade it first)"
        )


def settings_from_mapping(data: Mapping[str, Any], base: Path, source: Path | None) -> Settings:
    _refuse_unknown_keys(data)
    broker = _section(data, "broker")
    base_url = _str(broker, "base_url", "broker").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigurationError("broker.base_url must be an http(s) origin without a path")
    keys = _section(data, "keys")
    saml = _section(data, "saml")
    login = _section(data, "login")
    org = _section(data, "organization")
    secret = _secret(
        "KETENBROKER_SECRET_KEY", keys.get("session_secret"), base, "keys.session_secret"
    )
    if len(secret.strip()) < 32:
        raise ConfigurationError("keys.session_secret must hold at least 32 characters")
    previous = _previous_session_secret(keys, base, secret.strip())
    saml_key = _path(base, _str(keys, "saml_signing_key", "keys"))
    metadata = _metadata(data, base)
    registry = _section(data, "registry")
    return Settings(
        base_url=base_url,
        scope=_str(broker, "scope", "broker"),
        registry_url=_url_with_password_file(
            registry, _resolve_url(base, _str(registry, "url", "registry")), base, "registry"
        ),
        registry_statement_timeout_seconds=_int(
            registry, "statement_timeout_seconds", "registry", 2, 1, 60
        ),
        registry_portal_statement_timeout_seconds=_int(
            registry, "portal_statement_timeout_seconds", "registry", 30, 1, 300
        ),
        store_url=_url_with_password_file(
            _section(data, "store"),
            _str(_section(data, "store"), "url", "store", "memory://"),
            base,
            "store",
        ),
        saml=SamlSettings(
            signing_key=saml_key,
            signing_cert=_path(base, _str(keys, "saml_signing_cert", "keys")),
            clock_skew_seconds=_int(saml, "clock_skew_seconds", "saml", 180, 0, 600),
            assertion_lifetime_seconds=_int(
                saml, "assertion_lifetime_seconds", "saml", 300, 30, 3600
            ),
            accept_encrypted_assertions=_bool(saml, "accept_encrypted_assertions", "saml", False),
        ),
        pseudonym_keys=parse_pseudonym_keys(
            _secret(
                "KETENBROKER_PSEUDONYM_KEYS",
                keys.get("pseudonym_keys"),
                base,
                "keys.pseudonym_keys",
            )
        ),
        pseudonym_keys_file=(
            None
            if os.environ.get("KETENBROKER_PSEUDONYM_KEYS") or not keys.get("pseudonym_keys")
            else _path(base, str(keys["pseudonym_keys"]))
        ),
        secret_key=secret.strip().encode(),
        previous_secret_key=previous,
        organization=_organization(org),
        receipts=_receipts(keys, data, base),
        metadata=metadata,
        oidc=_oidc(keys, data, base),
        key_rotation=_key_rotation(keys, saml_key, metadata, base),
        metrics=_metrics(data, base),
        assurance=_assurance(data),
        rate_limits=_rate_limits(data),
        proxy_hops=_int(broker, "proxy_hops", "broker", 0, 0, 5),
        time_zone=_time_zone(broker),
        login_ttl_seconds=_int(login, "ttl_seconds", "login", 900, 60, 900),
        sso_session_seconds=_int(login, "sso_session_seconds", "login", 8 * 3600, 0, 24 * 3600),
        logout_wait_seconds=_int(login, "logout_wait_seconds", "login", 5, 1, 60),
        log_format=_choice(_section(data, "logging"), "format", "logging", ("json", "text")),
        source=source,
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the configuration file (default: $KETENBROKER_CONFIG)."""
    chosen = path or os.environ.get(ENV_CONFIG)
    if not chosen:
        raise ConfigurationError(f"no configuration: pass --config or set {ENV_CONFIG}")
    file = Path(chosen).resolve()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigurationError(f"cannot read configuration {file}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"{file} is not valid TOML: {err}") from None
    return settings_from_mapping(data, file.parent, file)
