"""A school whose IdP metadata was given by URL follows an ADFS certificate roll-over
(AutoCertificateRollover): the URL is kept with the school, `ketenbroker metadata refresh` (the
operator's timer, run here as the operator runs it) fetches it again from a server on a loopback
port with `school update`'s checks, and a login signed with the new key is accepted after it,
without a restart. A download that fails, is not usable metadata, or is another IdP's keeps the
copy held (logins go on), and the run exits 1 saying why; a school given as a file is not
fetched."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree

from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.main import main
from broker.registry.cached import MAX_STALENESS_SECONDS
from broker.saml.metadata_changes import signing_fingerprints
from broker.saml.metadata_check import MD
from tests.flows.test_metadata_update import DS, _body
from tests.security.test_saml_attacks import accepted_for
from tests.security.test_saml_refusals import deliver, forged, start_login
from tests.support.feed import Feed
from tests.support.forge import SchoolForger
from tests.support.live import LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("school-refresh-demo")) as live:
        yield live


def _cli(demo: LiveDemo, *args: str) -> Result:
    config = str(demo.directory / "ketenbroker.toml")
    return CliRunner().invoke(main, [*args[:2], "--config", config, *args[2:]])


def with_next_certificate(
    metadata: str,
    cert: Path,
    uses: tuple[str | None, ...] = (None, "signing"),
    copy_use: str | None = "signing",
) -> str:
    """The next certificate published beside the current one (ADFS 20 days before the current
    one ends; a platform rolling its key, docs/publishers.md): each KeyDescriptor of `uses`
    again, before it, with `cert` (and `use` set to `copy_use` when given)."""
    root = etree.fromstring(metadata.encode())
    for current in [k for k in root.iter(f"{{{MD}}}KeyDescriptor") if k.get("use") in uses]:
        following = copy.deepcopy(current)
        if copy_use is not None:
            following.set("use", copy_use)
        (element,) = following.iter(f"{{{DS}}}X509Certificate")
        element.text = _body(cert)
        current.addprevious(following)
    text = etree.tostring(root, encoding="unicode")
    assert isinstance(text, str)
    return text


def _accepted(demo: LiveDemo, forger: SchoolForger) -> None:
    login = start_login(demo)
    accepted_for(demo, login, deliver(demo, login, forged(demo, forger, login)))


def _refused(demo: LiveDemo, forger: SchoolForger) -> None:
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, forger, login))
    assert page.status == 400, page.text[:300]


def test_the_refresh_follows_an_adfs_roll_over_from_the_registered_url(
    demo: LiveDemo, feed: Feed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registered = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    feed.body = registered.encode()
    given = _cli(demo, "school", "update", "--id", DEMO_SCHOOL_ID, "--saml-metadata", feed.url)
    assert given.exit_code == 0, given.output
    assert f"`ketenbroker metadata refresh` fetches {feed.url} again" in given.output
    assert demo.registry.metadata_urls("idp") == [(DEMO_SCHOOL_ID, demo.school_entity_id, feed.url)]

    key, cert = tmp_path / "adfs-next.key", tmp_path / "adfs-next.crt"
    write_pair(key, cert, "ADFS Signing - next")
    adfs_next = SchoolForger(
        demo.school_entity_id, key, cert, demo.broker.saml_entities.sp_metadata()
    )
    _refused(demo, adfs_next)  # the day ADFS switched, without the refresh: bad_signature

    rolled = with_next_certificate(registered, cert)
    feed.body = rolled.encode()
    generation = demo.registry.generation()
    with caplog.at_level(logging.INFO, logger="broker.cli.url_refresh"):
        result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 0, result.output
    assert f"school {DEMO_SCHOOL_ID} (IdP {demo.school_entity_id}): updated" in result.output
    (added,) = set(signing_fingerprints(rolled, "idp")) - set(
        signing_fingerprints(registered, "idp")
    )
    assert f"signing certificate added: SHA-256 {added}" in result.output
    assert demo.registry.generation() > generation
    (changed,) = [r for r in caplog.records if r.getMessage().startswith("school IdP signing")]
    assert changed.__dict__["entity_id"] == demo.school_entity_id
    assert changed.__dict__["added"] == added and changed.__dict__["removed"] == ""

    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    _accepted(demo, adfs_next)  # ADFS signs with the new certificate: logins go on
    _accepted(demo, demo_school_forger(demo))  # and with the old one until it is dropped

    # The same copy again: unchanged, no generation bump.
    generation = demo.registry.generation()
    again = _cli(demo, "metadata", "refresh")
    assert again.exit_code == 0 and "): unchanged" in again.output, again.output
    assert demo.registry.generation() == generation


# How a download goes wrong, and the reason the refresh gives for it.
SPOILED = [
    ("error", "metadata_invalid: cannot fetch the metadata: HTTP 500"),
    ("stopped", "metadata_invalid: cannot fetch the metadata"),
    ("not metadata", "metadata_invalid"),
    ("other entity", "other_entity_id"),
]


def spoil(feed: Feed, how: str, registered: str, entity_id: str) -> None:
    """The feed serving `registered` (for `entity_id`) goes wrong as SPOILED says."""
    if how == "error":
        feed.mode = "error"
    elif how == "stopped":
        feed.stop()
    elif how == "not metadata":
        feed.body = b"<html>maintenance</html>"
    else:
        feed.body = registered.replace(entity_id, "https://elders.example/trust").encode()


@pytest.mark.parametrize(("spoil_as", "reason"), SPOILED)
def test_a_failed_refresh_keeps_the_copy_held(
    demo: LiveDemo, feed: Feed, spoil_as: str, reason: str
) -> None:
    registered = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    feed.body = registered.encode()
    given = _cli(demo, "school", "update", "--id", DEMO_SCHOOL_ID, "--saml-metadata", feed.url)
    assert given.exit_code == 0, given.output
    spoil(feed, spoil_as, registered, demo.school_entity_id)
    generation = demo.registry.generation()
    result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 1, result.output
    assert f"school {DEMO_SCHOOL_ID} (IdP {demo.school_entity_id}): refused ({reason}" in (
        result.output
    )
    assert "the last good copy stays" in result.output
    assert demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID) == registered
    assert demo.registry.generation() == generation
    _accepted(demo, demo_school_forger(demo))


def test_a_school_given_as_a_file_is_not_fetched(
    demo: LiveDemo, feed: Feed, tmp_path: Path
) -> None:
    registered = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    feed.body = registered.encode()
    assert (
        _cli(
            demo, "school", "update", "--id", DEMO_SCHOOL_ID, "--saml-metadata", feed.url
        ).exit_code
        == 0
    )
    given_as_file_is_not_fetched(demo, feed, tmp_path / "idp.xml", ("school", DEMO_SCHOOL_ID))


def given_as_file_is_not_fetched(
    demo: LiveDemo, feed: Feed, copy: Path, entry: tuple[str, str]
) -> None:
    """The entry (("school", id) or ("publisher", id)) given its copy held as the file `copy`:
    its URL is forgotten, and the next refresh does not ask the feed."""
    command, entry_id = entry
    role = "idp" if command == "school" else "sp"
    copy.write_text(demo.registry.registered_metadata(role, entry_id), encoding="utf-8")
    given = _cli(demo, command, "update", "--id", entry_id, "--saml-metadata", str(copy))
    assert given.exit_code == 0, given.output
    assert "Given as a file: nothing fetches it again" in given.output
    assert demo.registry.metadata_urls(role) == []
    requests = feed.requests
    result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 0, result.output
    assert feed.requests == requests
