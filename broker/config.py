"""The one configuration object: frozen dataclasses loaded from one TOML file.

Relative paths resolve against the file's folder; secrets come from files or `KETENBROKER_*`
environment variables. A bad file fails at start-up with the key and the reason; after loading
there is no raw dict anywhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from broker.core.assurance import DEFAULT_ASSURANCE, Assurance, AssuranceLevel
from broker.core.errors import ConfigurationError
from broker.core.pseudonym import KEY_LENGTH, PseudonymKeys

ENV_CONFIG = "KETENBROKER_CONFIG"


@dataclass(frozen=True)
class SamlSettings:
    signing_key: Path
    signing_cert: Path
    clock_skew_seconds: int = 60
    assertion_lifetime_seconds: int = 300


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
class RateLimits:
    """Requests per client address, in Flask-Limiter's notation ("600/minute", several joined
    by ";"); an empty string switches that limit off. A whole school reaches the broker from one
    address at 08:30, so the defaults only stop floods, not a busy Monday (security.md)."""

    sso: str = "600/minute"  # SAML SSO and the OIDC authorization endpoint (publishers' side)
    acs: str = "600/minute"  # the SAML ACS and the OIDC callback (schools' side)
    token: str = "1200/minute"  # noqa: S105 - the OIDC token endpoint, a rate
    discovery: str = "1200/minute"  # the school chooser and its search


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
    unknown = set(section) - {"sso", "acs", "token", "discovery"}
    if unknown:
        raise ConfigurationError(f"rate_limits: unknown key(s) {', '.join(sorted(unknown))}")
    defaults = RateLimits()
    return RateLimits(
        sso=_rate(section, "sso", defaults.sso),
        acs=_rate(section, "acs", defaults.acs),
        token=_rate(section, "token", defaults.token),
        discovery=_rate(section, "discovery", defaults.discovery),
    )


@dataclass(frozen=True)
class Organization:
    name: str = "Ketenbroker"
    url: str = ""
    contact_email: str = ""


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
    oidc: OidcSettings | None = None
    assurance: Assurance = DEFAULT_ASSURANCE
    rate_limits: RateLimits = RateLimits()
    login_ttl_seconds: int = 900
    sso_session_seconds: int = 8 * 3600
    source: Path | None = None

    @property
    def peers_on_loopback(self) -> bool:
        """Whether outbound calls may go to loopback addresses: only for a broker that itself
        runs on loopback (the demo, the tests). A broker on a public origin never calls its own
        host, whatever an administrator types as a metadata URL or issuer."""
        host = urlsplit(self.base_url).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"

    @property
    def issuer(self) -> str:
        """The OpenID provider's issuer: the broker's origin."""
        return self.base_url

    def oidc_callback_url(self, school_id: str) -> str:
        """The redirect URI the broker registers at one school's OpenID provider: one per
        school, so a code that provider issues can only come back as that school's (RFC 9700
        4.4.2, the mix-up defence that works whether or not a provider sends `iss`)."""
        return f"{self.base_url}/oidc/rp/callback/{quote(school_id, safe='')}"

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


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_url(base: Path, url: str) -> str:
    """A relative SQLite path in the registry URL resolves against the config folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(_path(base, url[len(prefix) :]))
    return url


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
    return Assurance(tuple(parsed))


def settings_from_mapping(data: Mapping[str, Any], base: Path, source: Path | None) -> Settings:
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
    return Settings(
        base_url=base_url,
        scope=_str(broker, "scope", "broker"),
        registry_url=_resolve_url(base, _str(_section(data, "registry"), "url", "registry")),
        store_url=_str(_section(data, "store"), "url", "store", "memory://"),
        saml=SamlSettings(
            signing_key=_path(base, _str(keys, "saml_signing_key", "keys")),
            signing_cert=_path(base, _str(keys, "saml_signing_cert", "keys")),
            clock_skew_seconds=_int(saml, "clock_skew_seconds", "saml", 60, 0, 600),
            assertion_lifetime_seconds=_int(
                saml, "assertion_lifetime_seconds", "saml", 300, 30, 3600
            ),
        ),
        pseudonym_keys=parse_pseudonym_keys(
            _secret(
                "KETENBROKER_PSEUDONYM_KEYS",
                keys.get("pseudonym_keys"),
                base,
                "keys.pseudonym_keys",
            )
        ),
        secret_key=secret.strip().encode(),
        organization=Organization(
            name=str(org.get("name", "Ketenbroker")),
            url=str(org.get("url", "")),
            contact_email=str(org.get("contact_email", "")),
        ),
        oidc=_oidc(keys, data, base),
        assurance=_assurance(data),
        rate_limits=_rate_limits(data),
        login_ttl_seconds=_int(login, "ttl_seconds", "login", 900, 60, 900),
        sso_session_seconds=_int(login, "sso_session_seconds", "login", 8 * 3600, 0, 24 * 3600),
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
