"""Schema migrations with Alembic, run from code: no alembic.ini, works from an installed package.

`migrate` runs the whole upgrade in one transaction (both PostgreSQL and, with the way
`database.py` drives SQLite, SQLite have transactional DDL), holding a lock so that several
workers starting at once migrate once and the others find the schema at head; a revision that
fails leaves nothing of the upgrade behind and is reported in one line (`migration_guard`).
One exception, on PostgreSQL only: a revision that builds an index concurrently (0025) must
run outside a transaction, so Alembic's `autocommit_block` commits the revisions before it
first, and a failure from there on leaves the registry at the revision it reached, which the
line names (`_failed`). The lock is held throughout.

On SQLite the transaction runs with foreign key enforcement off and checks every reference
before it commits (`migration_connection`): SQLite alters a table by copying it, dropping it and
renaming the copy (Alembic's batch mode), and with enforcement on, dropping a table that rows of
another refer to fails; SQLite's own procedure for such changes switches enforcement off and
runs `PRAGMA foreign_key_check` at the end.

Rolling upgrades (expand/contract): from revision 0016 the schema records the oldest code that
can still run on it (`schema_readers.oldest_reader`, a revision id). Each revision declares its
own as a module constant `oldest_reader`: the revision before it keeps older code running when
the change only adds what older code ignores, its own id when older code would break on it.
After each revision applied, up or down, `record_oldest_reader` writes the newest value any
applied revision declares (a revision without one counts as itself), in the migration's own
transaction: a later revision can never declare the schema readable again for code an earlier
one broke. A version whose newest revision is older than the registry's runs on it, with a
warning, when that value is a revision it has (walked along its own revisions, not compared as
text); it refuses otherwise, naming the value, and never migrates such a registry.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from broker.core.errors import BrokerError, ConfigurationError
from broker.registry.database import open_engine, writer
from broker.registry.migration_guard import (
    failed_revision,
    failure_reason,
    migration_transaction,
)
from broker.registry.tables import Base, SchemaReadersRow

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
# Where the revisions are: the package's own. Tests point it at a folder with extra revisions
# (`use_versions`).
_versions = SCRIPT_LOCATION / "versions"
# The revision that added `schema_readers`: before it, a schema records no oldest reader.
READERS_REVISION = "0016"

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, pointing at the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # One folder; "os": split on os.pathsep, so a folder's name may hold spaces or commas.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(_versions))
    config.attributes["connection"] = connection
    return config


def use_versions(folder: Path) -> None:
    """Read the revisions from `folder` from now on (tests: copies of the real ones plus made-up
    later ones), forgetting what was worked out from the others."""
    global _versions  # noqa: PLW0603 - the one seam: every reader goes through alembic_config
    _versions = folder
    _script.cache_clear()
    _own.cache_clear()


def schema_head() -> str:
    """This version's newest revision (`ketenbroker --version`)."""
    return _own().heads_shown


def migrate(url: str) -> str | None:
    """Upgrade the database at `url` to the newest schema (an empty database included).

    A registry a newer version migrated is never migrated (nor downgraded): only the newer
    version migrates it. One that declares this version able to run on it is left as it is,
    and the line saying so is logged and returned (an old image's one-shot `migrate`, run again
    during a rolling upgrade, must not keep its workers from starting); any other is refused
    (`ConfigurationError`), changing nothing. A registry this call migrated: the line saying
    from which revision to which (logged too). None: the schema was this version's newest
    already."""
    return _upgrade(url, run_on_newer=False)


def migrate_first(url: str) -> None:
    """What a command that uses the registry runs before its work: `migrate`, except that a
    registry a newer version migrated and declares this version able to run on it is used
    with the warning of `require_schema_at_head`."""
    _upgrade(url, run_on_newer=True)


