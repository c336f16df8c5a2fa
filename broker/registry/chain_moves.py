"""Services' chain moves with a migration window in the registry (core/chain_move.py, revision
0018).

Reads serve the workers' cached view (every record, reloaded with the generation) and the
commands; a move is planned and written in one write-locked transaction (the service row and the
chains' records read there, after the registry state row's lock, `serialise_windows`), so two
moves, or a move and a rotation, cannot both pass their checks on what the other is changing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker.core.chain_move import ChainMove, finished_move, plan_move
from broker.core.errors import UnknownService
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry.chain_move_tables import ChainMoveRow
from broker.registry.changes import serialise_windows
from broker.registry.database import session_on
from broker.registry.pseudonym_keys import key_version_in
from broker.registry.tables import ServiceRow


def chain_move_of(engine: Engine, service_id: str) -> ChainMove | None:
    with session_on(engine) as session:
        row = session.get(ChainMoveRow, service_id)
        return row.to_move() if row is not None else None


def all_chain_moves(engine: Engine) -> list[ChainMove]:
    with session_on(engine) as session:
        rows = session.scalars(select(ChainMoveRow).order_by(ChainMoveRow.service_id))
        return [row.to_move() for row in rows]


def moves_into(session: Session, chain: str) -> list[ChainMove]:
    """The move records naming `chain` as where a service went, read in the caller's
    transaction (a rotation of `chain` checks them)."""
    rows = session.scalars(select(ChainMoveRow).where(ChainMoveRow.to_chain == chain))
    return [row.to_move() for row in rows]


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
    serialise_windows(session)
    service = row.to_service()
    held = session.get(ChainMoveRow, service_id)
    to_chain = chain_id or f"service:{service_id}"
    records: dict[str, ChainKeyVersion] = {}
    for chain in (service.pseudonym_chain, to_chain):
        record = key_version_in(session, chain)
        if record is not None:
            records[chain] = record
    planned = plan_move(
        service,
        chain_id,
        keys,
        records,
        held.to_move() if held is not None else None,
        window_days,
        now,
    )
    row.chain_id = chain_id
    if held is not None:
        session.delete(held)
        session.flush()
    if planned is not None:
        session.add(ChainMoveRow.holding(planned, now, changed_by))
    return planned


def finish_move_in(session: Session, service_id: str, now: datetime) -> ChainMove:
    """End a service's open move window now (`chain move --finish`): the record goes."""
    held = session.get(ChainMoveRow, service_id)
    move = held.to_move() if held is not None else None
    finished_move(move, service_id, now)
    assert held is not None and move is not None
    session.delete(held)
    return move
