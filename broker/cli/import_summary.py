"""What `registry import` prints, for the import and its `--dry-run` alike: each entry it adds,
changes or removes, each school's release a new purpose stops, then per kind how many it adds,
changes (removes) and leaves as they are, and the ids of the registry's entries the file does not
name (an import never removes them, but for the ended move record of a service it puts in another
chain: bulk_import.py). Ids of organisations and their entries (and attribute names) only: the
registry holds no personal data."""

from __future__ import annotations

from collections.abc import Callable

from broker.cli.counts import counted, listed
from broker.registry.bulk_import import ImportReport
from broker.registry.snapshot import Snapshot


def _idps_saying(snapshot: Snapshot) -> list[str]:
    # Registry snapshots say True or None; a file also says False (clear it). The IdPs of
    # `idps_naming_school` say True (no school is on them in the registry's).
    said = {e.school.idp_entity_id for e in snapshot.schools if e.idp_names_school is not None}
    return sorted(said | set(snapshot.idps_naming_school))


# Each kind: the word its report lines start with, its plural, and its ids in a snapshot.
KINDS: tuple[tuple[str, str, Callable[[Snapshot], list[str]]], ...] = (
    ("chain", "chains", lambda s: [c.id for c in s.chains]),
    ("publisher", "publishers", lambda s: [p.id for p in s.publishers]),
    ("school", "schools", lambda s: [e.school.id for e in s.schools]),
    ("service", "services", lambda s: [e.service.id for e in s.services]),
    ("policy", "policies", lambda s: [f"{p.school_id}/{p.service_id}" for p in s.policies]),
    (
        "pseudonym key version",
        "pseudonym key versions",
        lambda s: [k.chain for k in s.key_versions],
    ),
    ("chain move", "chain moves", lambda s: [m.service_id for m in s.chain_moves]),
    # Whether an IdP's logins name their school, where the file says (or the registry holds)
    # so; its lines read "IdP <entity id> names school" (or "need not name school").
    ("IdP", "IdP school-naming rules", _idps_saying),
)


def import_summary(
    report: ImportReport, file: Snapshot, registry: Snapshot, *, done: bool
) -> list[str]:
    """The lines to print: `registry` is what the registry held before the import; `done`
    off (a dry run) says "would add" where the import says "added"."""
    added, changed, removed = (
        ("added   ", "changed ", "removed ")
        if done
        else ("would add   ", "would change", "would remove")
    )
    lines = [f"{added} {label}" for label in report.added]
    lines += [f"{changed} {label}" for label in report.changed]
    lines += [f"{removed} {label}" for label in report.removed]
    # A new purpose stops a school's release of that attribute (bulk_import.py).
    stopped = "stopped " if done else "would stop  "
    lines += [
        f"{stopped} {', '.join(sorted(names))} in policy {pair} (new purpose)"
        + _required(report.dropped_required.get(pair), pair, done=done)
        for pair, names in sorted(report.dropped.items())
    ]
    for word, words, ids in KINDS:
        in_file = set(ids(file)) | {
            label.removeprefix(f"{word} ") for label in report.removed if _kind(label) == word
        }
        elsewhere = [entry_id for entry_id in ids(registry) if entry_id not in in_file]
        counts = [_of_kind(labels, word) for labels in (report.added, report.changed, report.same)]
        gone = _of_kind(report.removed, word)
        if not (any(counts) or gone or elsewhere):
            continue
        line = f"{words}: {counts[0]} added, {counts[1]} changed, "
        line += f"{gone} removed, " if gone else ""
        line += f"{counts[2]} unchanged"
        if elsewhere:
            line += f"; {counted(len(elsewhere), 'other')} kept ({listed(elsewhere)})"
        lines.append(line)
    total = f"{len(report.added)} added, {len(report.changed)} changed, "
    total += f"{len(report.removed)} removed, " if report.removed else ""
    lines.append(f"{total}{report.unchanged} unchanged.")
    return lines


def _required(names: frozenset[str] | None, pair: str, *, done: bool) -> str:
    if not names:
        return ""
    school, _, service = pair.partition("/")
    are = "are" if done else "would be"
    return (
        f"; {', '.join(sorted(names))} required: logins of {school} to {service} {are} "
        "refused until it shares it again"
    )


def _kind(label: str) -> str | None:
    """The kind a label ("<kind> <id>") is of: the longest kind it starts with, since kinds may
    hold spaces and one may start another ("chain" and "chain move")."""
    kinds = [word for word, _, _ in KINDS if label.startswith(f"{word} ")]
    return max(kinds, key=len, default=None)


def _of_kind(labels: list[str], word: str) -> int:
    return sum(1 for label in labels if _kind(label) == word)
