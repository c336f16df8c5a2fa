"""`ketenbroker init`: a configuration file, keys with mode 0600 and an empty registry."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from broker.certificates import ec_private_key_pem, rsa_private_key_pem, self_signed_pair
from broker.registry import migrate

CONFIG_NAME = "ketenbroker.toml"

CONFIG_TEMPLATE = """\
# Ketenbroker configuration. Relative paths are relative to this file's folder.
# Secrets may instead come from the environment: KETENBROKER_SECRET_KEY, KETENBROKER_RECEIPT_KEY
# and KETENBROKER_PSEUDONYM_KEYS (the key set's contents). See docs/configuration.md.

[broker]
# The public origin of the broker (no path). Entity ids and endpoints derive from it.
base_url = "{base_url}"
# Scope of the pairwise-id attribute (<pseudonym>@<scope>), published as shibmd:Scope.
scope = "{scope}"
# Reverse proxies in front of the broker that append to X-Forwarded-For (1 behind one TLS
# proxy): rate limits then count each client, not the proxy. 0: clients connect directly.
proxy_hops = 0
# The time zone of times shown on the my-data page and in the school portal.
time_zone = "Europe/Amsterdam"

[keys]
saml_signing_key = "keys/saml-signing.key"
saml_signing_cert = "keys/saml-signing.crt"
# The chain pseudonym key set: numbered 32-byte keys; never share, never commit.
pseudonym_keys = "keys/pseudonym-keys.toml"
# Signs cookies and forms of the web interface.
session_secret = "keys/session-secret"
# The OpenID provider's ID-token keys: RS256 (always) and ES256 (for clients that ask).
oidc_signing_key = "keys/oidc-rs256.pem"
oidc_ec_signing_key = "keys/oidc-es256.pem"
# Names students in receipts and seals the receipts' hash chain; not a pseudonym key.
receipt_key = "keys/receipt-key"

[registry]
# SQLite file (embedded default) or postgresql+psycopg://user@host/db
url = "sqlite:///registry.sqlite3"

[store]
# memory:// (one process) or redis://host:6379/0 (any number of workers)
url = "memory://"

[saml]
clock_skew_seconds = 180
assertion_lifetime_seconds = 300

[oidc]
# Authorization codes are single-use and short-lived; access tokens last this many seconds.
code_lifetime_seconds = 60
access_token_lifetime_seconds = 600
refresh_token_lifetime_seconds = 28800
# Timeout for calls to schools' OpenID providers, in seconds.
http_timeout_seconds = 5

# Assurance levels across SAML and OpenID Connect (docs/configuration.md), weakest first: SAML's
# RequestedAuthnContext Comparison (minimum, better, maximum) is judged on this order. The first
# value of each list is what the broker sends and emits; the others are accepted from schools.
# "password" is a minimum: one factor, a password or stronger (Entra ID's Password, ADFS's
# Windows sign-in, a certificate); Microsoft's multipleauthn is MFA (docs/configuration.md).
[[assurance.levels]]
name = "password"
saml = [
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    "https://refeds.org/profile/sfa",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
    "urn:federation:authentication:windows",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:X509",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient",
]
oidc = ["https://refeds.org/profile/sfa"]

[[assurance.levels]]
name = "mfa"
saml = ["https://refeds.org/profile/mfa", "http://schemas.microsoft.com/claims/multipleauthn"]
oidc = ["https://refeds.org/profile/mfa"]

[login]
# A login must finish within this time (at most 900 seconds).
ttl_seconds = 900
# How long a student stays signed in at the broker (0 switches SSO off).
sso_session_seconds = 28800

[logging]
# json (one object per line with a request id) or text.
format = "json"

[receipts]
# Receipts older than this are removed by `ketenbroker receipts prune` (run it daily).
retention_days = 365
[rate_limits]
# Requests per client address; a whole school arrives from one address (docs/configuration.md).
sso = "600/minute"
acs = "600/minute"
token = "1200/minute"
discovery = "1200/minute"
# Per portal account: a school administrator's lookups of a student's receipts by identifier.
student_lookup = "30/minute;300/day"

[organization]
name = "{organization}"
url = ""
contact_email = ""
"""


def _write_secret(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def write_receipt_key(path: Path) -> None:
    _write_secret(path, secrets.token_hex(32).encode())


def pseudonym_key_set() -> bytes:
    return f'current = 1\n\n[keys]\n"1" = "{secrets.token_hex(32)}"\n'.encode()


def init_instance(directory: Path, base_url: str, scope: str, organization: str) -> Path:
    """Create a new broker instance in `directory`; refuse to overwrite an existing one."""
    config = directory / CONFIG_NAME
    if config.exists():
        raise FileExistsError(f"{config} exists already; nothing was changed")
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o700)
    key_pem, cert_pem = self_signed_pair(base_url.split("://", 1)[-1])
    _write_secret(keys / "saml-signing.key", key_pem)
    (keys / "saml-signing.crt").write_bytes(cert_pem)
    _write_secret(keys / "pseudonym-keys.toml", pseudonym_key_set())
    _write_secret(keys / "session-secret", secrets.token_urlsafe(48).encode())
    _write_secret(keys / "oidc-rs256.pem", rsa_private_key_pem())
    _write_secret(keys / "oidc-es256.pem", ec_private_key_pem())
    write_receipt_key(keys / "receipt-key")
    config.write_text(
        CONFIG_TEMPLATE.format(
            base_url=base_url.rstrip("/"), scope=scope, organization=organization
        ),
        encoding="utf-8",
    )
    migrate(f"sqlite:///{(directory / 'registry.sqlite3').resolve()}")
    return config
