"""The operator's attention report (core/attention.py) from the registry and the metadata in
force: what the operator portal's "Needs attention" page and `ketenbroker registry problems`
show, both from `gather_attention_report` here; what each kind and reason means and what to do
about it is web/attention_words.py's.

The facts come from where their rules already live: the metadata in force from the registry
(`school_metadata`, `service_metadata`: a source's copy, else the registered one), what each copy
names that the login and logout paths refuse from saml/metadata_report.py `refused_endpoints`,
which entities a metadata source holds, and which its feed held but left out, from the
registry's federation copies, the sources' states from sources.py `source_states` (what
`metadata status` and the `ketenbroker_metadata_source_state` gauge show), the secrets' counts
from the registry (what `registry status` shows).

With thousands of schools, reading every school row and every copy in force took most of a
page's time (docs/performance.md). Those facts change only with the registry's generation (every
write bumps it, a source's refresh too) or when a source's copy in use passes its validUntil
(`metadata_expiry`), so a `Memo` keeps them until either happens; the sources' states, the
members their last downloads left out (an unchanged feed replaces them without a bump: a
member's own validUntil passes with the clock) and the secrets' counts (sealing bumps no
generation) are read fresh on every report.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from broker.config import Settings
from broker.core.attention import (
    SHOWN,
    AttentionReport,
    Entry,
    Facts,
    Rule,
    attention_report,
)
from broker.core.federation import left_out_in
from broker.operations.sources import source_states
from broker.registry import SqlRegistry
from broker.saml.metadata_changes import signing_valid_until
from broker.saml.metadata_check import RefusedEndpoint
from broker.saml.metadata_report import CopyFindings, endpoint_findings


@dataclass(frozen=True)
class _Held:
    """The registry's facts of one generation; the sources' states and the secrets' counts in
    them are placeholders, read fresh for every report."""

    generation: int
    until: datetime | None  # the next validUntil of a copy in use: the facts hold until then
    facts: Facts


@dataclass
class Memo:
    """What one process keeps between reports (one per app): the registry's facts of the last
    generation, and the parsed copies' findings (a new generation re-parses only the copies
    that changed)."""

    idp: CopyFindings[tuple[RefusedEndpoint, ...]] = field(
        default_factory=lambda: endpoint_findings("idp")
    )
    sp: CopyFindings[tuple[RefusedEndpoint, ...]] = field(
        default_factory=lambda: endpoint_findings("sp")
    )
    idp_signing: CopyFindings[datetime | None] = field(
        default_factory=lambda: CopyFindings(partial(signing_valid_until, role="idp"))
    )
    sp_signing: CopyFindings[datetime | None] = field(
        default_factory=lambda: CopyFindings(partial(signing_valid_until, role="sp"))
    )
    held: _Held | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def gather_attention_report(
    settings: Settings,
    registry: SqlRegistry,
    now: datetime,
    memo: Memo | None = None,
    shown: int | None = SHOWN,
) -> AttentionReport:
    """What needs the operator's attention now, gathered from the registry (a few queries; one
    when `memo` holds this generation's facts); `shown` entries per kind (None: all). Opens no
    secret but the schools' client secrets, as every load of the schools does (an unreadable
    one is a finding)."""
    left_out = registry.federation.left_out()
    facts = replace(
        _registry_facts(registry, now, memo or Memo()),
        sources=source_states(settings, registry, now),
        idp_left_out=left_out_in(left_out, "idp"),
        sp_left_out=left_out_in(left_out, "sp"),
        secrets_in_clear=registry.secrets_in_clear(),
        sealed_only=registry.sealed_only_since() is not None,
        now=now,
        school_refresh=registry.refresh_records("idp"),
        service_refresh=registry.refresh_records("sp"),
    )
    return attention_report(facts, shown)


def rule_entries(
    rules: Sequence[Rule], registry: SqlRegistry, now: datetime, memo: Memo
) -> list[list[Entry]]:
    """Each rule's entries alone, in `rules`' order (`school_certificate_ending`,
    `school_metadata_not_refreshed`, and the services' two), from the memo's facts and the
    refresh records read once for all of them: what the gauges count at every scrape
    (web/metadata_metrics.py), three queries while the memo holds the generation."""
    facts = replace(
        _registry_facts(registry, now, memo),
        now=now,
        school_refresh=registry.refresh_records("idp"),
        service_refresh=registry.refresh_records("sp"),
    )
    return [list(rule(facts)) for rule in rules]


def _registry_facts(registry: SqlRegistry, now: datetime, memo: Memo) -> Facts:
    generation = registry.generation()
    if (held := _still(memo.held, generation, now)) is not None:
        return held.facts
    with memo.lock:  # one reader at a time builds them; the others wait and take its result
        if (held := _still(memo.held, generation, now)) is not None:
            return held.facts
        # Generation first, then the rows: a change in between only makes the next report
        # read them again, never keeps older rows under a newer generation.
        in_force = registry.school_metadata()
        ends = memo.idp_signing.of(in_force)
        sp_in_force = registry.service_metadata(approved_only=False)
        sp_ends = memo.sp_signing.of(sp_in_force)
        facts = Facts(
            schools=registry.schools(),
            services=registry.all_services(),
            naming_idps=registry.idps_naming_school(),
            idp_endpoints=memo.idp.of(in_force),
            sp_endpoints=memo.sp.of(sp_in_force),
            sources=(),
            secrets_in_clear=0,
            sealed_only=False,
            idp_held=frozenset(registry.federation.sources_of("idp")),
            sp_held=frozenset(registry.federation.sources_of("sp")),
            chains=registry.chains(),
            idp_signing_until={k: until for k, until in ends.items() if until is not None},
            sp_signing_until={k: until for k, until in sp_ends.items() if until is not None},
        )
        memo.held = _Held(generation, registry.metadata_expiry(), facts)
        return facts


def _still(held: _Held | None, generation: int, now: datetime) -> _Held | None:
    """`held` while it is the facts of `generation` and no copy of it has expired since."""
    if held is None or held.generation != generation:
        return None
    return held if held.until is None or now < held.until else None
