"""Ports: what the core and the login flow need from the outside world, as Protocols.

`broker/registry` implements `RegistryReader`; `broker/store` implements `KeyValueStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from broker.core.chain_move import ChainMove
from broker.core.model import Chain, ReleasePolicy, School, Service
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.core.receipts import Receipt, ReceiptContent


class RegistryReader(Protocol):
    """Read access to schools, chains, services and release policies (the login path's view)."""

    def school(self, school_id: str) -> School | None: ...

    def schools_by_idp(self, idp_entity_id: str) -> tuple[School, ...]:
        """Every school registered with this IdP entity id (or OpenID issuer), by id; empty when
        none. Several for a SAML IdP a school board runs for its schools: no caller may pick
        one of them by itself (core/shared_idp.py says what a login through it must carry)."""
        ...

    def idp_names_school(self, idp_entity_id: str) -> bool:
        """Whether the registry requires logins through this IdP to name their school (a
        school board's IdP: core/shared_idp.py). Kept by the registry, not counted: it stays
        when schools leave the IdP."""
        ...

    def schools(self) -> list[School]: ...

    def chain(self, chain_id: str) -> Chain | None: ...

    def service(self, service_id: str) -> Service | None: ...

    def service_by_entity_id(self, entity_id: str) -> Service | None: ...

    def services(self) -> list[Service]: ...

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        """The current policy; the default (pseudonym only, version 0) when none was set. A
        `PolicyRefusal` (the registry's ServiceSwitchedOff) when the school switched it off."""
        ...

    def pseudonym_key_version(self, chain: str) -> ChainKeyVersion | None:
        """The key version record of one pseudonym chain (a chain id or `service:<id>`);
        None for a chain never rotated. A rotation changes `generation`."""
        ...

    def chain_move(self, service_id: str) -> ChainMove | None:
        """The service's chain move record (core/chain_move.py); None when it was never moved
        with a window. A move changes `generation`."""
        ...

    def school_metadata(self) -> dict[str, str]:
        """SAML metadata XML of every school IdP, by entity id."""
        ...

    def service_metadata(self) -> dict[str, str]:
        """SAML metadata XML of every SAML service, by entity id."""
        ...

    def metadata_expiry(self) -> datetime | None:
        """When the next federation metadata copy in use passes its validUntil (None: never).

        Expiry happens by the clock, not by a write: adapters rebuild their parsed metadata
        when this moment passes, as they do when `generation` changes.
        """
        ...

    def generation(self) -> int:
        """A number that changes whenever schools, services or metadata change (not policies).

        Adapters cache parsed metadata and rebuild it when this changes, so a new school works
        without a restart.
        """
        ...


class PseudonymKeySource(Protocol):
    """The pseudonym key set as this process holds it (a file, or an environment value)."""

    def key_set(self) -> PseudonymKeys: ...

    def key_set_holding(self, versions: frozenset[int]) -> PseudonymKeys:
        """The key set with every version in `versions`. A version added after this process
        started is read then (a rotation needs no restart); `ConfigurationError` when the key
        set really lacks one."""
        ...


# The TTL of the store's marks of its own history (the replay epochs, the server identity,
# when OIDC records began to be trusted again): they must outlive every record they judge, and
# every key has a TTL, so ten years.
HISTORY_TTL_SECONDS = 10 * 365 * 24 * 3600

StoreOperation = Literal["put", "get", "take", "add_if_absent", "replace_if_same", "delete"]


@dataclass(frozen=True, slots=True)
class StoreOp:
    """One single-key command of a `KeyValueStore.batch`: its name, key, for `put`,
    `add_if_absent` and `replace_if_same` the value and TTL, and for `replace_if_same` the
    bytes the key must still hold. Build them with the helpers below."""

    operation: StoreOperation
    key: str
    value: bytes = b""
    ttl_seconds: int = 0
    expected: bytes = b""

    @classmethod
    def put(cls, key: str, value: bytes, ttl_seconds: int) -> StoreOp:
        return cls("put", key, value, ttl_seconds)

    @classmethod
    def get(cls, key: str) -> StoreOp:
        return cls("get", key)

    @classmethod
    def take(cls, key: str) -> StoreOp:
        return cls("take", key)

    @classmethod
    def add_if_absent(cls, key: str, value: bytes, ttl_seconds: int) -> StoreOp:
        return cls("add_if_absent", key, value, ttl_seconds)

    @classmethod
    def replace_if_same(
        cls, key: str, expected: bytes | None, value: bytes, ttl_seconds: int
    ) -> StoreOp:
        """`KeyValueStore.replace_if_same`; with `expected` None, `add_if_absent`."""
        if expected is None:
            return cls.add_if_absent(key, value, ttl_seconds)
        return cls("replace_if_same", key, value, ttl_seconds, expected)

    @classmethod
    def delete(cls, key: str) -> StoreOp:
        return cls("delete", key)


def key_bytes(key: str) -> bytes:
    """A store key (or a part of one) as bytes, for a store that keeps bytes (Redis), the same
    for every key: its UTF-8, with a lone surrogate passed through as its own three bytes. Any
    `str` is a key, also one that no UTF-8 can spell: a JSON string from outside may hold a lone
    surrogate (`"\\udc80"`), and strict UTF-8 would raise on it in one store where the other
    takes it. One `str` to one byte string and back: no two keys become one."""
    return key.encode("utf-8", "surrogatepass")


# A batch's replies, one per operation: None for put/delete, the value (or None) for get/take,
# True/False for add_if_absent and replace_if_same, as the single calls return them.
StoreReply = bytes | bool | None


class KeyValueStore(Protocol):
    """Short-lived shared state: login records, SSO sessions, replay cache, rate-limit counters.

    Every method raises `StoreUnavailable` when the backing store cannot be reached; callers
    never treat that as "absent".
    """

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def take(self, key: str) -> bytes | None:
        """Get and delete atomically: of many concurrent callers at most one gets the value."""
        ...

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        """Set only when the key is absent; True when this call set it (replay cache, locks)."""
        ...

    def replace_if_same(
        self, key: str, expected: bytes | None, value: bytes, ttl_seconds: int
    ) -> bool:
        """Set `value` only while the key still holds exactly the bytes `expected` (with
        `expected` None: only while it is absent, `add_if_absent`), in one atomic step; True
        when this call set it. A compare-and-set: a caller that read a record, changed it and
        writes it back whole learns (False) that another client wrote it in between, and reads
        it again rather than dropping that client's change (login/participants.py)."""
        ...

    def renew(self, key: str, ttl_seconds: int) -> bytes | None:
        """The value at `key`, its expiry set to `ttl_seconds` from now, in one atomic step;
        None, and nothing written, when the key is absent. A get then a put would bring back a
        key deleted between the two (a session closed while a request renewed it)."""
        ...

    def delete(self, key: str) -> None: ...

    def count(self, key: str, window_seconds: int) -> int:
        """Add one to the counter at `key` and return its new value. A counter starts at 1 and
        vanishes `window_seconds` after its first count (a fixed window: rate limits); the
        start and the increment are one atomic step, so no counter is left without its end."""
        ...

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        """Run `operations` in this order; the replies are what each single call would have
        returned. They never run out of order (the replay cache's epoch rule relies on that,
        replay.py); whether another client's command may run between two of them, and whether
        they share one round trip, `atomic_batches` says. The arguments are all checked before
        any operation runs; a failure part-way leaves the earlier operations done, as a
        sequence of single calls would (`StoreUnavailable`): nothing is rolled back."""
        ...

    @property
    def atomic_batches(self) -> bool:
        """True when a `batch` is one step: one round trip, and no other client's command runs
        between its operations (one Redis server or a Sentinel's master: one script; the
        memory store: one lock). False on a Redis Cluster, where a batch's keys may live on
        several masters and it is single calls in order: there a caller whose later operation
        must only run if an earlier one won a race runs them as two steps
        (`ReplayGuard.first_use`)."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None:
        """Let go of the connections (a command or a test that is done with the store); what
        the store holds stays. Using the store afterwards is a caller's bug."""
        ...


class ReceiptBook(Protocol):
    """Where the login path files receipts (core/receipts.py); the registry implements it."""

    def append(self, content: ReceiptContent) -> Receipt:
        """Seal `content` into its school's chain and store it; `StoreUnavailable` when the
        database cannot be reached (the login then stops: no receipt, no response)."""
        ...

    def latest_for(
        self, school_id: str, subjects: tuple[str, ...], service_id: str
    ) -> Receipt | None: ...

    def notice_mode(self, school_id: str, service_id: str) -> str:
        """`session` (the default) or `changes` (registry/receipts.py)."""
        ...
