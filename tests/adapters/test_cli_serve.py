"""`ketenbroker serve` checks the configuration and the registry's schema before gunicorn
starts: one clear line, and gunicorn never starts on a mistake."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result

from broker.cli.instance import init_instance
from broker.cli.main import main
from broker.config import load_settings
from broker.registry import migrate
from broker.registry.migration import alembic_config, migration_connection
from broker.web import create_app
from tests.support.live import free_ports
from tests.support.postgres import require_postgres
from tests.support.processes import running, wait_for, worker_pids


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The gunicorn command lines `serve` would have become (the test process stays itself)."""
    commands: list[list[str]] = []
    monkeypatch.setattr(
        "broker.cli.serve.os.execve", lambda _path, argv, _env: commands.append(argv)
    )
    return commands


def _config_on(tmp_path: Path, registry_url: str) -> Path:
    config = init_instance(tmp_path / "b", "http://127.0.0.1:8000", "b.example", "Test")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("sqlite:///registry.sqlite3", registry_url), encoding="utf-8")
    return config


def _serve(config: Path) -> Result:
    return CliRunner().invoke(main, ["serve", "--config", str(config), "--workers", "1"])


def test_serve_refuses_the_memory_store_with_several_workers(tmp_path: Path) -> None:
    config = init_instance(tmp_path / "b", "http://127.0.0.1:8000", "b.example", "Test")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--workers", "2"])
    assert result.exit_code == 1
    assert "memory:// serves one process only" in result.output
    assert "Traceback" not in result.output


