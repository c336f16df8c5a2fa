"""A new purpose stops a release: the write that takes an attribute whose purpose changed out of
every school's choice (core/declarations.py, core/purposes.py), and the read that tells a
school's page what was taken out and why.

The narrowed choice is written as a new version of each such school's policy, in the
transaction of the declaration change, with the broker as its author (`purpose-change:<the
declaration version>`). So the login path stays as it was (release = school policy ∩ declared,
reading.py), the history says when and why the release stopped, and a receipt's policy version
still names exactly what that login could release. The version keeps the declaration version
the school accepted: the rest of its choice counts as before, and a change that also needs every
school to confirm (an attribute added) still does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.core.declarations import compare_declarations
from broker.core.model import Declaration
from broker.core.purposes import purpose_change_author, purpose_change_version
from broker.registry.admin_tables import DeclarationChangeRow, declarations_from_json
from broker.registry.policy_change import PolicyChange
from broker.registry.tables import PolicyChangeRow, ReleasePolicyRow


def drop_released(
    session: Session,
    service_id: str,
    attributes: frozenset[str],
    version: int,
    at: datetime,
) -> list[tuple[str, tuple[str, ...]]]:
    """Take `attributes` (their purpose changed in declaration `version`) out of every school's
    choice for `service_id` that holds one; (school id, the attributes taken out) per school.

    The caller holds the service row's lock (taken first, as every writer of the service's
    policies takes it: set_policy reads a school's choice only after it), so no choice of this
    service changes meanwhile. The policies are locked too: a school's removal, which deletes
    them without that lock, waits for this or this for it, and then finds them gone."""
    if not attributes:
        return []
    rows = session.scalars(
        select(ReleasePolicyRow)
        .where(ReleasePolicyRow.service_id == service_id)
        .order_by(ReleasePolicyRow.school_id)
        .with_for_update()
    )
    dropped = []
    for row in rows:
        taken = attributes.intersection(row.attributes)
        if not taken:
            continue
        stop_release(session, row, taken, version, at)
        dropped.append((row.school_id, tuple(sorted(taken))))
    return dropped


def stop_release(
    session: Session, row: ReleasePolicyRow, taken: frozenset[str], version: int, at: datetime
) -> None:
    """One more version of the school's choice `row`, without `taken`, by the purpose change of
    declaration `version` (the portal's and an import's stops alike), with its history line."""
    row.version += 1
    row.attributes = sorted(set(row.attributes) - taken)
    row.changed_at = at
    row.changed_by = purpose_change_author(version)
    # `active` and `declaration_version` stay: whether the school switched the service on,
    # and which declarations it accepted for the rest of its choice.
    session.add(PolicyChangeRow.recording(row))


def purposes_changed_since(session: Session, service_id: str, accepted: int) -> dict[str, int]:
    """The attributes whose purpose changed in a declaration version after `accepted` (the
    version a choice was made under), each with the last version that changed it, as far as
    the service's declaration history holds both sides of a change: a choice of a registry
    import made under an older purpose does not release them (bulk_import.py), and the stop
    is recorded as that version's (`purpose-change:<version>`). A version the history lacks
    (a registry rebuilt from a file holds a service's versions from the import on) cannot be
    compared and counts for nothing."""
    rows = session.scalars(
        select(DeclarationChangeRow)
        .where(
            DeclarationChangeRow.service_id == service_id,
            DeclarationChangeRow.version >= accepted,
        )
        .order_by(DeclarationChangeRow.version)
    )
    versions = {row.version: declarations_from_json(row.declarations) for row in rows}
    changed: dict[str, int] = {}
    for version, declarations in versions.items():
        before = versions.get(version - 1)
        if before is not None:
            for attribute in compare_declarations(before, declarations).purpose_changed:
                changed[attribute] = version
    return changed


@dataclass(frozen=True)
class PurposeDrop:
    """One attribute the broker took out of a school's choice because its purpose changed:
    in declaration version `version`, from the purpose `before` to `after` (None where the
    declaration history does not hold that version), the release stopping at `stopped_at`."""

    attribute: str
    version: int
    stopped_at: datetime
    before: Declaration | None
    after: Declaration | None


def purpose_drops(
    history: list[PolicyChange], declarations: dict[int, tuple[Declaration, ...]]
) -> list[PurposeDrop]:
    """What the broker took out of one school's choice since the school last chose itself:
    `history` is the choice's history, oldest first; `declarations` the service's declarations
    by version. Empty once the school saved its choice again (it then chose knowingly)."""
    drops: list[PurposeDrop] = []
    for index in range(len(history) - 1, 0, -1):
        change, previous = history[index], history[index - 1]
        version = purpose_change_version(change.changed_by)
        if version is None:
            break
        for attribute in sorted(previous.attributes - change.attributes):
            drops.append(
                PurposeDrop(
                    attribute,
                    version,
                    change.changed_at,
                    _declared(declarations.get(version - 1, ()), attribute),
                    _declared(declarations.get(version, ()), attribute),
                )
            )
    return drops


def _declared(declarations: tuple[Declaration, ...], attribute: str) -> Declaration | None:
    return next((d for d in declarations if d.attribute == attribute), None)
