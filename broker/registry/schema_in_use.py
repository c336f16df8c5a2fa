"""The registry's schema as /readyz sees it: Alembic's revisions and the recorded oldest reader,
read with the generation row in one statement (the registry answers, and this version can serve
on its schema, for no more than the generation alone costs).

A schema from before revision 0016 has no `schema_readers`. On PostgreSQL the statement never
names that table: `to_regclass` finds it (NULL when there is none) and `table_to_xml` reads it
through the catalogue (a strict function: NULL in, NULL out), so a registry an older version
left behind answers in the same one round trip, and the server logs no ERROR on every probe.
`table_to_xml` builds its text without libxml, so a server built without XML support runs it
too. On PostgreSQL the same statement reads `transaction_read_only`: a server that takes no
writes (a demoted primary, a pooler pointed at a standby, `default_transaction_read_only`) serves
reads but fails every login's receipt, so /readyz must not call it ready (`RegistryReadOnly`).
SQLite has no way to read a table it may not have by name in one statement; there a
failed prepare costs no round trip and leaves no log, and the statement without the table
follows it.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import unescape

from sqlalchemy import Engine, Select, Text, cast, func, literal, null, select, true

from broker.core.errors import ConfigurationError
from broker.registry.database import transaction_on
from broker.registry.errors import RegistryNotMigrated, RegistryReadOnly
from broker.registry.tables import (
    ALEMBIC_VERSION,
    STATE_ROW_ID,
    RegistryStateRow,
    SchemaReadersRow,
)

NO_STATE_ROW = "registry database has no registry_state row: run migrate"

# Alembic's revisions and the recorded oldest reader, each table joined on true to the one
# generation row: the statement answers that row's absence too, and the row even when the others
# are empty.
_SCHEMA_QUERY = (
    select(ALEMBIC_VERSION.c.version_num, SchemaReadersRow.oldest_reader)
    .select_from(RegistryStateRow)
    .outerjoin(ALEMBIC_VERSION, true())
    .outerjoin(SchemaReadersRow, true())
    .where(RegistryStateRow.id == STATE_ROW_ID)
)
_SCHEMA_QUERY_BEFORE_READERS = (
    select(ALEMBIC_VERSION.c.version_num, null().label("oldest_reader"))
    .select_from(RegistryStateRow)
    .outerjoin(ALEMBIC_VERSION, true())
    .where(RegistryStateRow.id == STATE_ROW_ID)
)
# PostgreSQL: the readers table as XML text, one `<oldest_reader>` element per row (nulls left
# out, tableforest), or NULL when the schema has no such table.
_READERS_AS_XML = cast(
    func.table_to_xml(
        func.to_regclass(literal(SchemaReadersRow.__tablename__, Text)), False, True, ""
    ),
    Text,
)
POSTGRES_SCHEMA_QUERY = (
    select(
        ALEMBIC_VERSION.c.version_num,
        _READERS_AS_XML,
        func.current_setting(literal("transaction_read_only", Text)),
    )
    .select_from(RegistryStateRow)
    .outerjoin(ALEMBIC_VERSION, true())
    .where(RegistryStateRow.id == STATE_ROW_ID)
)
_READER_ELEMENT = re.compile(r"<oldest_reader>([^<]*)</oldest_reader>")

Rows = list[tuple[str | None, str | None]]


def schema_in_use(engine: Engine) -> tuple[tuple[str, ...], str | None]:
    """The schema's revisions and its recorded oldest reader (None: none, or not exactly one).
    Raises as `SqlRegistryReader.generation` does (`ConfigurationError` without the generation
    row; `RegistryNotMigrated`, `StoreUnavailable` from `transaction_on`), and
    `RegistryReadOnly` when the PostgreSQL server takes no writes."""
    rows: Rows
    if engine.dialect.name == "postgresql":
        with transaction_on(engine) as connection:
            found = [tuple(row) for row in connection.execute(POSTGRES_SCHEMA_QUERY)]
        if any(row[2] == "on" for row in found):
            raise RegistryReadOnly()
        rows = [
            (revision, reader)
            for revision, readers, _ in found
            for reader in _readers_in(readers) or [None]
        ]
    else:
        try:
            rows = _rows(engine, _SCHEMA_QUERY)
        except RegistryNotMigrated:
            rows = _rows(engine, _SCHEMA_QUERY_BEFORE_READERS)
    if not rows:
        raise ConfigurationError(NO_STATE_ROW)
    # One row per pair of revision and reader: usually one.
    revisions = tuple(dict.fromkeys(row[0] for row in rows if row[0] is not None))
    readers = {row[1] for row in rows if row[1] is not None}
    return revisions, next(iter(readers)) if len(readers) == 1 else None


def _rows(engine: Engine, query: Select[Any]) -> Rows:
    with transaction_on(engine) as connection:
        return [(row[0], row[1]) for row in connection.execute(query)]


def _readers_in(document: str | None) -> list[str | None]:
    """The values of `table_to_xml`'s text of `schema_readers` (None: no such table). Its
    format is PostgreSQL's own (SQL/XML): one element per column, named as the column, the
    value escaped as XML text."""
    if document is None:
        return []
    return [unescape(value) for value in _READER_ELEMENT.findall(document)]
