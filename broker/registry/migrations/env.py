"""Alembic environment: run by `broker.registry.migration`, which hands over a connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from broker.registry.migration import migration_connection, record_oldest_reader
from broker.registry.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode makes later revisions portable.
        render_as_batch=True,
        # database.py gives SQLite real transactions, so DDL can roll back there too.
        transactional_ddl=True,
        # The schema's oldest reader, written in the migration's own transaction.
        on_version_apply=record_oldest_reader,
    )
    # migration.py began the transaction (under its lock), so Alembic's own `begin_transaction`
    # does nothing; its `autocommit_block` (a revision that must run outside a transaction,
    # 0025) commits only a transaction Alembic knows of: it is told of this one. The one the
    # block begins afterwards is the connection's, which migration_transaction commits.
    context.get_context()._transaction = connection.get_transaction()
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Only for a developer running the alembic command line with -x url=...
    url = context.get_x_argument(as_dictionary=True)["url"]
    with migration_connection(url) as own_connection:
        _run(own_connection)


if context.is_offline_mode():
    raise SystemExit("the registry migrates online only: use broker.registry.migrate(url)")
_run_online()
