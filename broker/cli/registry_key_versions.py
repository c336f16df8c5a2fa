"""Chains' pseudonym key versions in a registry file (`[[pseudonym_key_versions]]`).

They are exported because a registry rebuilt from the file without them would put every rotated
chain back on the key set's `current` version, silently changing its students' pseudonyms. An
import adds a record the registry lacks and leaves an equal one alone; it never *moves* a
chain's key version: a record that differs from the registry's is refused (export again, or use
`ketenbroker pseudonym-key`), because an older file would otherwise undo a rotation.
"""

from __future__ import annotations

from datetime import datetime

from broker.cli.registry_entries import Entries, Problems, list_of
from broker.core.pseudonym_rotation import ChainKeyVersion, imported_window_problem
from broker.registry.snapshot import Snapshot

KIND = "pseudonym_key_versions"
KEYS = {"chain", "current_version", "previous_version", "window_ends"}
MAX_CHAIN = 100


def key_version_lines(record: ChainKeyVersion) -> list[str]:
    lines = ["", f"[[{KIND}]]", f'chain = "{record.chain}"']
    lines.append(f"current_version = {record.current_version}")
    if record.previous_version is not None and record.window_ends is not None:
        lines.append(f"previous_version = {record.previous_version}")
        lines.append(f"window_ends = {record.window_ends.isoformat()}")
    return lines


def _record(entry: Entries) -> ChainKeyVersion | None:
    chain = entry.text("chain", limit=MAX_CHAIN)
    current = entry.number("current_version", 1)
    previous = entry.number("previous_version", 1) if entry.has("previous_version") else None
    ends = entry.table.get("window_ends")
    if ends is not None and not (isinstance(ends, datetime) and ends.tzinfo is not None):
        entry.wrong("window_ends", "must be a date and time with its offset (2027-01-12T20:00Z)")
        return None
    if (previous is None) != (ends is None):
        entry.wrong("window_ends", "give previous_version and window_ends together, or neither")
        return None
    return ChainKeyVersion(chain, current, previous, ends) if chain else None


def read_key_versions(
    document: dict[str, object],
    problems: Problems,
    current: Snapshot,
    after: Snapshot,
    now: datetime,
) -> tuple[ChainKeyVersion, ...]:
    """The file's records, checked: unique, naming a chain (or a service in no chain) of the
    file or the registry, and not contradicting the registry's record for that chain; a new
    one's window ends at most 366 days from now (`window_end_problem`, as `pseudonym-key rotate`
    opens one and as the import's transaction checks again). A record
    the registry holds as it is passes without a chain: a removed chain's or service's, which
    the registry keeps (and exports) so that the id registered again keeps its pseudonyms."""
    chains = {c.id for c in (*current.chains, *after.chains)}
    services = (*current.services, *after.services)
    chains |= {s.service.pseudonym_chain for s in services if not s.service.chain_id}
    held = {r.chain: r for r in current.key_versions}
    found: dict[str, ChainKeyVersion] = {}
    for entry in list_of(document, KIND, problems, KEYS):
        record = _record(entry)
        if record is None:
            continue
        registry = held.get(record.chain)
        if record.chain in found:
            entry.wrong("chain", f"{record.chain!r} appears twice in the file")
        elif record.chain not in chains and registry != record:
            entry.wrong("chain", f"no chain or service in no chain {record.chain!r}")
        elif registry is not None and registry != record:
            entry.wrong(
                "chain",
                f"the registry has {record.chain} at key version {registry.current_version} "
                "(or another window); an import never moves a chain's pseudonym key: export "
                "again, or use `ketenbroker pseudonym-key`",
            )
        elif registry is None and (problem := imported_window_problem(record, now)):
            entry.wrong("window_ends", problem)
        else:
            found[record.chain] = record
    return tuple(found.values())
