"""Invitation tokens: random, sent only in the invitation link, stored only as a SHA-256 hash.

A registry dump then holds no usable invitation. SHA-256 without a salt is enough here: the
token has 256 random bits, so there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 64


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible_token(token: str) -> bool:
    """Cheap shape check before any database look-up."""
    return 0 < len(token) <= MAX_TOKEN_LENGTH and all(c.isalnum() or c in "-_" for c in token)
