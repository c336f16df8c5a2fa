"""Replacing a service's declarations: the one write behind the publisher portal, and
`registry import`, so both keep the history and the re-confirmation rule the same way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from broker.core.declarations import reconfirm_version_after
from broker.core.model import Declaration
from broker.registry.admin_tables import DeclarationChangeRow, declarations_json
from broker.registry.tables import DeclarationRow, ServiceRow


def replace_declarations(
    session: Session,
    row: ServiceRow,
    declarations: tuple[Declaration, ...],
    version: int,
    changed: tuple[datetime, str],
) -> None:
    """Save `declarations` as `version` of `row`'s, with a line in the history (`changed`: when,
    by whom). Schools' choices keep counting unless the change needs them to confirm again
    (core/declarations.py): only then does `reconfirm_version` move to `version`."""
    old = tuple(d.to_declaration() for d in row.declarations)
    row.reconfirm_version = reconfirm_version_after(
        old, declarations, current=row.reconfirm_version, new_version=version
    )
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
