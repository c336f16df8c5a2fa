"""Readiness: can this worker serve logins right now? Each check is a small named function; the
first line of `/readyz` names the ones that failed, nothing more (no addresses, no reasons that
could quote a URL or a password: those go to the log as error classes).

Readiness is about this worker's dependencies. A load balancer that sees 503 stops sending it
students; `/healthz` (process alive) stays 200, so the process is not restarted for a Redis
outage it cannot fix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from broker.core.chain_move import open_moves
from broker.core.errors import BrokerError
from broker.core.pseudonym_rotation import key_versions_for
from broker.registry.errors import RegistryReadOnly
from broker.registry.migration import SchemaFit, schema_fit
from broker.web.wiring import Broker

log = logging.getLogger("broker.web.health")

Check = Callable[[Broker], None]


# The key of the store check's probe write: one small key, gone after a few seconds.
READY_PROBE_KEY = "readyz"
READY_PROBE_TTL_SECONDS = 5


def check_store(b: Broker) -> None:
    """Redis (or the memory store) takes a write within its one-second timeout: one `SET EX`,
    in the round trip a PING took, so a Redis that answers but refuses writes (full under
    `noeviction`, a replica that is read-only) is not ready either; `StoreUnavailable` if not."""
    b.store.put(READY_PROBE_KEY, b"1", READY_PROBE_TTL_SECONDS)


# A schema this version cannot serve on, by how it stands to it: the name its failure takes.
SCHEMA_CHECKS = {
    SchemaFit.TOO_NEW: "schema_too_new",
    SchemaFit.BEHIND: "schema_behind",
    SchemaFit.NONE: "schema_behind",
}


class NotServable(BrokerError):
    """The registry answered, but this version cannot serve on it: the registry check fails
    under the name of the problem (`registry_read_only`, `SCHEMA_CHECKS`) instead of its own."""

    def __init__(self, check: str, detail: str = "") -> None:
        super().__init__(detail or check)
        self.check = check


class SchemaNotServable(NotServable):
    """A schema this version cannot serve on (`SCHEMA_CHECKS`)."""

    def __init__(self, fit: SchemaFit) -> None:
        super().__init__(SCHEMA_CHECKS[fit], f"registry schema: {fit.value}")


def check_registry(b: Broker) -> None:
    """The registry database answers (a direct query, past this worker's cached view), on a
    schema this version can serve on: its own newest, or a newer one that declares this
    version able to run on it. It can move under a running worker: an incompatible release
    migrated while old workers serve (`schema_too_new`), a back-up of an older revision
    restored (`schema_behind`). One statement for both (`schema_in_use`): no round trip more.
    A PostgreSQL that answers but takes no writes fails every login's receipt: not ready
    (`registry_read_only`), read in the same statement."""
    try:
        in_use = b.registry.schema_in_use()
    except RegistryReadOnly as error:
        raise NotServable("registry_read_only") from error
    fit = schema_fit(*in_use)
    if fit in SCHEMA_CHECKS:
        raise SchemaNotServable(fit)


def check_keys(b: Broker) -> None:
    """The signing keys (every published one of the key set) are readable, and the pseudonym key
    set and (when configured) the OpenID provider's keys are loaded."""
    for generation in b.keys.current().published:
        for path in (generation.files.saml_key, generation.files.saml_cert):
            if not os.access(path, os.R_OK):
                raise BrokerError("a SAML signing key file is not readable")
    if not b.settings.pseudonym_keys.current:
        raise BrokerError("no current pseudonym key")
    if b.oidc_front is not None and not b.oidc_front.jwks().get("keys"):
        raise BrokerError("the OpenID provider has no signing key")


def check_pseudonym_keys(b: Broker) -> None:
    """Every pseudonym key version a chain in the registry derives with is in this worker's
    key set (read again from the file if need be): a host whose copy of the key set lacks a
    version that `pseudonym-key rotate` gave a chain would fail that chain's logins."""
    now, keys = datetime.now(UTC), b.flow.keys.key_set()
    records = b.registry.pseudonym_keys.all()
    needed = frozenset(v for r in records for v in key_versions_for(keys, r, now).needed)
    # A moved service's open window derives its previous pseudonym with the version recorded
    # for the chain it left (core/chain_move.py); from the worker's view, as its logins read it
    # (a schema gone back under the worker is the registry check's to report, not this one's).
    needed |= {m.from_version for m in open_moves(b.view.chain_moves(), now)}
    b.flow.keys.key_set_holding(needed)


def check_metadata(b: Broker) -> None:
    """The worker's view of the registry is current and the schools' and services' SAML
    metadata in it loads: pysaml2's IdP and SP are built for the registry's newest generation
    (a metadata document that no longer loads would fail every SAML login)."""
    b.view.generation()
    _ = b.saml_entities.server, b.saml_entities.client


CHECKS: dict[str, Check] = {
    "store": check_store,
    "registry": check_registry,
    "keys": check_keys,
    "pseudonym_keys": check_pseudonym_keys,
    "metadata": check_metadata,
}


def failed_checks(b: Broker, checks: dict[str, Check] | None = None) -> list[str]:
    """The names of the checks that failed, in order."""
    failed = []
    for name, check in (checks or CHECKS).items():
        try:
            check(b)
        except Exception as error:
            # A probe has one job: any failure means "not ready". Broad on purpose (pysaml2 and
            # the database drivers raise their own types); the class name only, as everywhere.
            failed_as = error.check if isinstance(error, NotServable) else name
            log.warning("not ready check=%s error=%s", failed_as, type(error).__name__)
            failed.append(failed_as)
    return failed
