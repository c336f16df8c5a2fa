"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broker.core.errors import BadRequest

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
_HASHER = PasswordHasher()  # argon2id; parameters are stored in each hash, so they can rise later

# Checked against when the e-mail address is unknown, so a wrong address costs as much time as a
# wrong password and the timing does not tell which one was wrong.
_DUMMY_HASH = _HASHER.hash("not a password: timing equaliser")


class WeakPassword(BadRequest):
    code = "weak_password"
    public_message = "Choose a password of at least 12 characters."


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )


def hash_password(password: str) -> str:
    check_password_rules(password)
    return str(_HASHER.hash(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; with `stored_hash=None` it burns the same time and fails."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        ok = bool(_HASHER.verify(stored_hash or _DUMMY_HASH, password))
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None
