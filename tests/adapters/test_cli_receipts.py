"""`ketenbroker receipts verify | prune | export | init-key` and `school privacy-contact`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli.main import main
from broker.config import load_settings
from broker.core.model import Release, School, Service, UpstreamIdentity
from broker.core.receipts import receipt_content
from broker.registry import SqlRegistry
from tests.support.cli import run

DAY = 24 * 3600


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    result = run("init", tmp_path / "broker", "--base-url", "http://127.0.0.1:8000")
    assert result.exit_code == 0, result.output
    return tmp_path / "broker" / "ketenbroker.toml"


def write_receipts(config: Path, ages_in_days: list[int]) -> None:
    settings = load_settings(config)
    registry = SqlRegistry(settings.registry_url)
    book = registry.receipt_book(settings.receipts.keys)
    school = School("99XX00", "A", "https://a.example")
    service = Service("leesplank", "Leesplank", "https://l.example", None)
    now = int(time.time())
    for i, age in enumerate(ages_in_days):
        book.append(
            receipt_content(
                settings.receipts.keys,
                issued_at=now - age * DAY,
                school=school,
                service=service,
                identity=UpstreamIdentity(school.id, f"leerling-{i}"),
                release=Release("p" * 64, {"groups": ("1a",)}, 1),
            )
        )
    registry.close()


def test_init_writes_a_receipts_key_of_its_own(instance: Path) -> None:
    key = (instance.parent / "keys" / "receipt-key").read_text(encoding="utf-8")
    assert len(bytes.fromhex(key)) == 32
    assert (instance.parent / "keys" / "receipt-key").stat().st_mode & 0o077 == 0
    assert key not in (instance.parent / "keys" / "pseudonym-keys.toml").read_text()


def test_verify_reports_intact_chains_then_the_first_break(instance: Path) -> None:
    write_receipts(instance, [3, 2, 1, 0])
    ok = run("receipts", "verify", "--config", instance)
    assert ok.exit_code == 0, ok.output
    assert "99XX00: 4 receipts, chain intact" in ok.output
    with sqlite3.connect(instance.parent / "registry.sqlite3") as db:
        db.execute("UPDATE receipts SET service_id = 'elsewhere' WHERE seq = 2")
    broken = CliRunner().invoke(main, ["receipts", "verify", "--config", str(instance)])
    assert broken.exit_code == 1
    assert "99XX00: BROKEN at receipt 2: content altered" in broken.output
    assert "1 school chain(s) broken" in broken.output


def test_prune_removes_receipts_past_retention_and_keeps_the_chain(instance: Path) -> None:
    write_receipts(instance, [400, 380, 10, 0])
    result = run("receipts", "prune", "--config", instance)
    assert result.exit_code == 0, result.output
    assert "Removed 2 receipts older than 365 days from 1 schools." in result.output
    assert "2 receipts, chain intact" in run("receipts", "verify", "--config", instance).output
    assert (
        "Removed 1 receipts" in run("receipts", "prune", "--config", instance, "--days", "5").output
    )


def test_export_writes_csv_and_json(instance: Path) -> None:
    write_receipts(instance, [2, 1])
    out = run("receipts", "export", "--config", instance, "--school", "99XX00")
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert [r["seq"] for r in rows] == ["1", "2"] and rows[0]["attributes"] == "groups"
    parsed = json.loads(
        run(
            "receipts", "export", "--config", instance, "--school", "99XX00", "--format", "json"
        ).output
    )
    assert [r["seq"] for r in parsed] == [1, 2]


def test_init_key_creates_a_missing_key_and_never_overwrites(instance: Path) -> None:
    key_file = instance.parent / "keys" / "receipt-key"
    refused = CliRunner().invoke(main, ["receipts", "init-key", "--config", str(instance)])
    assert refused.exit_code == 1 and "exists already" in refused.output
    key_file.unlink()
    broken = CliRunner().invoke(main, ["receipts", "verify", "--config", str(instance)])
    assert broken.exit_code == 1 and "keys.receipt_key" in broken.output
    assert run("receipts", "init-key", "--config", instance).exit_code == 0
    assert len(bytes.fromhex(key_file.read_text())) == 32


def test_privacy_contact_is_checked_and_stored(instance: Path, tmp_path: Path) -> None:
    settings = load_settings(instance)
    registry = SqlRegistry(settings.registry_url)
    registry.add_school(School("99XX00", "A", "https://idp.school.example/metadata"), "")
    bad = CliRunner().invoke(
        main,
        [
            "school",
            "privacy-contact",
            "--config",
            str(instance),
            "--id",
            "99XX00",
            "--contact",
            "javascript:alert(1)",
        ],
    )
    assert bad.exit_code == 2 and "https://" in bad.output
    good = run(
        "school",
        "privacy-contact",
        "--config",
        instance,
        "--id",
        "99XX00",
        "--contact",
        "privacy@school.example",  # what a privacy officer types: stored as a mailto: link
    )
    assert good.exit_code == 0, good.output
    school = registry.school("99XX00")
    assert school is not None and school.privacy_contact == "mailto:privacy@school.example"
    # It travels with the registry file: export, then import the same file, and it stays.
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", instance, exported).exit_code == 0
    assert 'privacy_contact = "mailto:privacy@school.example"' in exported.read_text()
    # A registry file written by hand may give the bare address too.
    exported.write_text(exported.read_text().replace("mailto:privacy@", "privacy@"))
    imported = run("registry", "import", "--config", instance, exported)
    assert imported.exit_code == 0, imported.output
    school = registry.school("99XX00")
    assert school is not None and school.privacy_contact == "mailto:privacy@school.example"
    unknown = CliRunner().invoke(
        main,
        [
            "school",
            "privacy-contact",
            "--config",
            str(instance),
            "--id",
            "00NO00",
            "--contact",
            "https://school.example/privacy",
        ],
    )
    assert unknown.exit_code == 1 and "00NO00" in unknown.output
    registry.close()
