"""The Core table of an ORM row class, for tests that write rows the way an older release did."""

from __future__ import annotations

from sqlalchemy import Table

from broker.registry.tables import Base


def table_of(row: type[Base]) -> Table:
    """`row.__table__` as the `Table` it is (SQLAlchemy types the attribute as a FromClause,
    which has no `insert`, `delete` or `name`)."""
    table = row.__table__
    assert isinstance(table, Table), row
    return table
