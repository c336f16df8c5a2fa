"""Secrets the registry keeps and the broker must use again in clear, sealed at rest.

Two kinds: a portal administrator's TOTP secret (a code is checked against the secret itself,
so it cannot be hashed like the password) and the broker's client secret at a school's OpenID
provider (sent to its token endpoint). Each is stored as AES-256-GCM ciphertext under a key
derived (HKDF-SHA256, a label of its own) from the broker's session secret, a key from the
configuration and never from the database: a copy of the database alone opens none of them.

A sealed value reads `$kbs1$<key id>$<base64url(nonce | ciphertext | tag)>`: `kbs1` is the
format, the key id (8 hex characters, derived from the key, not the key) says which key opens
it, so a value sealed under the previous session secret is opened with that one while
`ketenbroker registry seal-secrets` re-seals it under the current one. The associated data
binds the value to its row: the purpose (admin TOTP, invitation TOTP, school client secret) and
the row's key (the administrator's e-mail address, the invitation's token hash, the school id),
so a value copied into another row, or another column, does not open.

Every value that starts with `$kbs` is sealed: one of a format this version does not know (a
`$kbs2$` of a later version) does not open, and is never taken for a secret in clear. The empty
value is no secret: it is stored as it is, never sealed (an emptied invitation's, say).

A value in clear (COMPAT(clear-registry-secrets)) is read as it is by a `SecretSeal`, and refused
with `SecretInClear` by its `refusing_clear()` form: the registry uses that one once it is marked
as holding sealed secrets only (registry/sealed_only.py), so a value put in clear into the
database after that (by hand, from an old back-up's row) is never taken for a secret.

A value that does not open raises `SecretUnreadable`, which names the row by id and says why,
never the value, the ciphertext or an e-mail address: it gets logged. It may give the key id (8
hex characters derived from the secret with their own HKDF label, checked before they are
shown), which tells the operator which secret sealed it.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.core.errors import ConfigurationError

FORMAT = "kbs1"
PREFIX = f"${FORMAT}$"
# What every sealed value starts with, of this format or any other: never read as clear.
SEALED_MARK = "$kbs"
KEY_LABEL = b"ketenbroker/registry-secrets/v1"
KEY_ID_LABEL = b"ketenbroker/registry-secrets/key-id/v1"
NONCE_LENGTH = 12
KEY_ID_LENGTH = 4  # bytes: 8 hex characters tell two or three keys apart, and reveal nothing
KEY_ID = re.compile(r"[0-9a-f]{8}")
TAG_LENGTH = 16
# Said of any value that is not `$kbs1$<key id>$<body>`: the value itself is never echoed, as
# the reason gets logged.
NOT_THIS_FORMAT = "not a sealed value of this format"
# Said of a value in clear in a registry marked as holding sealed secrets only.
IN_CLEAR = (
    "in clear, and the registry holds sealed secrets only (registry/sealed_only.py): not "
    "written by the broker, so not used"
)


def in_clear(stored: str) -> bool:
    """A secret stored in clear: not empty (no secret) and of no sealed format."""
    return bool(stored) and not stored.startswith(SEALED_MARK)


class SecretPurpose(StrEnum):
    ADMIN_TOTP = "admin-totp"
    INVITATION_TOTP = "invitation-totp"
    # The seed an invitation's page shows one browser, sealed in that browser's session only
    # (web/portal/invitation_seed.py): never the registry's, so never taken for one.
    INVITATION_BROWSER_TOTP = "invitation-browser-totp"
    SCHOOL_CLIENT_SECRET = "school-client-secret"  # noqa: S105 - a label, not a secret


class SecretState(StrEnum):
    """Where a stored value stands (`registry seal-secrets` counts them)."""

    CLEAR = "clear"  # written before sealing (COMPAT(clear-registry-secrets))
    CURRENT = "current"  # sealed under the current key
    OLDER = "older"  # sealed under another key: the previous session secret's, or an unknown one


@dataclass(frozen=True)
class SecretBinding:
    """The row a secret belongs to: `purpose` and `row` are the associated data; `shown` is
    how errors and log lines name the row (an id, never an e-mail address)."""

    purpose: SecretPurpose
    row: str
    shown: str

    @classmethod
    def admin_totp(cls, email: str, admin_id: int | None = None) -> SecretBinding:
        shown = "a new administrator" if admin_id is None else f"administrator {admin_id}"
        return cls(SecretPurpose.ADMIN_TOTP, email, shown)

    @classmethod
    def invitation_totp(cls, token_hash: str) -> SecretBinding:
        # The first characters of the token's hash: the operator's pages show no more.
        return cls(SecretPurpose.INVITATION_TOTP, token_hash, f"invitation {token_hash[:8]}")

    @classmethod
    def invitation_browser_totp(cls, token_hash: str) -> SecretBinding:
        return cls(
            SecretPurpose.INVITATION_BROWSER_TOTP,
            token_hash,
            f"a browser's seed for invitation {token_hash[:8]}",
        )

    @classmethod
    def school_client_secret(cls, school_id: str) -> SecretBinding:
        return cls(SecretPurpose.SCHOOL_CLIENT_SECRET, school_id, f"school {school_id}")

    @property
    def associated_data(self) -> bytes:
        # NUL-separated: no purpose, address, hash or school id holds one.
        return b"\x00".join((FORMAT.encode(), self.purpose.value.encode(), self.row.encode()))


class SecretUnreadable(ConfigurationError):
    """A sealed secret that this configuration's keys do not open: sealed under a key it does
    not hold (a session secret replaced without `keys.previous_session_secret`), changed in
    the database, or moved from another row. Never a silent fallback: the school's logins or
    the administrator's sign-in stop, with this in the log, until the operator acts."""

    code = "sealed_secret_unreadable"
    status = 503
    public_message = (
        "The broker cannot open a secret it keeps for this account. "
        "Nothing was changed; please tell the broker's operator."
    )

    def __init__(self, binding: SecretBinding, reason: str) -> None:
        super().__init__(
            f"the {binding.purpose.value} secret of {binding.shown} cannot be opened: {reason}"
        )
        self.binding = binding
        self.reason = reason


