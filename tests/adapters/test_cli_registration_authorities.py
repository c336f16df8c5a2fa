"""A source's `registration_authorities` through the real commands: `metadata refresh` counts
the members it left out, `metadata status` shows the list and whether the copy held was read
under it, and a bad list is refused when the configuration loads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.metadata_aggregate import registered_by, signed_aggregate, sp_entity
from broker.cli.instance import init_instance
from tests.adapters.test_cli_metadata import MEMBER, SIGNER_CERT, SIGNER_KEY
from tests.support.cli import run
from tests.support.feed import Feed
from tests.unit.test_registration_authorities import ABROAD, NATIONAL


def _source(feed: Feed, signer: Path, listed: str) -> str:
    return (
        f'\n[[metadata.sources]]\nname = "federation"\nurl = "{feed.url}"\n'
        f'signing_certs = ["{signer}"]\n{listed}\n'
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[Path, Feed, str]]:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    signer = tmp_path / "signer.crt"
    signer.write_bytes(SIGNER_CERT)
    feed = Feed()
    feed.body = signed_aggregate(
        [
            registered_by(
                sp_entity(f"https://sp{n}.example/md", f"https://sp{n}.example/acs", MEMBER),
                authority,
            )
            for n, authority in enumerate((NATIONAL, ABROAD))
        ],
        SIGNER_KEY,
        valid_until=datetime.now(UTC) + timedelta(days=7),
    )
    base = config.read_text(encoding="utf-8")
    config.write_text(
        base + _source(feed, signer, f'registration_authorities = ["{NATIONAL}"]'),
        encoding="utf-8",
    )
    try:
        yield config, feed, base + _source(feed, signer, "")
    finally:
        feed.stop()


def test_refresh_counts_and_status_shows_the_list(broker: tuple[Path, Feed, str]) -> None:
    config, _, unlisted = broker
    before = run("metadata", "status", "--config", config)
    assert f"  registration authorities: {NATIONAL}\n" in before.output

    refreshed = run("metadata", "refresh", "--config", config)
    assert refreshed.exit_code == 0, refreshed.output
    assert (
        "federation: updated, 1 entities (1 registered by an authority not listed)"
        in refreshed.output
    )
    status = run("metadata", "status", "--config", config)
    assert status.exit_code == 0, status.output
    assert "federation: ok; 1 entities" in status.output
    assert f"  registration authorities: {NATIONAL}\n" in status.output

    # The list taken out of the configuration: the copy held says so until the next refresh.
    config.write_text(unlisted, encoding="utf-8")
    changed = run("metadata", "status", "--config", config)
    assert (
        "  registration authorities: any (no list); the copy held was read under another list "
        "until the next refresh\n" in changed.output
    )
    again = run("metadata", "refresh", "--config", config)
    assert "federation: updated, 2 entities" in again.output
    assert (
        "  registration authorities: any (no list)\n"
        in run("metadata", "status", "--config", config).output
    )


def test_a_bad_list_is_refused_at_load_naming_the_key(
    broker: tuple[Path, Feed, str],
) -> None:
    config, _, _ = broker
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f'["{NATIONAL}"]', '["www.federation.example"]'), "utf-8")
    result = run("metadata", "status", "--config", config)
    assert result.exit_code == 1
    assert (
        "metadata.sources[0].registration_authorities: 'www.federation.example' is not an "
        "absolute URI" in result.output
    )