def _upgrade(url: str, *, run_on_newer: bool) -> str | None:
    found, oldest = _applied_unless_newer(url)
    if not _is_newer(found):
        return _applied(found)
    if run_on_newer:
        _run_on_newer(_shown(url), found, oldest)
        return None
    _refuse_unless_runs_on(_shown(url), found, oldest)
    note = f"{_nothing_to_migrate(found)}; nothing was changed"
    log.info(note)
    return note


def _applied_unless_newer(url: str) -> tuple[tuple[str, ...], str | None]:
    """Upgrade the registry at `url` to this version's newest schema, unless a newer version
    migrated it. Returns the revisions it was at and, when they are newer (nothing changed),
    its recorded oldest reader. A failure is one line (`ConfigurationError`), the whole upgrade
    rolled back."""
    found: tuple[str, ...] | None = None
    try:
        with migration_connection(url) as connection:
            found = _heads(connection)
            if _is_newer(found):
                return found, _oldest_reader(connection)
            command.upgrade(alembic_config(connection), "head")
            return found, None
    except BrokerError:
        raise  # a refusal of this module's or a revision's own: it already says what and why
    except Exception as error:
        raise ConfigurationError(_failed(url, found, error)) from error


def _applied(found: tuple[str, ...]) -> str | None:
    """The line saying what an upgrade from `found` applied (also logged: every command that
    uses the registry migrates it first); None when it was at this version's newest already."""
    if set(found) == _own().heads:
        return None
    head = _own().heads_shown
    if found:
        line = f"migrated the registry from revision {', '.join(found)} to {head}"
    else:
        line = f"created the registry's schema at revision {head}"
    log.info(line)
    return line


def _failed(url: str, found: tuple[str, ...] | None, error: Exception) -> str:
    """The one line of a migration that failed: the revision whose code raised, the cause, and
    the revision the registry is at. Its transaction rolled back; a revision that committed
    before it (PostgreSQL: an index built concurrently, 0025) leaves the registry at a later
    revision than it was, read again here to say so."""
    revision = failed_revision(error, _versions)
    where = f" in revision {revision}" if revision else ""
    line = f"migrating the registry at {_shown(url)} failed{where}: "
    line += failure_reason(error, make_url(url).password)
    if found is None:
        return f"{line}; nothing was changed"
    now = _heads_after_failure(url, found)
    if now != found:
        return (
            f"{line}; the revisions before it were applied: the registry is now at revision "
            f"{', '.join(now)}, run migrate again once the cause is put right"
        )
    still = f"is still at revision {', '.join(found)}" if found else "still has no schema"
    return f"{line}; nothing was changed: the registry {still}"


def _heads_after_failure(url: str, found: tuple[str, ...]) -> tuple[str, ...]:
    """The registry's revisions after a failed migration; `found` when it cannot be read."""
    try:
        return _schema_at(url)[0]
    except ConfigurationError:
        return found


@dataclass(frozen=True)
class MigrationCheck:
    """What `migrate` would do (`ketenbroker migrate --check`): the lines saying so, and whether
    it would break the version now running (a stop-the-world upgrade)."""

    lines: tuple[str, ...]
    breaks_running: bool


