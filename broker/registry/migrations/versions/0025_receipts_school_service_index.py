"""An index for the school portal's reads over a school's receipts, built concurrently.

`receipts (school_id, service_id, attributes)`: the portal's receipts page reads every receipt
of the school twice (`named`: the services and attribute sets its receipts name; `totals`:
receipts per service), which on PostgreSQL was a scan of the whole table, a school's rows spread
among every other school's (docs/performance.md). Both now read this index only; the filter's
service and attribute are on it too. Its keys repeat (a school has a few services and attribute
sets), so PostgreSQL's B-tree deduplication keeps it small, and each login's receipt adds one
entry to a page it mostly touches already.

PostgreSQL: built with `CREATE INDEX CONCURRENTLY` in Alembic's `autocommit_block`, so logins
keep writing receipts while it is built (a plain CREATE INDEX blocks every receipt write, every
login, for the whole build: tens of seconds for millions of receipts). That block commits the
migration's transaction first: an upgrade through this revision applies the revisions before it,
then builds the index, then records this revision; a failure later leaves the registry at the
revision it reached (migration.py says which). The migration lock stays held throughout
(migration_guard.py). A build that failed halfway (cancelled, the connection lost) leaves an
INVALID index of this name, which PostgreSQL keeps up to date on every insert but never reads:
the next `migrate` finds it, drops it (concurrently) and builds it again. SQLite: a plain CREATE
INDEX in the migration's transaction.

Additive: an index older code never names, so a version before it runs on it: `oldest_reader`
stays where 0016 left it. Down again drops the index, in the migration's transaction (downgrade).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None
# Additive (an index older code never names): the value 0016 declares.
oldest_reader = "0015"

INDEX = "ix_receipts_school_id_service_id_attributes"
COLUMNS = ["school_id", "service_id", "attributes"]
# Whether the index is there (None: not), and whether PostgreSQL may read it.
_VALID = text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(INDEX, "receipts", COLUMNS, if_not_exists=True)
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        _unbounded(bind)
        if bind.scalar(_VALID, {"name": INDEX}) is False:
            # A build that failed halfway: INVALID, and CREATE … IF NOT EXISTS would keep it.
            op.drop_index(INDEX, table_name="receipts", postgresql_concurrently=True)
        op.create_index(
            INDEX, "receipts", COLUMNS, postgresql_concurrently=True, if_not_exists=True
        )
        valid = bind.scalar(_VALID, {"name": INDEX})
        _bounded_again(bind)
        if valid is not True:
            raise RuntimeError(f"index {INDEX} is not valid after its build")


def downgrade() -> None:
    # In the migration's transaction on both databases, not concurrently: a downgrade that is
    # refused further down (a revision below that will not drop data) rolls this back too, and
    # the registry keeps its index. A concurrent drop commits at once, and the registry would
    # stay at this revision without it, which no later `migrate` rebuilds. DROP INDEX holds the
    # table for a moment only (no build); a downgrade is the operator's rare, deliberate step.
    op.drop_index(INDEX, table_name="receipts", if_exists=True)


def _unbounded(bind: Connection) -> None:
    """No statement or lock timeout for the build, whatever the database role says: outside a
    transaction no BEGIN carries the migration's own (database.py). It runs as long as it needs,
    without blocking logins."""
    bind.exec_driver_sql("SET statement_timeout = 0")
    bind.exec_driver_sql("SET lock_timeout = 0")


def _bounded_again(bind: Connection) -> None:
    """The role's own timeouts back: behind a pooler the session goes on serving others."""
    bind.exec_driver_sql("RESET statement_timeout")
    bind.exec_driver_sql("RESET lock_timeout")
