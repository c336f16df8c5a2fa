"""Pick the store implementation from the configured URL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from broker.core.errors import ConfigurationError
from broker.core.ports import KeyValueStore, StoreOp
from broker.store.memory import MemoryStore
from broker.store.redis_clients import CLUSTER_SCHEME, SENTINEL_SCHEME
from broker.store.redis_store import RedisStore

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", SENTINEL_SCHEME, CLUSTER_SCHEME})
SUPPORTED = "memory://, redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"


def open_store(
    url: str, *, on_new_history: Callable[[], Sequence[StoreOp]] | None = None
) -> KeyValueStore:
    """`memory://` → `MemoryStore`; `redis://`, `rediss://`, `unix://`, `redis+sentinel://`,
    `redis+cluster://` → `RedisStore` (URL forms in broker/store/redis_clients.py).

    `on_new_history`: `RedisStore`'s (writes for a Redis that may have lost or brought back
    keys); the memory store never outlives its process.
    Opens no connection: a Redis that is down shows up as `StoreUnavailable` on first use.
    """
    # Only the scheme is ever echoed: the rest of the URL may carry a password.
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        # urlsplit refuses e.g. an unclosed IPv6 bracket; its message would quote the URL.
        raise ConfigurationError("the store URL cannot be parsed") from None
    if scheme == "memory":
        return MemoryStore()
    if scheme in REDIS_SCHEMES:
        return RedisStore(url, on_new_history=on_new_history)
    if not scheme:
        raise ConfigurationError(f"the store URL has no scheme; use {SUPPORTED}")
    raise ConfigurationError(f"unsupported store URL scheme {scheme!r}; use {SUPPORTED}")
