"""The short-lived shared state (login records, SSO sessions, replay cache) behind one interface.

Values are opaque bytes on purpose. The login layer seals everything it keeps about a student with
AES-GCM under a per-session key that only the browser's cookie carries, and files it under a hash
of that cookie. So the store never sees readable personal data and must not need to: it does not
parse, log or transform values, and it knows nothing about what a key means. Keeping it dumb is
what lets a dump of Redis be harmless and lets any worker finish a login another one started.

`open_store` picks the implementation from a URL: `memory://` for the embedded single-process
default, `redis://`, `rediss://`, `unix://`, `redis+sentinel://` or `redis+cluster://` for
production.
"""

from __future__ import annotations

from broker.store.memory import MemoryStore
from broker.store.opener import open_store
from broker.store.redis_store import RedisStore

__all__ = ["MemoryStore", "RedisStore", "open_store"]