def test_serve_reports_a_broken_configuration_without_starting(tmp_path: Path) -> None:
    config = tmp_path / "ketenbroker.toml"
    config.write_text("[broker]\nbase_url = 'ftp://x'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 1
    assert "broker.base_url" in result.output


def test_serve_refuses_an_empty_sqlite_registry_then_starts_after_migrate(
    tmp_path: Path, started: list[list[str]]
) -> None:
    registry = tmp_path / "new.sqlite3"
    registry.touch()  # created by hand, never migrated
    config = _config_on(tmp_path, f"sqlite:///{registry}")
    result = _serve(config)
    assert result.exit_code == 1 and started == []
    assert result.output == (
        f"Error: the registry at sqlite:///{registry} has no schema: "
        f'run "ketenbroker migrate --config {config}"\n'
    )
    assert registry.stat().st_size == 0  # looked at, not changed
    assert CliRunner().invoke(main, ["migrate", "--config", str(config)]).exit_code == 0
    result = _serve(config)
    assert result.exit_code == 0, result.output
    assert len(started) == 1 and "gunicorn" in started[0]


def test_serve_names_the_revision_of_a_registry_left_behind(
    tmp_path: Path, started: list[list[str]]
) -> None:
    from alembic import command

    registry = tmp_path / "old.sqlite3"
    config = _config_on(tmp_path, f"sqlite:///{registry}")
    with migration_connection(f"sqlite:///{registry}") as connection:
        command.upgrade(alembic_config(connection), "0013")
    result = _serve(config)
    assert result.exit_code == 1 and started == []
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"is at revision 0013, this version needs {head}: run" in result.output


@pytest.mark.postgres
def test_serve_refuses_an_empty_postgresql_database_without_showing_the_password(
    tmp_path: Path, started: list[list[str]]
) -> None:
    server = require_postgres()
    with server.fresh_database() as database:
        url = server.url(database).replace("@", ":not-the-password@", 1)
        config = _config_on(tmp_path, url)
        result = _serve(config)
        assert result.exit_code == 1 and started == []
        assert f"/{database} has no schema: run" in result.output
        assert ":***@" in result.output and "not-the-password" not in result.output
        migrate(load_settings(config).registry_url)
        result = _serve(config)
        assert result.exit_code == 0, result.output
        assert len(started) == 1
    # Dropped: the driver's reason, still without the password.
    result = _serve(config)
    assert result.exit_code == 1 and len(started) == 1
    assert f"cannot read the registry at postgresql+psycopg://{server.user}:***@" in result.output
    assert f'database "{database}" does not exist' in result.output
    assert "not-the-password" not in result.output


def test_serve_does_not_create_a_missing_sqlite_registry(
    tmp_path: Path, started: list[list[str]]
) -> None:
    config = _config_on(tmp_path, f"sqlite:///{tmp_path}/no-such-folder/r.sqlite3")
    result = _serve(config)
    assert result.exit_code == 1 and started == []
    assert "has no schema" in result.output
    assert not (tmp_path / "no-such-folder").exists()


def test_readyz_names_a_missing_schema_as_the_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What plain gunicorn (which `serve`'s check does not guard) meets on such a registry.
    registry = tmp_path / "new.sqlite3"
    registry.touch()
    app = create_app(load_settings(_config_on(tmp_path, f"sqlite:///{registry}")))
    with caplog.at_level(logging.WARNING, logger="broker.web.health"):
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "not ready check=registry error=RegistryNotMigrated" in caplog.text


def _metrics_folders(temporary: Path) -> list[Path]:
    return sorted(temporary.glob("ketenbroker-metrics-*"))


def _serve_process(config: Path, port: int, temporary: Path, log: Path) -> subprocess.Popen[bytes]:
    """The real `ketenbroker serve` (it becomes gunicorn), making its metrics folder in
    `temporary`, as it does in the system's temporary folder when PROMETHEUS_MULTIPROC_DIR is
    not set."""
    temporary.mkdir(exist_ok=True)
    environment = dict(os.environ, TMPDIR=str(temporary), PYTHONUNBUFFERED="1")
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    ketenbroker = Path(sys.executable).parent / "ketenbroker"
    command = [ketenbroker, "serve", "--config", config, "--bind", f"127.0.0.1:{port}"]
    with log.open("wb") as output:
        return subprocess.Popen(
            [*map(str, command), "--workers", "1"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_serve_on_a_port_in_use_exits_and_leaves_no_metrics_folder(tmp_path: Path) -> None:
    config = init_instance(tmp_path / "b", "http://127.0.0.1:8000", "b.example", "Test")
    temporary, log = tmp_path / "tmp", tmp_path / "serve.log"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = _serve_process(config, port, temporary, log)
        # gunicorn tries five times, a second apart, then exits without its on_exit hook.
        assert process.wait(60) != 0
    assert "Connection in use" in log.read_text(encoding="utf-8")
    assert _metrics_folders(temporary) == []


def test_the_metrics_folder_outlives_replaced_workers_and_goes_with_the_master(
    tmp_path: Path,
) -> None:
    config = init_instance(tmp_path / "b", "http://127.0.0.1:8000", "b.example", "Test")
    temporary, log = tmp_path / "tmp", tmp_path / "serve.log"
    port = free_ports(1)
    process = _serve_process(config, port, temporary, log)
    try:
        wait_for(lambda: len(worker_pids(process.pid)) == 1, f"a worker (log: {log})")
        [folder] = _metrics_folders(temporary)
        first = worker_pids(process.pid)
        # HUP: new workers, the old ones exit through Python (with the master's exit hooks).
        process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (now := worker_pids(process.pid)) != [] and not set(now) & set(first),
            "gunicorn to replace its worker",
        )
        assert folder.is_dir()
    finally:
        process.terminate()
        process.wait(30)
    assert _metrics_folders(temporary) == []


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _folder_of(temporary: Path, master: int) -> Path:
    [folder] = temporary.glob(f"ketenbroker-metrics-{master}-*")
    return folder


def test_a_master_removes_the_folder_a_killed_master_left_and_no_other(tmp_path: Path) -> None:
    """`kill -9` leaves the master's folder behind (no exit handler runs); the next master to
    start removes it, and leaves the folder of a master that is alive."""
    config = init_instance(tmp_path / "b", "http://127.0.0.1:8000", "b.example", "Test")
    temporary, port = tmp_path / "tmp", free_ports(3)
    logs = [tmp_path / f"serve-{n}.log" for n in range(3)]
    killed = _serve_process(config, port, temporary, logs[0])
    live = _serve_process(config, port + 1, temporary, logs[1])
    started = [killed, live]
    try:
        for offset, log in enumerate(logs[:2]):
            # Answering: a worker still booting (seconds of CPU) would end only after its boot.
            wait_for(lambda: _answers(port + offset), f"the broker (log: {log})", 90)
        killed_folder, live_folder = (
            _folder_of(temporary, killed.pid),
            _folder_of(temporary, live.pid),
        )
        [worker] = worker_pids(killed.pid)
        killed.kill()
        killed.wait(10)
        # Its worker sees its master gone and ends; until then it keeps the folder (its lock).
        wait_for(lambda: not running(worker), "the killed master's worker to end")
        assert killed_folder.is_dir()
        started.append(_serve_process(config, port + 2, temporary, logs[2]))
        wait_for(lambda: len(worker_pids(started[2].pid)) == 1, f"a worker (log: {logs[2]})")
        assert not killed_folder.exists()
        assert live_folder.is_dir() and _folder_of(temporary, started[2].pid).is_dir()
        said = logs[2].read_text(encoding="utf-8")
        assert f"removed {killed_folder}, the metrics folder of a master that was killed" in said
    finally:
        for process in started:
            process.terminate()
            process.wait(30)
    assert _metrics_folders(temporary) == []
