"""Rolling upgrades (revision 0016, broker/registry/migration.py) on SQLite and PostgreSQL: the
registry records the oldest code that can run on its schema; this version serves on a registry a
newer version migrated when it records one of this version's revisions, with a warning, and is
refused, naming the oldest that can, when not; none of its commands migrates such a registry
(`migrate` says so and succeeds when it can run on it). /readyz follows the schema moving under
a running worker.

"Newer" is made as a newer version's `migrate` would leave it: a revision id this version does
not have in `alembic_version`, and that version's oldest reader in `schema_readers`."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command as alembic
from alembic.script import ScriptDirectory
from click.testing import Result
from sqlalchemy import column, delete, inspect, select, table, update
from sqlalchemy.engine import make_url

from broker.config import load_settings
from broker.core.errors import ConfigurationError
from broker.registry import migrate
from broker.registry.migration import (
    SCRIPT_LOCATION,
    alembic_config,
    effective_oldest_reader,
    migration_connection,
    model_drift,
    use_versions,
)
from broker.registry.tables import SchemaReadersRow
from broker.web import create_app
from tests.adapters.test_cli_serve import _config_on, _serve, started  # noqa: F401  # fixture
from tests.storage.test_publisher_integrity import HEAD, _move
from tests.support.cli import run
from tests.support.tables import table_of

REAL_VERSIONS = SCRIPT_LOCATION / "versions"
NEWER = "0099"  # a revision this version does not have
# Made-up revisions after this version's head (`with_revisions`): one that only adds, one that
# older code would break on.
ADDITIVE, BREAKING = f"{int(HEAD) + 1:04d}", f"{int(HEAD) + 2:04d}"
# The revisions after 0015, up to this version's head, as the migration files name them.
AFTER_0015 = ", ".join(
    sorted(f.name[:4] for f in REAL_VERSIONS.glob("[0-9]*.py") if "0015" < f.name[:4] <= HEAD)
)
READERS = table_of(SchemaReadersRow)
VERSIONS = table("alembic_version", column("version_num"))
WARNING = (
    f"registry schema at revision {NEWER} is newer than this version's {HEAD} and declares "
    "versions from revision 0015 on able to run on it: running on it; replace this version "
    "with the newer one soon"
)


State = tuple[tuple[str, ...], list[str] | None, list[str]]


def _state(url: str) -> State:
    """The registry's revisions, its recorded oldest readers (None: no table) and its tables."""
    with migration_connection(url) as connection:
        revisions = tuple(connection.scalars(select(VERSIONS.c.version_num)))
        tables = sorted(inspect(connection).get_table_names())
        readers = (
            list(connection.scalars(select(READERS.c.oldest_reader)))
            if READERS.name in tables
            else None
        )
    return revisions, readers, tables


def _made_newer(url: str, oldest_reader: str | None) -> None:
    """Migrated to this version's head, then left as a newer version would leave it."""
    migrate(url)
    _set_schema(url, NEWER, oldest_reader)


def _set_schema(url: str, revision: str, oldest_reader: str | None) -> None:
    """The registry's revision and recorded oldest reader (None: no row) set under whoever
    uses it, as another version's `migrate` would leave them."""
    with migration_connection(url) as connection:
        connection.execute(update(VERSIONS).values(version_num=revision))
        connection.execute(delete(READERS))
        if oldest_reader is not None:
            connection.execute(READERS.insert().values(oldest_reader=oldest_reader))


