"""Sealed state: what the store keeps about a student is readable only with the browser's cookie.

A record is AES-GCM encrypted under a key derived from a secret that only the browser's cookie
carries, and filed under a hash of the record's id. A dump of the store holds ciphertext under
opaque keys; a lost cookie simply means a new login (security.md, "Nothing lost").
"""

from __future__ import annotations

import hmac
import json
import os
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.ports import KeyValueStore

NONCE_LENGTH = 12


def new_secret() -> bytes:
    return os.urandom(32)


def store_key(kind: str, record_id: str) -> str:
    return f"{kind}:{sha256(record_id.encode()).hexdigest()}"


def _record_key(secret: bytes, kind: str, record_id: str) -> bytes:
    return hmac.new(secret, f"ketenbroker/{kind}/{record_id}".encode(), sha256).digest()


def seal(secret: bytes, kind: str, record_id: str, payload: dict[str, Any]) -> bytes:
    nonce = os.urandom(NONCE_LENGTH)
    aad = store_key(kind, record_id).encode()
    body = json.dumps(payload, separators=(",", ":")).encode()
    return nonce + AESGCM(_record_key(secret, kind, record_id)).encrypt(nonce, body, aad)


def unseal(secret: bytes, kind: str, record_id: str, blob: bytes) -> dict[str, Any]:
    aad = store_key(kind, record_id).encode()
    try:
        body = AESGCM(_record_key(secret, kind, record_id)).decrypt(
            blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], aad
        )
    except (InvalidTag, ValueError):
        # Another browser's cookie (or a forged record id): treat as no record at all.
        raise StateExpired("sealed record does not open with this browser's key") from None
    value = json.loads(body)
    if not isinstance(value, dict):
        raise StoreUnavailable("sealed record has an unexpected shape")
    return value


class SealedStore:
    """Seal-on-write, unseal-on-read over any KeyValueStore."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def put(
        self, secret: bytes, kind: str, record_id: str, payload: dict[str, Any], ttl: int
    ) -> None:
        self.store.put(store_key(kind, record_id), seal(secret, kind, record_id, payload), ttl)

    def get(self, secret: bytes, kind: str, record_id: str) -> dict[str, Any] | None:
        blob = self.store.get(store_key(kind, record_id))
        return None if blob is None else unseal(secret, kind, record_id, blob)

    def take(self, secret: bytes, kind: str, record_id: str) -> dict[str, Any] | None:
        blob = self.store.take(store_key(kind, record_id))
        return None if blob is None else unseal(secret, kind, record_id, blob)

    def delete(self, kind: str, record_id: str) -> None:
        self.store.delete(store_key(kind, record_id))
