"""Sealed state: what the store keeps about a student is readable only with the browser's cookie.

A record is AES-GCM encrypted under a key derived from a secret that only the browser's cookie
carries, and filed under a hash of the record's id. A dump of the store holds ciphertext under
opaque keys; a lost cookie simply means a new login (security.md, "Nothing lost").

The sealed body is padded to a multiple of `PAD_TO` bytes before it is encrypted, because
AES-GCM keeps the length: unpadded, a dump of the store would show how long what a record seals
is, and so, between two otherwise alike records, how long a student's name or e-mail address is.
The padding is JSON whitespace after the document, which `json.loads` skips: records sealed
before it open as they did, and a worker without it opens records sealed with it.
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
from broker.core.ports import KeyValueStore, StoreOp, StoreReply

NONCE_LENGTH = 12
# A record's attribute values differ by tens of bytes from student to student; a 256-byte step
# hides that, at 128 bytes of store memory per record on average (a login record is 1-2 kB).
PAD_TO = 256


def new_secret() -> bytes:
    return os.urandom(32)


def store_key(kind: str, record_id: str) -> str:
    return f"{kind}:{sha256(record_id.encode()).hexdigest()}"


def _record_key(secret: bytes, kind: str, record_id: str) -> bytes:
    return hmac.new(secret, f"ketenbroker/{kind}/{record_id}".encode(), sha256).digest()


def seal(
    secret: bytes, kind: str, record_id: str, payload: dict[str, Any], key: str | None = None
) -> bytes:
    """`key`: the record's `store_key`, when the caller has it already (it is the AAD)."""
    nonce = os.urandom(NONCE_LENGTH)
    aad = (key or store_key(kind, record_id)).encode()
    body = json.dumps(payload, separators=(",", ":")).encode()
    body += b" " * (-len(body) % PAD_TO)
    return nonce + AESGCM(_record_key(secret, kind, record_id)).encrypt(nonce, body, aad)


def unseal(
    secret: bytes, kind: str, record_id: str, blob: bytes, key: str | None = None
) -> dict[str, Any]:
    aad = (key or store_key(kind, record_id)).encode()
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
    """Seal-on-write, unseal-on-read over any KeyValueStore.

    The `*_op` methods and `opened` let a caller put several records' commands into one
    `KeyValueStore.batch` (one round trip) and open the replies afterwards.
    """

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def put(
        self, secret: bytes, kind: str, record_id: str, payload: dict[str, Any], ttl: int
    ) -> None:
        key = store_key(kind, record_id)
        self.store.put(key, seal(secret, kind, record_id, payload, key), ttl)

    def get(self, secret: bytes, kind: str, record_id: str) -> dict[str, Any] | None:
        key = store_key(kind, record_id)
        blob = self.store.get(key)
        return None if blob is None else unseal(secret, kind, record_id, blob, key)

    def take(self, secret: bytes, kind: str, record_id: str) -> dict[str, Any] | None:
        key = store_key(kind, record_id)
        blob = self.store.take(key)
        return None if blob is None else unseal(secret, kind, record_id, blob, key)

    def delete(self, kind: str, record_id: str) -> None:
        self.store.delete(store_key(kind, record_id))

    # -- for batches ----------------------------------------------------------------------------
    @staticmethod
    def put_op(
        secret: bytes, kind: str, record_id: str, payload: dict[str, Any], ttl: int
    ) -> StoreOp:
        key = store_key(kind, record_id)
        return StoreOp.put(key, seal(secret, kind, record_id, payload, key), ttl)

    @staticmethod
    def get_op(kind: str, record_id: str) -> StoreOp:
        return StoreOp.get(store_key(kind, record_id))

    @staticmethod
    def take_op(kind: str, record_id: str) -> StoreOp:
        return StoreOp.take(store_key(kind, record_id))

    @staticmethod
    def delete_op(kind: str, record_id: str) -> StoreOp:
        return StoreOp.delete(store_key(kind, record_id))

    @staticmethod
    def opened(
        secret: bytes, kind: str, record_id: str, reply: StoreReply
    ) -> dict[str, Any] | None:
        """A `get_op`'s (or `take_op`'s) reply opened as `get` (`take`) would return it."""
        if reply is None:
            return None
        if not isinstance(reply, bytes):
            raise TypeError("a sealed record's reply is bytes")
        return unseal(secret, kind, record_id, reply)