def check_migration(url: str) -> MigrationCheck:
    """What `migrate` would apply to the registry at `url`, the oldest reader after it, and
    whether the version at the registry's revision now could still run on it. Reads and changes
    nothing. A registry a newer version migrated that this version cannot run on is refused
    (`ConfigurationError`), as `migrate` refuses it."""
    found, oldest = _schema_at(url)
    head = _own().heads_shown
    if _is_newer(found):
        _refuse_unless_runs_on(_shown(url), found, oldest)
        return MigrationCheck((_nothing_to_migrate(found),), breaks_running=False)
    now = f"oldest_reader {oldest}" if oldest else "no oldest_reader recorded"
    if set(found) == _own().heads:
        return MigrationCheck(
            (f"the registry is at revision {head} ({now}): nothing to migrate",), False
        )
    script = _script()
    applied = set(_up_to(script, found))
    pending = [revision for revision in _up_to(script, _own().heads) if revision not in applied]
    after = _oldest_after(script, _own().heads)
    start = ", ".join(found) if found else "no schema"
    lines = [
        f"would migrate the registry from {start} to {head}: {', '.join(pending)}",
        f"oldest_reader after it: {after} (now: {oldest or 'none recorded'})",
    ]
    # Code whose newest revision is the registry's now runs on it after, when the new oldest
    # reader is one of the revisions it has.
    breaks = bool(found) and after not in applied
    if not found:
        lines.append("no version runs on it now: nothing to break")
    elif READERS_REVISION not in applied:
        # Before 0016 a version reads no record: it refuses every revision it does not know.
        breaks = True
        lines.append(
            f"a version at revision {start} could NOT run on it (it refuses every revision it "
            "does not know): stop its workers before migrating"
        )
    elif breaks:
        lines.append(
            f"a version at revision {start} could NOT run on it: stop its workers before "
            "migrating (docs/operations.md, 'Upgrading without downtime')"
        )
    else:
        lines.append(
            f"a version at revision {start} could still run on it: its workers may keep "
            "serving while you migrate and replace them"
        )
    return MigrationCheck(tuple(lines), breaks)


@contextmanager
def migration_connection(url: str) -> Iterator[Connection]:
    """One write transaction for schema changes at `url`, committed when the block succeeds.

    PostgreSQL: under the migration lock, waited for (and said so in one log line) while another
    migration holds it. SQLite: with foreign key enforcement off, and refused
    (`ConfigurationError`, rolled back) when a revision applied in the block leaves a reference
    dangling, or when another writer keeps the registry locked past the busy timeout.
    """
    engine = open_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # Runs after database.py's own `connect` listener, which switches enforcement on.
        event.listen(engine, "connect", _foreign_keys_off)
    try:
        with writer(engine).connect() as connection, migration_transaction(connection):
            if not sqlite:
                _require_utf8(connection)
            before = _heads(connection)
            yield connection
            # Only after a change: the check reads every row that has a foreign key, and every
            # CLI command migrates first.
            if sqlite and _heads(connection) != before:
                _refuse_dangling_references(connection)
    finally:
        engine.dispose()


def _require_utf8(connection: Connection) -> None:
    """A PostgreSQL database in another encoding is refused before anything is written: names
    are Unicode, and SQL_ASCII (what `initdb` picks under the C locale) stores bytes without
    checking or converting them, so sorting, comparing and lengths of names would go by bytes.
    (Without the engine's `client_encoding`, psycopg would also hand text back as bytes, a
    TypeError deep inside SQLAlchemy: database.py.)"""
    encoding = connection.exec_driver_sql("SHOW server_encoding").scalar()
    if encoding != "UTF8":
        raise ConfigurationError(
            f"the registry's PostgreSQL database uses the encoding {encoding}; Ketenbroker "
            "needs UTF8: create the database with ENCODING 'UTF8' (and TEMPLATE template0), "
            "nothing was changed"
        )


