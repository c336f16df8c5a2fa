"""Services' chain moves with a migration window in the registry (core/chain_move.py, revision
0018).

Reads serve the workers' cached view (every record, reloaded with the generation), the commands
and the export; a move is planned and written in one write-locked transaction (the service row
and the chains' records read there, after the registry state row's lock, `serialise_checks`),
so two moves, or a move and a rotation, cannot both pass their checks on what the other is
changing.

Every read returns the records that still stand: whose service is in the record's `to_chain`.
A record whose service was moved on without it (an import by a version before imports knew
these records) releases nothing, so it must not refuse a move or a rotation, show as a window,
nor go into an export that no import would take (the service is not in its `to_chain`); the
next move of the service removes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Engine, delete, select
from sqlalchemy.orm import Session

from broker.core.chain_move import ChainMove, finished_move, plan_move
from broker.core.errors import UnknownService
from broker.core.model import Service, pseudonym_chain
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry.chain_move_tables import ChainMoveRow
from broker.registry.changes import serialise_checks
from broker.registry.database import session_on
from broker.registry.pseudonym_keys import key_version_in
from broker.registry.tables import ServiceRow


def standing_moves(session: Session, *where: ColumnElement[bool]) -> list[ChainMove]:
    """The records (matching `where`) that still stand, by service id, in the caller's
    transaction (module note)."""
    rows = session.execute(
        select(ChainMoveRow, ServiceRow.chain_id)
        .join(ServiceRow, ServiceRow.id == ChainMoveRow.service_id)
        .where(*where)
        .order_by(ChainMoveRow.service_id)
    )
    return [
        row.to_move()
        for row, chain_id in rows
        if row.to_chain == pseudonym_chain(chain_id, row.service_id)
    ]


def chain_move_of(engine: Engine, service_id: str) -> ChainMove | None:
    with session_on(engine) as session:
        found = standing_moves(session, ChainMoveRow.service_id == service_id)
        return found[0] if found else None


def all_chain_moves(engine: Engine) -> list[ChainMove]:
    with session_on(engine) as session:
        return standing_moves(session)


def moves_into(session: Session, chain: str) -> list[ChainMove]:
    """The standing move records naming `chain` as where a service went, read in the caller's
    transaction (a rotation of `chain` checks them)."""
    return standing_moves(session, ChainMoveRow.to_chain == chain)


def move_service_in(
    session: Session,
    service_id: str,
    chain_id: str | None,
    *,
    keys: PseudonymKeys | None,
    window_days: int | None,
    now: datetime,
    changed_by: str,
) -> ChainMove | None:
    """Put the service in `chain_id` (None: none; the caller locked the chain) and write its move
    record (None without a window; an earlier, ended record goes). `MoveRefused` while a window
    concerns the service, changing nothing."""
    row = session.scalar(
        select(ServiceRow).where(ServiceRow.id == service_id).with_for_update(of=ServiceRow)
    )
    if row is None:
        raise UnknownService(f"no service with id {service_id!r}")
    # After the service row, as every writer of a service takes its locks (the service's row,
    # then the state row when it bumps the generation): the same order, no deadlock.
    serialise_checks(session)
    planned, _ = replace_move_in(
        session, row.to_service(), chain_id, keys=keys, window_days=window_days, now=now
    )
    row.chain_id = chain_id
    if planned is not None:
        session.add(ChainMoveRow.holding(planned, now, changed_by))
    return planned


def replace_move_in(
    session: Session,
    service: Service,
    chain_id: str | None,
    *,
    keys: PseudonymKeys | None,
    window_days: int | None,
    now: datetime,
) -> tuple[ChainMove | None, ChainMove | None]:
    """Plan the move of `service` (as the registry holds it, its row locked by the caller, after
    `serialise_checks`) to `chain_id` against the chains' key version records and its own move
    record in this transaction (core `plan_move`: `MoveRefused`, changing nothing, while a
    window concerns it), and remove its earlier record, which the move ends. Returns the record
    to write (None without a window) and the removed one if it stood (an ended window's)."""
    held = session.get(ChainMoveRow, service.id)
    records: dict[str, ChainKeyVersion] = {}
    for chain in (service.pseudonym_chain, pseudonym_chain(chain_id, service.id)):
        record = key_version_in(session, chain)
        if record is not None:
            records[chain] = record
    move = held.to_move() if held is not None else None
    planned = plan_move(service, chain_id, keys, records, move, window_days, now)
    if held is None:
        return planned, None
    session.delete(held)
    session.flush()
    return planned, move if move is not None and move.to_chain == service.pseudonym_chain else None


def finish_move_in(session: Session, service_id: str, now: datetime) -> ChainMove:
    """End a service's open move window now (`chain move --finish`): the record goes."""
    found = standing_moves(session, ChainMoveRow.service_id == service_id)
    move = found[0] if found else None
    finished_move(move, service_id, now)
    assert move is not None
    session.execute(delete(ChainMoveRow).where(ChainMoveRow.service_id == service_id))
    return move