def _newer_broker(url: str, tmp_path: Path, oldest_reader: str | None) -> tuple[Path, State]:
    """A broker's configuration on the registry at `url` made newer, and the registry's state."""
    _made_newer(url, oldest_reader)
    return _config_on(tmp_path, url), _state(url)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _listed_schools(config: Path) -> Result:
    """`school list`, which leaves its registry's connections to the end of the process, as
    every command does: closed here, not in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        result = run("school", "list", "--config", config)
        gc.collect()
    return result


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def test_revision_0016_records_the_oldest_reader_and_goes_down_and_up_again(
    registry_url: str,
) -> None:
    migrate(registry_url)
    revisions, readers, tables = _state(registry_url)
    assert revisions == (HEAD,) and readers == ["0015"]
    assert model_drift(registry_url) == []
    _move(registry_url, "0015", down=True)
    # Down through 0021 (sealed_only), 0018 (chain_moves) and 0016 (schema_readers): only
    # their tables go.
    added = (READERS.name, "chain_moves", "sealed_only")
    assert _state(registry_url) == (("0015",), None, [t for t in tables if t not in added])
    migrate(registry_url)
    assert _state(registry_url) == ((HEAD,), ["0015"], tables)
    assert model_drift(registry_url) == []


def test_serve_and_workers_run_on_a_newer_registry_that_declares_this_version_compatible(
    registry_url: str,
    tmp_path: Path,
    started: list[list[str]],  # noqa: F811 - the imported fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, before = _newer_broker(registry_url, tmp_path, "0015")
    with caplog.at_level(logging.WARNING, logger="broker.registry.migration"):
        result = _serve(config)
        assert result.exit_code == 0, result.output
        assert len(started) == 1
        assert _warnings(caplog) == [WARNING]
        caplog.clear()
        app = create_app(load_settings(config))
        assert _warnings(caplog) == [WARNING]
    try:
        assert app.test_client().get("/readyz").text == "ready\n"
    finally:
        app.extensions["ketenbroker"].registry.close()
    assert _state(registry_url) == before


@pytest.mark.parametrize(
    ("oldest_reader", "reason"),
    [
        (
            "0098",
            "only versions from revision 0098 on can run on it; nothing was changed: run a "
            "version whose newest revision is 0098 or later",
        ),
        (
            None,
            "it names no older version that can run on it; nothing was changed: run the "
            "newer version",
        ),
    ],
)
def test_a_newer_registry_this_version_cannot_run_on_is_refused_everywhere(
    registry_url: str,
    tmp_path: Path,
    started: list[list[str]],  # noqa: F811 - the imported fixture
    oldest_reader: str | None,
    reason: str,
) -> None:
    config, before = _newer_broker(registry_url, tmp_path, oldest_reader)
    message = (
        f"the registry at {_shown(registry_url)} is at revision {NEWER}, which this version of "
        f"Ketenbroker does not know (a newer version migrated it; this version's newest is "
        f"{HEAD}), and {reason}"
    )
    result = _serve(config)
    assert (result.exit_code, result.output, started) == (1, f"Error: {message}\n", [])
    with pytest.raises(ConfigurationError) as refused:
        create_app(load_settings(config))
    assert str(refused.value) == message
    for command in (["migrate"], ["school", "list"]):
        result = run(*command, "--config", config)
        assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
    assert _state(registry_url) == before


def test_commands_of_this_version_use_a_newer_registry_and_never_migrate_it(
    registry_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, before = _newer_broker(registry_url, tmp_path, "0015")
    with caplog.at_level(logging.WARNING, logger="broker.registry.migration"):
        result = _listed_schools(config)
    assert result.exit_code == 0, result.output
    assert _warnings(caplog) == [WARNING]
    assert _state(registry_url) == before


def test_migrate_of_an_older_version_leaves_a_newer_registry_it_can_run_on_and_succeeds(
    registry_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An old image's one-shot `migrate` (an init container, compose's `migrate` service)
    # restarted during a rolling upgrade: its workers wait for it to succeed.
    config, before = _newer_broker(registry_url, tmp_path, "0015")
    note = (
        f"the registry is at revision {NEWER}, newer than this version's {HEAD}, and declares "
        "this version able to run on it: nothing to migrate; nothing was changed"
    )
    result = run("migrate", "--config", config)
    assert (result.exit_code, result.output) == (0, f"{note}\n")
    with caplog.at_level(logging.INFO, logger="broker.registry.migration"):
        caplog.clear()
        assert migrate(registry_url) == note
    assert [r.getMessage() for r in caplog.records] == [note]
    assert _state(registry_url) == before
    # At this version's own newest: nothing to say but that.
    _set_schema(registry_url, HEAD, "0015")
    result = run("migrate", "--config", config)
    assert (result.exit_code, result.output) == (0, "Registry schema is up to date.\n")
    assert migrate(registry_url) is None


def test_readyz_follows_the_schema_moving_under_a_running_worker(
    registry_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(registry_url)
    app = create_app(load_settings(_config_on(tmp_path, registry_url)))
    client = app.test_client()

    def readyz() -> tuple[int, str]:
        response = client.get("/readyz")
        return response.status_code, response.text

    ready, too_new, behind = (
        (200, "ready\n"),
        (503, "not ready: schema_too_new\n"),
        (503, "not ready: schema_behind\n"),
    )
    try:
        assert readyz() == ready
        # A newer release migrated that declares this version able to run on it: still ready.
        for oldest_reader in ("0015", HEAD):
            _set_schema(registry_url, NEWER, oldest_reader)
            assert readyz() == ready
        # One that does not, or names no version at all: out of the load balancer's pool.
        with caplog.at_level(logging.WARNING, logger="broker.web.health"):
            caplog.clear()  # the lines of the migration above
            for refusing_reader in ("0098", None):
                _set_schema(registry_url, NEWER, refusing_reader)
                assert readyz() == too_new
        assert caplog.messages == ["not ready check=schema_too_new error=SchemaNotServable"] * 2
        _set_schema(registry_url, HEAD, "0015")
        assert readyz() == ready
        # Behind: an older revision of this version's own, with `schema_readers` and (a back-up
        # from before revision 0016 restored) without it.
        _set_schema(registry_url, "0015", "0015")
        assert readyz() == behind
        _set_schema(registry_url, HEAD, "0015")
        assert readyz() == ready
        _move(registry_url, "0015", down=True)
        assert readyz() == behind
        migrate(registry_url)
        assert readyz() == ready
    finally:
        app.extensions["ketenbroker"].registry.close()


def test_the_oldest_reader_is_the_newest_any_applied_revision_declares() -> None:
    # Undeclared (None) counts as the revision itself: older code cannot run on it.
    assert effective_oldest_reader([("1", None), ("2", "1"), ("3", "1")]) == "1"
    assert effective_oldest_reader([("1", None), ("2", "2"), ("3", "3")]) == "3"
    # A later revision cannot lower the bar an earlier one raised.
    assert effective_oldest_reader([("1", None), ("2", "2"), ("3", "1")]) == "2"
    for wrong in ("4", "x"):
        with pytest.raises(
            ConfigurationError, match=f"revision 3 declares oldest_reader '{wrong}'"
        ):
            effective_oldest_reader([("1", None), ("2", "1"), ("3", wrong)])


def test_every_revision_from_0016_on_declares_its_oldest_reader() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    chain = [revision for revision in script.walk_revisions("base", "heads")][::-1]
    ids = [revision.revision for revision in chain]
    for revision in chain[ids.index("0016") :]:
        declared = getattr(revision.module, "oldest_reader", None)
        assert declared in ids[: ids.index(revision.revision) + 1], revision.revision


def _stamp(url: str, revision: str) -> None:
    with migration_connection(url) as connection:
        alembic.stamp(alembic_config(connection), revision)


def test_alembic_stamp_records_the_oldest_reader_only_where_the_table_is(
    registry_url: str,
) -> None:
    # Stamping changes no table: a schema from before 0016 stamped at it has no
    # `schema_readers` to write to, and is left without one (no row: the safe side).
    _move(registry_url, "0015")
    tables = _state(registry_url)[2]
    _stamp(registry_url, HEAD)
    assert _state(registry_url) == ((HEAD,), None, tables)
    # Where the table is, the stamped revisions' value is written.
    _stamp(registry_url, "0015")
    migrate(registry_url)
    _set_schema(registry_url, HEAD, None)
    _stamp(registry_url, "0015")
    _stamp(registry_url, HEAD)
    assert _state(registry_url)[:2] == ((HEAD,), ["0015"])


def test_the_revision_history_is_one_straight_line() -> None:
    why = (
        "the registry's revisions must stay one straight line (docs/architecture.md, 'Writing "
        "a registry migration'): the oldest_reader rule walks 'at or before' along it, so a "
        "branch or merge would let an older version run on a schema changed by a revision it "
        "never had; carry a hotfix revision forward in the same order, and make the next "
        "revision revise it"
    )
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"heads {script.get_heads()}: {why}"
    for revision in script.walk_revisions():
        down = revision.down_revision
        assert down is None or isinstance(down, str), f"{revision.revision} merges {down}: {why}"
        assert not revision.branch_labels, f"{revision.revision} has branch labels: {why}"
        assert not revision.dependencies, f"{revision.revision} depends on others: {why}"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_commands_and_serve_warn_in_the_configured_log_format(
    registry_url: str, tmp_path: Path, log_format: str
) -> None:
    # A real process: the handler is installed once per process, on its standard error.
    config, _ = _newer_broker(registry_url, tmp_path, "0015")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('format = "json"', f'format = "{log_format}"'), "utf-8")
    ketenbroker = Path(sys.executable).parent / "ketenbroker"
    for command in (["school", "list"], ["migrate"]):
        done = subprocess.run(
            [str(ketenbroker), *command, "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        if command == ["migrate"]:
            # Nothing to warn of: it says so on standard output, and logs it as a line.
            assert done.stdout.startswith(f"the registry is at revision {NEWER}")
            expected = ("INFO", done.stdout.strip())
        else:
            expected = ("WARNING", WARNING)
        assert len(lines) == 1, done.stderr
        if log_format == "json":
            entry = json.loads(lines[0])
            assert (entry["level"], entry["logger"], entry["message"]) == (
                expected[0],
                "broker.registry.migration",
                expected[1],
            )
            assert entry["request_id"] is None
        else:
            assert lines[0].endswith(
                f" {expected[0]} broker.registry.migration [None] {expected[1]}"
            ), lines[0]
    # `serve`: its first line, before gunicorn starts (gunicorn then logs its own).
    serve = ["serve", "--config", str(config), "--workers", "1", "--bind", "127.0.0.1:0"]
    serving = subprocess.Popen(
        [str(ketenbroker), *serve],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serving.stderr is not None
        first = serving.stderr.readline()
    finally:
        serving.terminate()
        serving.communicate(timeout=60)
    if log_format == "json":
        assert json.loads(first)["message"] == WARNING
    else:
        assert first.rstrip("\n").endswith(f" WARNING broker.registry.migration [None] {WARNING}")


_EXTRA = '''"""A made-up revision for the tests."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
oldest_reader = "{oldest}"


