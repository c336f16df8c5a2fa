"""Schema migrations with Alembic, run from code: no alembic.ini, works from an installed package.

`migrate` runs the whole upgrade in one transaction (both PostgreSQL and, with the way
`database.py` drives SQLite, SQLite have transactional DDL), holding a lock so that several
workers starting at once migrate once and the others find the schema at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

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
    engine = open_engine(url)
    try:
        with writer(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()


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
