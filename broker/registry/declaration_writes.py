"""Replacing a service's declarations: the one write behind the publisher portal, and
`registry import`, so both keep the history, the re-confirmation rule and the purpose rule the
same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from broker.core.declarations import compare_declarations
from broker.core.model import Declaration
from broker.registry.admin_tables import DeclarationChangeRow, declarations_json
from broker.registry.purpose_drops import drop_released
from broker.registry.tables import DeclarationRow, ServiceRow


@dataclass(frozen=True)
class DeclarationsReplaced:
    """What saving a declaration change did to schools' choices: the attributes whose purpose
    changed (`purpose_changed`) and, per school that released one, which it no longer
    releases (`dropped`: school id, attribute names)."""

    version: int
    purpose_changed: frozenset[str]
    dropped: tuple[tuple[str, tuple[str, ...]], ...]


def replace_declarations(
    session: Session,
    row: ServiceRow,
    declarations: tuple[Declaration, ...],
    version: int,
    changed: tuple[datetime, str],
) -> DeclarationsReplaced:
    """Save `declarations` as `version` of `row`'s, with a line in the history (`changed`: when,
    by whom). Schools' choices keep counting unless the change needs them to confirm again
    (core/declarations.py): only then does `reconfirm_version` move to `version`. An attribute
    whose purpose changed is taken out of every school's choice that released it
    (purpose_drops.py). The caller locked `row` (database.locked_row) before reading it."""
    old = tuple(d.to_declaration() for d in row.declarations)
    diff = compare_declarations(old, declarations)
    if diff.needs_confirmation:
        row.reconfirm_version = version
    # Delete first: the new rows may reuse the old primary keys (service, attribute).
    row.declarations.clear()
    session.flush()
    row.declarations = DeclarationRow.rows_of(declarations)
    row.declaration_version = version
    session.add(
        DeclarationChangeRow(
            service_id=row.id,
            version=version,
            declarations=declarations_json(declarations),
            changed_at=changed[0],
            changed_by=changed[1],
        )
    )
    purpose_changed = frozenset(diff.purpose_changed)
    dropped = drop_released(session, row.id, purpose_changed, version, changed[0])
    return DeclarationsReplaced(version, purpose_changed, tuple(dropped))
