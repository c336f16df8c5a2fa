"""Schema migrations with Alembic, run from code: no alembic.ini, works from an installed package.

`migrate` runs the whole upgrade in one transaction (both PostgreSQL and, with the way
`database.py` drives SQLite, SQLite have transactional DDL), holding a lock so that several
workers starting at once migrate once and the others find the schema at head.

On SQLite the transaction runs with foreign key enforcement off and checks every reference
before it commits (`migration_connection`): SQLite alters a table by copying it, dropping it and
renaming the copy (Alembic's batch mode), and with enforcement on, dropping a table that rows of
another refer to fails; SQLite's own procedure for such changes switches enforcement off and
runs `PRAGMA foreign_key_check` at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from broker.core.errors import ConfigurationError
from broker.registry.database import open_engine, writer
from broker.registry.tables import Base

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every worker of one deployment.
_POSTGRES_MIGRATION_LOCK = 0x6B62_7267


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, pointing at the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest schema (an empty database included)."""
    with migration_connection(url) as connection:
        command.upgrade(alembic_config(connection), "head")


@contextmanager
def migration_connection(url: str) -> Iterator[Connection]:
    """One write transaction for schema changes at `url`, committed when the block succeeds.

    PostgreSQL: under the migration lock. SQLite: with foreign key enforcement off, and refused
    (`ConfigurationError`, rolled back) when a revision applied in the block leaves a reference
    dangling.
    """
    engine = open_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # Runs after database.py's own `connect` listener, which switches enforcement on.
        event.listen(engine, "connect", _foreign_keys_off)
    try:
        with writer(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK}
                )
            before = _heads(connection)
            yield connection
            # Only after a change: the check reads every row that has a foreign key, and every
            # CLI command migrates first.
            if sqlite and _heads(connection) != before:
                _refuse_dangling_references(connection)
    finally:
        engine.dispose()


def _heads(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    # Outside any transaction (SQLite ignores the pragma inside one): on connect.
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def _refuse_dangling_references(connection: Connection) -> None:
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        tables = sorted({str(row[0]) for row in dangling})
        raise ConfigurationError(
            f"the schema change would leave {len(dangling)} row(s) of {', '.join(tables)} "
            "referring to rows that do not exist; nothing was changed"
        )


def require_schema_at_head(url: str, remedy: str) -> None:
    """Refuse (`ConfigurationError`, one line ending in `remedy` where migrating helps) a
    registry at `url` whose schema is not this version's newest: none at all, an older
    revision, or one this version does not know. Reads one row and changes nothing: a SQLite
    file that does not exist is not created. The URL is shown without its password."""
    shown = make_url(url).render_as_string(hide_password=True)
    found = _revisions_at(url)
    script = ScriptDirectory.from_config(alembic_config())
    needed = tuple(script.get_heads())
    if set(found) == set(needed):
        return
    if not found:
        raise ConfigurationError(f"the registry at {shown} has no schema: {remedy}")
    at = ", ".join(found)
    if not set(found) <= {revision.revision for revision in script.walk_revisions()}:
        raise ConfigurationError(
            f"the registry at {shown} is at revision {at}, which this version of Ketenbroker "
            "does not know (a newer version migrated it): run the newer version"
        )
    raise ConfigurationError(
        f"the registry at {shown} is at revision {at}, this version needs "
        f"{', '.join(needed)}: {remedy}"
    )


def _revisions_at(url: str) -> tuple[str, ...]:
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if sqlite and not Path(str(parsed.database)).exists():
        return ()
    # SQLite read-only: open_engine's connection would switch the file to WAL, a change.
    engine = _read_only_sqlite(parsed) if sqlite else open_engine(url)
    try:
        with engine.connect() as connection:
            return _heads(connection)
    except DBAPIError as error:
        # The driver's first line says why (refused, no such database, authentication); it
        # never holds the password, and the check makes sure.
        reason = (str(error.orig).strip().splitlines() or [""])[0]
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigurationError(
            f"cannot read the registry at {shown}: {type(error.orig).__name__}: {reason}"
        ) from None
    finally:
        engine.dispose()


def _read_only_sqlite(parsed: URL) -> Engine:
    path = quote(str(Path(str(parsed.database)).resolve()))
    return create_engine(parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"}))


def model_drift(url: str) -> list[str]:
    """Differences between the migrated schema at `url` and the ORM models (empty when in step).

    A test runs this after `migrate`, so a model change without its migration fails the build.
    """
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return [repr(difference) for difference in compare_metadata(context, Base.metadata)]
    finally:
        engine.dispose()
