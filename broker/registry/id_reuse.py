"""Service ids used before: the one rule every writer that creates a service asks.

What a removed service leaves stays with its id (removal.py): its pseudonym key version and, for
a service in no chain, the pseudonym chain input `service:<id>` itself (core/model.py
`pseudonym_chain`), so a service registered again under the id gives every student the same
pseudonym as before; its declaration history, which the new one continues
(`kept_declaration_version`); and the receipts naming it. A publisher that took another's
removed id would receive the pseudonyms that publisher's platform received, linking the two
publishers' data, which per-service pseudonyms exist to prevent.

So an id is used before when a removal record names it as a service's, or a declaration history
or a pseudonym key version is kept for it. Taking one again is the operator's decision alone:
the portals never do (`IdReuse.REFUSED`, every writer's default); `ketenbroker publisher add`
and `registry import` do with `--reuse-removed-id` for the same publisher organisation as before
(every removal record of the id names it: revision 0024), and for any other, or where the
records do not tell, only with `--pseudonyms-carry-over` besides (docs/cli.md).

A publisher organisation's id is given out again once it is removed (`add_publisher` takes any
free id), so the id in a removal record names the organisation that held it then, not
necessarily the one holding it now. Where the organisation was removed after the service's
removal (a later row of kind publisher for its id: removals are appended in order, and an
organisation goes only once no service names it), the record no longer tells who that was:
whoever holds the id now counts as another, and only `--pseudonyms-carry-over` takes it. One
removed before the service's removal does not count: the service was then already the
organisation's under that id since.

The refusal names the flags that would take the id (`ServiceIdUsedBefore.flags`), not a command:
the registry does not know which of the operator's commands wrote; each names itself
(cli/id_reuse_options.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.core.model import Service, pseudonym_chain
from broker.registry.admin_tables import DeclarationChangeRow
from broker.registry.errors import ServiceIdUsedBefore
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow
from broker.registry.tables import RemovalRow

log = logging.getLogger(__name__)
NO_PUBLISHER = ""  # `removals.publisher_id` of a service no organisation managed
# The operator's flags that take an id used before (cli/id_reuse_options.py).
REUSE_FLAG, CARRY_OVER_FLAG = "--reuse-removed-id", "--pseudonyms-carry-over"


class IdReuse(Enum):
    """What a writer creating a service may take over of an id used before."""

    REFUSED = "refused"  # nothing: the portals, and every writer unless told otherwise
    SAME_PUBLISHER = "same-publisher"  # `--reuse-removed-id`: the same organisation's id
    CARRIED_OVER = "carried-over"  # and `--pseudonyms-carry-over`: whoever had it


@dataclass(frozen=True)
class EarlierUse:
    """What is kept of an id's earlier use. `publishers`: per removal record of the id, the
    publisher organisation of the removed service ("" none), None where the record does not
    say (one from before revision 0024). `removed_since`: those of them removed as an
    organisation after a removal of the id's service, so the id may name another one now."""

    publishers: tuple[str | None, ...]
    removed_since: frozenset[str] = frozenset()

    def only_by(self, publisher_id: str | None) -> bool:
        """Every removal of the id, as recorded, was of a service of `publisher_id` (None: of
        none), and that organisation was not removed since; False where any record does not
        say, or where there is none."""
        wanted = publisher_id or NO_PUBLISHER
        if not self.publishers or wanted in self.removed_since:
            return False
        return all(p == wanted for p in self.publishers)

    def shown(self) -> str:
        """Whose it was, for the operator's command (never a portal page)."""
        named = sorted(
            f"{p} (an organisation removed since, so the id may name another one now)"
            if p in self.removed_since
            else p or "no publisher organisation"
            for p in {p for p in self.publishers if p is not None}
        )
        if None in self.publishers or not self.publishers:
            named.append("a publisher the registry did not record")
        return ", ".join(named)


def earlier_use(session: Session, service_id: str) -> EarlierUse | None:
    """What is kept of `service_id`'s earlier use, read in the caller's transaction; None for
    an id never used. Only asked for an id no service holds now."""
    removals = session.execute(
        select(RemovalRow.id, RemovalRow.publisher_id)
        .where(RemovalRow.kind == "service", RemovalRow.entry_id == service_id)
        .order_by(RemovalRow.id)
    ).all()
    publishers = tuple(publisher for _, publisher in removals)
    history = select(DeclarationChangeRow.id).where(DeclarationChangeRow.service_id == service_id)
    kept = (
        session.scalar(history.limit(1)) is not None
        or session.get(PseudonymKeyVersionRow, pseudonym_chain(None, service_id)) is not None
    )
    if not (publishers or kept):
        return None
    last_removed = _last_removals(session, {p for p in publishers if p})
    removed_since = frozenset(
        publisher
        for row_id, publisher in removals
        if publisher and last_removed.get(publisher, row_id) > row_id
    )
    return EarlierUse(publishers, removed_since)


def _last_removals(session: Session, publisher_ids: set[str]) -> dict[str, int]:
    """The last removal row of each of `publisher_ids` removed as an organisation."""
    if not publisher_ids:
        return {}
    rows = session.execute(
        select(RemovalRow.entry_id, func.max(RemovalRow.id))
        .where(RemovalRow.kind == "publisher", RemovalRow.entry_id.in_(publisher_ids))
        .group_by(RemovalRow.entry_id)
    )
    return {entry_id: last for entry_id, last in rows}


def refuse_reuse(session: Session, service: Service, allowed: IdReuse) -> None:
    """Refuse (`ServiceIdUsedBefore`) to create `service` under an id used before unless
    `allowed` takes it; a taking is logged (ids only)."""
    used = earlier_use(session, service.id)
    if used is None:
        return
    if allowed is IdReuse.REFUSED:
        raise ServiceIdUsedBefore(
            service.id,
            "choose another id; only the operator registers a removed id again",
            flags=(REUSE_FLAG,),
        )
    if allowed is IdReuse.SAME_PUBLISHER and not used.only_by(service.publisher_id):
        raise ServiceIdUsedBefore(
            service.id,
            f"it was the id of a service of {used.shown()}, not of "
            f"{service.publisher_id or 'no publisher organisation'} as this one is; "
            "acknowledging that this service gets those pseudonyms registers it all the same",
            flags=(REUSE_FLAG, CARRY_OVER_FLAG),
        )
    log.info(
        "service id used before registered again service=%s publisher=%s earlier=%s reuse=%s",
        service.id,
        service.publisher_id or "-",
        ",".join("?" if p is None else p or "-" for p in used.publishers) or "?",
        allowed.value,
    )