def _heads(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


@cache
def _script() -> ScriptDirectory:
    # Read once per process (every revision module loaded: ~40 ms): each worker asks as it starts.
    return ScriptDirectory.from_config(alembic_config())


@dataclass(frozen=True)
class _OwnRevisions:
    heads: frozenset[str]
    heads_shown: str
    known: frozenset[str]
    # Those at or before the heads: a schema whose oldest reader is one of them serves here.
    readable: frozenset[str]


@cache
def _own() -> _OwnRevisions:
    """This version's revisions, worked out once per process: /readyz judges every call."""
    script = _script()
    heads = tuple(script.get_heads())
    return _OwnRevisions(
        heads=frozenset(heads),
        heads_shown=", ".join(heads),
        known=frozenset(revision.revision for revision in script.walk_revisions()),
        readable=frozenset(_up_to(script, heads)),
    )


class SchemaFit(Enum):
    """How this version stands to a registry's schema."""

    AT_HEAD = "at_head"  # its own newest: it serves, nothing to migrate
    NONE = "none"  # no revision recorded: `migrate` first
    BEHIND = "behind"  # an older revision of its own: `migrate` first
    NEWER_READABLE = "newer_readable"  # a newer version's, declaring this one able to run on it
    TOO_NEW = "too_new"  # a newer version's, not declaring so


def schema_fit(found: Collection[str], oldest: str | None) -> SchemaFit:
    """How this version stands to a schema at revisions `found` whose recorded oldest reader is
    `oldest` (None: none recorded). Pure, on revision sets worked out once: cheap to call."""
    if set(found) == _own().heads:
        return SchemaFit.AT_HEAD
    if not found:
        return SchemaFit.NONE
    if _is_newer(found):
        return SchemaFit.NEWER_READABLE if _runs_on(oldest) else SchemaFit.TOO_NEW
    return SchemaFit.BEHIND


def _up_to(script: ScriptDirectory, heads: Collection[str]) -> list[str]:
    """The revisions of `script` at or before `heads`, oldest first."""
    if not heads:
        return []
    return [
        found.revision for found in reversed(list(script.iterate_revisions(tuple(heads), "base")))
    ]


def record_oldest_reader(
    *, ctx: MigrationContext, step: MigrationInfo, heads: Collection[str], **_: Any
) -> None:
    """Alembic's `on_version_apply` (env.py): after each revision applied, up or down, write
    the schema's oldest reader in the same transaction, once it has the table. The heads after
    the step say which value.

    `alembic stamp` fires this too, but changes no table: stamping a schema from before 0016 at
    0016 or later leaves it without `schema_readers`, so nothing is written (no row reads as
    "names no older version", the safe side); where the table is there, the value for the
    stamped revisions is."""
    assert ctx.script is not None and ctx.connection is not None
    oldest = _oldest_after(ctx.script, heads)
    if oldest is None:
        return
    if step.is_stamp and not inspect(ctx.connection).has_table(SchemaReadersRow.__tablename__):
        return
    ctx.connection.execute(delete(SchemaReadersRow))
    ctx.connection.execute(insert(SchemaReadersRow).values(oldest_reader=oldest))


def _oldest_after(script: ScriptDirectory, heads: Collection[str]) -> str | None:
    """The oldest reader a schema at `heads` records; None before revision 0016."""
    chain = _up_to(script, heads)
    if READERS_REVISION not in chain:
        return None
    return effective_oldest_reader(
        [
            (revision, getattr(script.get_revision(revision).module, "oldest_reader", None))
            for revision in chain
        ]
    )


def effective_oldest_reader(chain: Sequence[tuple[str, str | None]]) -> str:
    """The oldest reader of a schema after the revisions of `chain` (oldest first, each with the
    `oldest_reader` it declares; None counts as the revision itself): the newest declared one.
    A revision that declares one after itself, or one not in `chain`, is refused."""
    position = {revision: index for index, (revision, _) in enumerate(chain)}
    newest = 0
    for index, (revision, declared) in enumerate(chain):
        at = position.get(declared or revision, index + 1)
        if at > index:
            raise ConfigurationError(
                f"revision {revision} declares oldest_reader {declared!r}, which is not a "
                "revision at or before it"
            )
        newest = max(newest, at)
    return chain[newest][0]


def _oldest_reader(connection: Connection) -> str | None:
    """The recorded oldest reader; None before revision 0016, or when the table does not hold
    exactly one row (not written by a migration: nothing to trust)."""
    if not inspect(connection).has_table(SchemaReadersRow.__tablename__):
        return None
    values = connection.scalars(select(SchemaReadersRow.oldest_reader)).all()
    return values[0] if len(values) == 1 else None


def _is_newer(found: Collection[str]) -> bool:
    """Whether a newer version migrated the registry: it is at a revision this one lacks."""
    return not set(found) <= _own().known


def _runs_on(oldest: str | None) -> bool:
    """Whether this version can run on a schema whose oldest reader is `oldest`: one of its
    own revisions, at or before its newest."""
    return oldest is not None and oldest in _own().readable


def _refuse_unless_runs_on(shown: str, found: tuple[str, ...], oldest: str | None) -> None:
    """Refuse (`ConfigurationError`) a registry a newer version migrated that does not declare
    this version able to run on it."""
    if not _runs_on(oldest):
        raise ConfigurationError(_cannot_run(shown, found, oldest))


def _nothing_to_migrate(found: tuple[str, ...]) -> str:
    """What `migrate` and `migrate --check` say of a newer registry this version can run on."""
    return (
        f"the registry is at revision {', '.join(found)}, newer than this version's "
        f"{_own().heads_shown}, and declares this version able to run on it: nothing to migrate"
    )


def _run_on_newer(shown: str, found: tuple[str, ...], oldest: str | None) -> None:
    """Accept, with one warning, a registry a newer version migrated that declares this version
    able to run on it; refuse (`ConfigurationError`) any other."""
    _refuse_unless_runs_on(shown, found, oldest)
    log.warning(
        "registry schema at revision %s is newer than this version's %s and declares versions "
        "from revision %s on able to run on it: running on it; replace this version with the "
        "newer one soon",
        ", ".join(found),
        _own().heads_shown,
        oldest,
    )


def _cannot_run(shown: str, found: tuple[str, ...], oldest: str | None) -> str:
    known = (
        f"the registry at {shown} is at revision {', '.join(found)}, which this version of "
        f"Ketenbroker does not know (a newer version migrated it; this version's newest is "
        f"{_own().heads_shown})"
    )
    if oldest is None:
        return (
            f"{known}, and it names no older version that can run on it; nothing was changed: "
            "run the newer version"
        )
    return (
        f"{known}, and only versions from revision {oldest} on can run on it; nothing was "
        f"changed: run a version whose newest revision is {oldest} or later"
    )


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
    registry at `url` whose schema this version cannot run on: none at all, an older revision,
    or a revision a newer version migrated without declaring this version able to run on it.
    One a newer version migrated that does declare so is accepted with one warning: a rolling
    upgrade (docs/operations.md). Reads and changes nothing: a SQLite file that does not exist
    is not created. The URL is shown without its password."""
    shown = _shown(url)
    found, oldest = _schema_at(url)
    fit = schema_fit(found, oldest)
    if fit is SchemaFit.AT_HEAD:
        return
    if fit is SchemaFit.NONE:
        raise ConfigurationError(f"the registry at {shown} has no schema: {remedy}")
    if fit is SchemaFit.BEHIND:
        raise ConfigurationError(
            f"the registry at {shown} is at revision {', '.join(found)}, this version needs "
            f"{_own().heads_shown}: {remedy}"
        )
    _run_on_newer(shown, found, oldest)


def check_newer_schema(url: str) -> None:
    """What a worker checks as it starts (`create_app`): a registry a newer version migrated is
    accepted with a warning or refused, as by `require_schema_at_head`. Anything else is left to
    /readyz: a schema that is missing or behind, or a database not answering yet, may be put
    right (`migrate`, the database back) while the worker runs."""
    try:
        found, oldest = _schema_at(url)
    except ConfigurationError:
        return  # not answering: /readyz says so until it does
    if _is_newer(found):
        _run_on_newer(_shown(url), found, oldest)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _schema_at(url: str) -> tuple[tuple[str, ...], str | None]:
    """The registry's revisions and its recorded oldest reader, read without changing it."""
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if sqlite and not Path(str(parsed.database)).exists():
        return (), None
    # SQLite read-only: open_engine's connection would switch the file to WAL, a change.
    engine = _read_only_sqlite(parsed) if sqlite else open_engine(url)
    try:
        with engine.connect() as connection:
            return _heads(connection), _oldest_reader(connection)
    except DBAPIError as error:
        # The driver's first line says why (refused, no such database, authentication); it
        # never holds the password, and the check makes sure.
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigurationError(
            f"cannot read the registry at {shown}: {failure_reason(error, parsed.password)}"
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