class SecretInClear(SecretUnreadable):
    """A secret in clear in a registry marked as holding sealed secrets only: whoever wrote it
    there, the broker did not (it seals every secret it writes). Refused like a secret that
    does not open, with a page and a code of its own, until the secret is given again."""

    code = "sealed_secret_in_clear"
    public_message = (
        "The broker does not accept the secret stored for this account: it was not stored by "
        "the broker. Nothing was changed; please tell the broker's operator."
    )

    def __init__(self, binding: SecretBinding) -> None:
        super().__init__(binding, IN_CLEAR)


@dataclass(frozen=True)
class SealingKey:
    key_id: str
    key: bytes = field(repr=False)


def sealing_key(secret: bytes) -> SealingKey:
    """The sealing key derived from a session secret, and its id."""
    key = HKDF(SHA256(), 32, salt=None, info=KEY_LABEL).derive(secret)
    key_id = HKDF(SHA256(), KEY_ID_LENGTH, salt=None, info=KEY_ID_LABEL).derive(secret)
    return SealingKey(key_id.hex(), key)


class SecretSeal:
    """Seals with the current key; opens with the current or an older one (by key id).

    Without a current key (a registry opened without the broker's configuration) it seals
    nothing and opens only clear values: a caller that needs a secret gets `SecretUnreadable`,
    one that would write one a `ConfigurationError`, never a value stored in clear.

    `refuse_clear`: a value in clear does not open either (`SecretInClear`): see
    `refusing_clear`."""

    def __init__(
        self,
        current: SealingKey | None,
        older: Iterable[SealingKey] = (),
        *,
        refuse_clear: bool = False,
    ) -> None:
        self._current = current
        self._older = [k for k in older if k is not None]
        self._keys = [k for k in (current, *self._older) if k is not None]
        self._refuse_clear = refuse_clear

    def refusing_clear(self) -> SecretSeal:
        """The same keys, refusing values in clear: for a registry marked as holding sealed
        secrets only (registry/sealed_only.py)."""
        return SecretSeal(self._current, self._older, refuse_clear=True)

    @classmethod
    def from_secrets(cls, current: bytes, previous: bytes | None = None) -> SecretSeal:
        return cls(sealing_key(current), [sealing_key(previous)] if previous else [])

    @property
    def current_key_id(self) -> str | None:
        return self._current.key_id if self._current else None

    def seal(self, clear: str, binding: SecretBinding) -> str:
        """`clear` sealed under the current key; "" stays "" (no secret, nothing to seal)."""
        if not clear:
            return ""
        if self._current is None:
            raise ConfigurationError(
                f"cannot seal the {binding.purpose.value} secret of {binding.shown}: the "
                "registry was opened without the broker's configuration (keys.session_secret)"
            )
        nonce = secrets.token_bytes(NONCE_LENGTH)
        sealed = AESGCM(self._current.key).encrypt(nonce, clear.encode(), binding.associated_data)
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self._current.key_id}${body}"

    def open(self, stored: str, binding: SecretBinding) -> str:
        """The secret in clear, or `SecretUnreadable` saying why."""
        if not stored.startswith(SEALED_MARK):
            if self._refuse_clear and stored:
                raise SecretInClear(binding)
            # COMPAT(clear-registry-secrets): a value written before sealing (revision 0020),
            # read as it is until `registry seal-secrets` seals it (and marks the registry as
            # holding sealed secrets only); remove once every deployment has run it (its count
            # of clear values is 0).
            return stored
        key_id, body = _parts(stored, binding)
        keys = [k for k in self._keys if k.key_id == key_id]
        if not keys:
            reason = (
                "the registry was opened without the broker's configuration"
                if self._current is None
                else f"sealed under key {key_id}, which is neither keys.session_secret's "
                "nor keys.previous_session_secret's"
            )
            raise SecretUnreadable(binding, reason)
        nonce, sealed = body[:NONCE_LENGTH], body[NONCE_LENGTH:]
        for key in keys:
            try:
                clear = AESGCM(key.key).decrypt(nonce, sealed, binding.associated_data)
            except InvalidTag:
                continue
            return clear.decode()
        raise SecretUnreadable(
            binding, f"it does not open under key {key_id}: changed, or copied from another row"
        )

    def state(self, stored: str) -> SecretState:
        if not stored.startswith(SEALED_MARK):
            return SecretState.CLEAR
        key_id = stored[len(PREFIX) :].partition("$")[0] if stored.startswith(PREFIX) else ""
        current = self._current is not None and key_id == self._current.key_id
        return SecretState.CURRENT if current else SecretState.OLDER


def _parts(stored: str, binding: SecretBinding) -> tuple[str, bytes]:
    """The key id and the body of a `$kbs1$` value; `SecretUnreadable` with a fixed reason for
    anything else (another `$kbs` format, a key id that is not 8 lowercase hex characters, a
    body too short for a nonce and a tag): what follows `$kbs` is never repeated, as the reason
    gets logged (a line break in it would forge a line)."""
    if not stored.startswith(PREFIX):
        raise SecretUnreadable(binding, NOT_THIS_FORMAT)
    key_id, dollar, text = stored[len(PREFIX) :].partition("$")
    try:
        body = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        body = b""
    # An empty secret seals to a nonce and a tag alone: the shortest body there is (`seal` seals
    # no empty secret, but such a value opens).
    if not dollar or not KEY_ID.fullmatch(key_id) or len(body) < NONCE_LENGTH + TAG_LENGTH:
        raise SecretUnreadable(binding, NOT_THIS_FORMAT)
    return key_id, body


# For readers that need no secret (a removal's report) and registries opened without the
# broker's configuration: opens clear values only, seals nothing.
NO_KEYS = SecretSeal(None)