def upgrade() -> None:
    op.create_table("extra_{revision}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("extra_{revision}")
'''


@pytest.fixture
def with_revisions(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Makes this version's revisions the real ones plus made-up later ones, each given as
    (revision, oldest_reader), in a folder of copies; the real ones again afterwards."""

    def made(*extra: tuple[str, str]) -> None:
        folder = tmp_path / f"versions-{len(list(tmp_path.glob('versions-*')))}"
        shutil.copytree(REAL_VERSIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        down = HEAD
        for revision, oldest in extra:
            source = _EXTRA.format(revision=revision, down=down, oldest=oldest)
            (folder / f"{revision}_extra.py").write_text(source, encoding="utf-8")
            down = revision
        use_versions(folder)

    yield made
    use_versions(REAL_VERSIONS)


def _check(config: Path) -> tuple[int, list[str]]:
    result = run("migrate", "--check", "--config", config)
    return result.exit_code, result.output.splitlines()


def test_migrate_check_says_what_an_additive_and_a_breaking_revision_would_do(
    registry_url: str, tmp_path: Path, with_revisions: Callable[..., None]
) -> None:
    config = _config_on(tmp_path, registry_url)
    with_revisions((ADDITIVE, HEAD), (BREAKING, BREAKING))
    unchanged = "nothing was changed (--check)"
    _move(registry_url, HEAD)
    before = _state(registry_url)
    assert _check(config) == (
        1,
        [
            f"would migrate the registry from {HEAD} to {BREAKING}: {ADDITIVE}, {BREAKING}",
            f"oldest_reader after it: {BREAKING} (now: 0015)",
            f"a version at revision {HEAD} could NOT run on it: stop its workers before "
            "migrating (docs/operations.md, 'Upgrading without downtime')",
            unchanged,
        ],
    )
    assert _state(registry_url) == before
    # Up one step at a time, and down again: the record follows every step.
    _move(registry_url, ADDITIVE)
    assert _state(registry_url)[:2] == ((ADDITIVE,), [HEAD])
    assert _check(config)[0] == 1
    _move(registry_url, BREAKING)
    assert _state(registry_url)[:2] == ((BREAKING,), [BREAKING])
    assert _check(config) == (
        0,
        [
            f"the registry is at revision {BREAKING} (oldest_reader {BREAKING}): nothing to migrate",
            unchanged,
        ],
    )
    _move(registry_url, ADDITIVE, down=True)
    assert _state(registry_url)[:2] == ((ADDITIVE,), [HEAD])
    _move(registry_url, HEAD, down=True)
    assert _state(registry_url) == before
    # Only the additive one: the version at HEAD keeps running.
    with_revisions((ADDITIVE, HEAD))
    assert _check(config) == (
        0,
        [
            f"would migrate the registry from {HEAD} to {ADDITIVE}: {ADDITIVE}",
            f"oldest_reader after it: {HEAD} (now: 0015)",
            f"a version at revision {HEAD} could still run on it: its workers may keep "
            "serving while you migrate and replace them",
            unchanged,
        ],
    )
    assert _state(registry_url) == before


def test_migrate_check_on_an_empty_an_older_and_a_newer_registry(
    registry_url: str, tmp_path: Path
) -> None:
    config = _config_on(tmp_path, registry_url)
    code, lines = _check(config)
    assert code == 0 and lines[0].startswith(f"would migrate the registry from no schema to {HEAD}")
    assert lines[1:] == [
        "oldest_reader after it: 0015 (now: none recorded)",
        "no version runs on it now: nothing to break",
        "nothing was changed (--check)",
    ]
    _move(registry_url, "0015")
    assert _check(config) == (
        1,
        [
            f"would migrate the registry from 0015 to {HEAD}: {AFTER_0015}",
            "oldest_reader after it: 0015 (now: none recorded)",
            "a version at revision 0015 could NOT run on it (it refuses every revision it does "
            "not know): stop its workers before migrating",
            "nothing was changed (--check)",
        ],
    )
    migrate(registry_url)
    _set_schema(registry_url, NEWER, "0015")
    code, lines = _check(config)
    assert code == 0 and lines[0].endswith(
        "declares this version able to run on it: nothing to migrate"
    )
    _set_schema(registry_url, NEWER, "0098")
    assert _check(config)[0] == 1


def test_version_names_the_registry_schema_revision() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.startswith("ketenbroker ")
    assert result.output.endswith(f" (registry schema {HEAD})\n")
