"""`ketenbroker serve` checks the configuration before gunicorn starts: one clear line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from broker.cli.instance import init_instance
from broker.cli.main import main


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
