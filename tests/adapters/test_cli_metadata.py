"""`ketenbroker metadata refresh` and `metadata status`, and registering a school or publisher
whose metadata comes from a source (`--saml-entity-id`), through the real command."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.metadata_aggregate import certificate_body, idp_entity, signed_aggregate, sp_entity
from broker.certificates import self_signed_pair
from broker.cli.instance import init_instance
from broker.config import load_settings
from broker.registry import SqlRegistry
from broker.web.logs import JsonFormatter
from tests.support.cli import run
from tests.support.feed import Feed

SIGNER_KEY, SIGNER_CERT = self_signed_pair("federation signer")
MEMBER = certificate_body(self_signed_pair("member")[1])
SP = "https://sp.publisher.example/metadata"
IDP = "https://idp.school.example/metadata"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[Path, Feed]]:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    (tmp_path / "signer.crt").write_bytes(SIGNER_CERT)
    feed = Feed()
    aggregate = signed_aggregate(
        [sp_entity(SP, "https://sp.publisher.example/acs", MEMBER)],
        SIGNER_KEY,
        valid_until=datetime.now(UTC) + timedelta(days=7),
    )
    (tmp_path / "school.xml").write_bytes(
        signed_aggregate(
            [idp_entity(IDP, "https://idp.school.example/sso", MEMBER)],
            SIGNER_KEY,
            valid_until=datetime.now(UTC) + timedelta(days=7),
        )
    )
    feed.body = aggregate
    with config.open("a", encoding="utf-8") as handle:
        handle.write(
            f"""
[[metadata.sources]]
name = "federation"
url = "{feed.url}"
signing_certs = ["{tmp_path / "signer.crt"}"]
refresh_seconds = 600

[[metadata.sources]]
name = "one-school"
file = "{tmp_path / "school.xml"}"
signing_certs = ["{tmp_path / "signer.crt"}"]
"""
        )
    try:
        yield config, feed
    finally:
        feed.stop()


def test_refresh_then_status(broker: tuple[Path, Feed]) -> None:
    config, feed = broker
    missing = run("metadata", "status", "--config", config)
    assert missing.exit_code == 1
    assert "federation: missing (never_fetched)" in missing.output

    refreshed = run("metadata", "refresh", "--config", config)
    assert refreshed.exit_code == 0, refreshed.output
    assert "federation: updated, 1 entities" in refreshed.output
    assert "one-school: updated, 1 entities" in refreshed.output

    status = run("metadata", "status", "--config", config)
    assert status.exit_code == 0, status.output
    assert "federation: ok; 1 entities" in status.output

    feed.stop()
    failed = run("metadata", "refresh", "--config", config, "--source", "federation")
    assert failed.exit_code == 1
    assert "federation: refused (fetch_failed); the last good copy stays" in failed.output
    assert "one-school" not in failed.output


def test_refresh_names_an_unknown_source(broker: tuple[Path, Feed]) -> None:
    config, _ = broker
    result = run("metadata", "refresh", "--config", config, "--source", "nope")
    assert result.exit_code == 2 and "no source named nope" in result.output


def test_going_back_to_an_older_feed_names_the_source(broker: tuple[Path, Feed]) -> None:
    config, feed = broker
    newer = feed.body
    feed.body = signed_aggregate(
        [sp_entity(SP, "https://sp.publisher.example/old-acs", MEMBER)],
        SIGNER_KEY,
        valid_until=datetime.now(UTC) + timedelta(days=6),
    )
    older = feed.body
    feed.body = newer
    assert run("metadata", "refresh", "--config", config).exit_code == 0
    feed.body = older
    replayed = run("metadata", "refresh", "--config", config)
    assert replayed.exit_code == 1
    assert "federation: refused (older_than_held); the last good copy stays" in replayed.output
    status = run("metadata", "status", "--config", config)
    assert "federation: ok (metadata_refused:older_than_held)" in status.output
    # A timer's run never goes back: the operator names the source.
    unnamed = run("metadata", "refresh", "--config", config, "--allow-older")
    assert unnamed.exit_code == 2 and "name the source" in unnamed.output
    back = run("metadata", "refresh", "--config", config, "--source", "federation", "--allow-older")
    assert back.exit_code == 0 and "federation: updated, 1 entities" in back.output


def test_register_by_entity_id_before_and_after_the_source_has_it(
    broker: tuple[Path, Feed],
) -> None:
    config, _ = broker
    early = run(
        "publisher", "add", "--config", config, "--id", "pub", "--name", "Pub",
        "--saml-entity-id", SP,
    )  # fmt: skip
    assert early.exit_code == 0, early.output
    assert "No metadata source holds" in early.output
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        assert SP not in registry.service_metadata()
        assert run("metadata", "refresh", "--config", config).exit_code == 0
        assert SP in registry.service_metadata()
        assert registry.federation.entity(IDP, "idp") is not None
        late = run(
            "school", "add", "--config", config, "--id", "12AB", "--name", "School",
            "--saml-entity-id", IDP,
        )  # fmt: skip
        assert late.exit_code == 0 and "No metadata source" not in late.output
        assert "fetches it again" not in late.output  # the source's copy follows the source
        assert IDP in registry.school_metadata()
    finally:
        registry.close()


def test_one_way_of_giving_metadata_at_a_time(broker: tuple[Path, Feed]) -> None:
    config, _ = broker
    result = run(
        "publisher", "add", "--config", config, "--id", "pub", "--name", "Pub",
        "--saml-entity-id", SP, "--saml-metadata", "x.xml",
    )  # fmt: skip
    assert result.exit_code == 2 and "exactly one" in result.output


def test_status_without_sources_says_so(tmp_path: Path) -> None:
    # No sources is a state of its own, neither "all well" nor a command that did nothing.
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    result = run("metadata", "status", "--config", config)
    assert result.exit_code == 0
    assert result.output == "No [[metadata.sources]] configured; nothing to check.\n"


def test_bad_source_configuration_is_refused_at_load(tmp_path: Path) -> None:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    with config.open("a", encoding="utf-8") as handle:
        handle.write('\n[[metadata.sources]]\nname = "fed"\nurl = "https://fed.example/md.xml"\n')
    result = run("metadata", "status", "--config", config)
    assert result.exit_code == 1
    assert "metadata.sources[0].signing_certs: name the signer's certificate" in result.output


def test_export_and_import_keep_registrations_by_entity_id(
    broker: tuple[Path, Feed], tmp_path: Path
) -> None:
    config, _ = broker
    for kind, entity_id in (("publisher", SP), ("school", IDP)):
        added = run(
            kind, "add", "--config", config, "--id", "x1" if kind == "publisher" else "12AB",
            "--name", "X", "--saml-entity-id", entity_id,
        )  # fmt: skip
        assert added.exit_code == 0, added.output
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert f'saml_entity_id = "{SP}"' in text and f'saml_entity_id = "{IDP}"' in text

    other = init_instance(tmp_path / "other", "http://127.0.0.1:8001", "kb.example", "KB")
    imported = run("registry", "import", "--config", other, exported)
    assert imported.exit_code == 0, imported.output
    registry = SqlRegistry(load_settings(other).registry_url)
    try:
        school = registry.school("12AB")
        assert school is not None and school.idp_entity_id == IDP
        assert registry.snapshot().services[0].service.entity_id == SP
    finally:
        registry.close()


def test_a_board_idp_held_by_a_source_takes_its_next_school_after_a_roll_over(
    broker: tuple[Path, Feed], tmp_path: Path
) -> None:
    """Logins use the source's copy of an IdP a source holds, so no school's own copy is
    compared: after the source's copy rolls over, the board's next school still joins (and
    `--saml-entity-id` stores no copy of its own, as `registry import` stores none)."""
    config, _ = broker
    assert run("metadata", "refresh", "--config", config).exit_code == 0
    first = run("school", "add", "--config", config, "--id", "12AB", "--name", "Noord",
                "--saml-entity-id", IDP)  # fmt: skip
    assert first.exit_code == 0, first.output
    (tmp_path / "school.xml").write_bytes(
        signed_aggregate(
            [idp_entity(IDP, "https://idp.school.example/sso-rolled", MEMBER)],
            SIGNER_KEY,
            valid_until=datetime.now(UTC) + timedelta(days=8),
        )
    )
    rolled = run("metadata", "refresh", "--config", config, "--source", "one-school")
    assert rolled.exit_code == 0, rolled.output
    second = run("school", "add", "--config", config, "--id", "12AC", "--name", "Zuid",
                 "--saml-entity-id", IDP)  # fmt: skip
    assert second.exit_code == 0, second.output
    assert "shared with school(s) 12AB" in second.output
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        assert [s.id for s in registry.schools_by_idp(IDP)] == ["12AB", "12AC"]
        assert registry.registered_metadata("idp", "12AB") == ""
        assert "sso-rolled" in registry.school_metadata()[IDP]
        assert registry.idp_names_school(IDP)
    finally:
        registry.close()


def test_registry_problems_exits_1_until_nothing_needs_attention(
    broker: tuple[Path, Feed],
) -> None:
    """`registry problems`, the operator portal's "Needs attention" report for cron: two
    sources never fetched and a service registered by an entity id no source holds yet, then
    nothing once the sources are read; the same report as JSON."""
    config, _ = broker
    assert run("publisher", "add", "--config", config, "--id", "pub", "--name", "Pub",
               "--saml-entity-id", SP).exit_code == 0  # fmt: skip
    before = run("registry", "export", "--config", config, config.parent / "before.toml")
    assert before.exit_code == 0
    found = run("registry", "problems", "--config", config)
    assert found.exit_code == 1, found.output
    # In the words of the portal's page (web/attention_words.py), with what to do.
    assert found.output == (
        "Needs attention: 2 kinds.\n"
        "Services students cannot sign in to: 1\n"
        "  pub  Pub  (service_metadata_missing)\n"
        "  What to do: Ask the publisher to register the service's SAML metadata on the "
        "service's page, or register it yourself with ketenbroker publisher update; when a "
        "metadata source is to supply it, run ketenbroker metadata refresh and check "
        "ketenbroker metadata status.\n"
        "Metadata sources that are not trusted: 2\n"
        "  federation  (missing)\n"
        "  one-school  (missing)\n"
        "  What to do: Check ketenbroker metadata status and the log of the refresh, and run "
        "ketenbroker metadata refresh.\n"
    )
    as_json = json.loads(run("registry", "problems", "--config", config, "--json").output)
    assert as_json["needs_attention"] is True
    assert [(k["kind"], k["severity"], k["total"]) for k in as_json["kinds"]] == [
        ("services_logins_refused", "logins_refused", 1),
        ("sources_untrusted", "logins_refused", 2),
    ]
    assert as_json["kinds"][0]["entries"] == [
        {"id": "pub", "name": "Pub", "reason": "service_metadata_missing"}
    ]
    # Read only: the registry is as it was.
    after = run("registry", "export", "--config", config, config.parent / "after.toml")
    assert after.exit_code == 0
    assert (config.parent / "before.toml").read_text() == (config.parent / "after.toml").read_text()

    assert run("metadata", "refresh", "--config", config).exit_code == 0
    fine = run("registry", "problems", "--config", config)
    assert (fine.exit_code, fine.output) == (0, "Nothing needs attention.\n")
    quiet = run("registry", "problems", "--config", config, "--json")
    assert quiet.exit_code == 0
    assert json.loads(quiet.output) == {"needs_attention": False, "kinds": []}


def test_registry_problems_names_a_service_its_source_left_out(
    broker: tuple[Path, Feed],
) -> None:
    """The feed holds the service but left it out (a plain-http ACS URL): not
    `service_metadata_missing`, whose advice (register its metadata) does not mend it; the
    source's reason and words for it, as text and as JSON."""
    config, feed = broker
    assert run("publisher", "add", "--config", config, "--id", "pub", "--name", "Pub",
               "--saml-entity-id", SP).exit_code == 0  # fmt: skip
    other = "https://other.publisher.example/metadata"
    feed.body = signed_aggregate(
        [
            sp_entity(SP, "http://sp.publisher.example/acs", MEMBER),
            sp_entity(other, "https://other.publisher.example/acs", MEMBER),
        ],
        SIGNER_KEY,
        valid_until=datetime.now(UTC) + timedelta(days=7),
    )
    refreshed = run("metadata", "refresh", "--config", config)
    assert refreshed.exit_code == 0, refreshed.output
    problem = (
        "ACS URL 'http://sp.publisher.example/acs' of https://sp.publisher.example/metadata "
        "must be https (plain http only on loopback)"
    )
    assert f"left out {SP} (sp): entity_unusable: {problem}" in refreshed.output
    found = run("registry", "problems", "--config", config)
    assert found.exit_code == 1
    assert found.output == (
        "Needs attention: 1 kind.\n"
        "Services students cannot sign in to: 1\n"
        f"  pub  Pub  (service_entry_unusable: {problem})\n"
        "  What to do: A metadata source holds this service but left its entry out, so "
        "registering its metadata here does not mend it: ask the publisher to have its entry "
        "in its federation corrected. ketenbroker registry problems and ketenbroker metadata "
        "refresh say what is wrong with it.\n"
    )
    as_json = json.loads(run("registry", "problems", "--config", config, "--json").output)
    assert as_json["kinds"][0]["entries"] == [
        {"id": "pub", "name": "Pub", "reason": "service_entry_unusable", "detail": problem}
    ]


def test_registry_problems_all_lists_every_entry(
    broker: tuple[Path, Feed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first entries of a kind the report counts the rest; `--all` lists them, as
    text and as JSON (the portal's page points there)."""
    import broker.cli.registry_problems as problems

    config, _ = broker
    monkeypatch.setattr(problems, "SHOWN", 1)  # the first one of the two sources never fetched
    capped = run("registry", "problems", "--config", config)
    assert capped.exit_code == 1
    assert "  federation  (missing)\n  and 1 more (--all lists them all)\n" in capped.output
    every = run("registry", "problems", "--config", config, "--all")
    assert every.exit_code == 1
    assert "  federation  (missing)\n  one-school  (missing)\n  What to do" in every.output
    assert "more" not in every.output
    for flags, listed in ((), ["federation"]), (("--all",), ["federation", "one-school"]):
        as_json = json.loads(
            run("registry", "problems", "--config", config, "--json", *flags).output
        )
        [kind] = as_json["kinds"]
        assert kind["total"] == 2 and [e["id"] for e in kind["entries"]] == listed


def test_registry_problems_exits_2_when_the_check_itself_fails(
    broker: tuple[Path, Feed], tmp_path: Path
) -> None:
    """A monitoring check tells "needs attention" (1) from "could not tell" (2): a
    configuration that does not load, a registry that cannot be reached."""
    missing = run("registry", "problems", "--config", tmp_path / "nowhere.toml")
    assert missing.exit_code == 2 and "Error:" in missing.output
    config, _ = broker
    unreachable = tmp_path / "unreachable.toml"
    text = config.read_text(encoding="utf-8")
    assert 'url = "sqlite:///registry.sqlite3"' in text
    unreachable.write_text(
        text.replace(
            'url = "sqlite:///registry.sqlite3"',
            'url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"',
        ),
        encoding="utf-8",
    )
    down = run("registry", "problems", "--config", unreachable, "--json")
    assert down.exit_code == 2 and "Error:" in down.output
    assert "needs_attention" not in down.output


def test_registry_problems_exits_2_on_an_error_no_command_expects(
    broker: tuple[Path, Feed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that fails halfway (any error the command does not turn into a message):
    still "could not tell", never Python's own exit status 1."""
    import broker.cli.registry_problems as problems

    def failing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(problems, "gather_attention_report", failing)
    config, _ = broker
    assert run("registry", "problems", "--config", config).exit_code == 2


@contextmanager
def json_log() -> Iterator[list[dict[str, object]]]:
    """The broker's log lines while the block runs, each as the JSON formatter writes it."""
    lines: list[dict[str, object]] = []
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("broker")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines += [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_refused_source_is_named_with_its_reason_in_the_log(
    broker: tuple[Path, Feed],
) -> None:
    config, feed = broker
    feed.body = signed_aggregate(
        [sp_entity(SP, "https://sp.publisher.example/acs", MEMBER)],
        self_signed_pair("not the federation")[0],
        valid_until=datetime.now(UTC) + timedelta(days=7),
    )
    with json_log() as lines:
        refused = run("metadata", "refresh", "--config", config, "--source", "federation")
    assert refused.exit_code == 1
    (line,) = [each for each in lines if str(each["message"]).startswith("metadata source refused")]
    assert line["source"] == "federation"
    assert line["reason"] == "metadata_refused:signature_invalid"
    assert line["level"] == "WARNING"


def test_refresh_lists_each_member_left_out_with_its_reason(broker: tuple[Path, Feed]) -> None:
    config, feed = broker
    twice = sp_entity(SP, "https://sp.publisher.example/second-acs", MEMBER)
    http_sso = idp_entity(IDP, "http://idp.school.example/sso", MEMBER)
    feed.body = signed_aggregate(
        [sp_entity(SP, "https://sp.publisher.example/acs", MEMBER), twice, http_sso],
        SIGNER_KEY,
        valid_until=datetime.now(UTC) + timedelta(days=7),
    )
    with json_log() as lines:
        refreshed = run("metadata", "refresh", "--config", config, "--source", "federation")
    assert refreshed.exit_code == 0, refreshed.output
    assert "federation: updated, 1 entities (2 skipped)" in refreshed.output
    assert (
        f"  left out {SP} (sp): entity_id_repeated: an earlier member has this entity id;"
        " that one is used" in refreshed.output
    )
    assert (
        f"  left out {IDP} (idp): entity_unusable: SSO URL 'http://idp.school.example/sso'"
        f" of {IDP} must be https" in refreshed.output
    )
    named = {
        (line["entity"], line["reason"])
        for line in lines
        if line["message"] == "metadata entity left out"
    }
    assert named == {(SP, "entity_id_repeated"), (IDP, "entity_unusable")}


def test_a_renamed_source_keeps_the_old_copy_until_the_operator_forgets_it(
    broker: tuple[Path, Feed], tmp_path: Path
) -> None:
    """The reviewer's case: `federation` renamed to `surfconext`, whose file is unreadable.
    Until 2026-11-30 the refresh said `the last good copy stays` while it had dropped the
    federation's copy, and with it every school's metadata; no line said so."""
    config, feed = broker
    for command in (
        ("publisher", "add", "--id", "pub", "--name", "Pub", "--saml-entity-id", SP),
        ("school", "add", "--id", "12AB", "--name", "School", "--saml-entity-id", IDP),
    ):
        assert run(*command, "--config", config).exit_code == 0
    assert run("metadata", "refresh", "--config", config).exit_code == 0
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('name = "federation"', 'name = "surfconext"').replace(
            f'url = "{feed.url}"', f'file = "{tmp_path / "not-there.xml"}"'
        ),
        encoding="utf-8",
    )

    refreshed = run("metadata", "refresh", "--config", config)
    assert refreshed.exit_code == 1  # surfconext was refused
    assert "surfconext: refused (file_unreadable); the last good copy stays" in refreshed.output
    assert (
        "federation: unconfigured (not in [[metadata.sources]]); its copy of 1 entities, "
        "valid until " in refreshed.output
    )
    assert "stays in force until `ketenbroker metadata forget federation`" in refreshed.output
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        assert SP in registry.service_metadata()  # the publisher's logins go on
    finally:
        registry.close()

    status = run("metadata", "status", "--config", config)
    assert status.exit_code == 1
    assert "surfconext: missing (metadata_refused:file_unreadable)" in status.output
    assert "federation: unconfigured (not in [[metadata.sources]])" in status.output
    problems = run("registry", "problems", "--config", config)
    assert "Metadata sources no longer configured" in problems.output
    assert "federation" in problems.output

    # Forgetting a configured source, or one the registry does not hold, is refused.
    configured = run("metadata", "forget", "surfconext", "--config", config)
    assert configured.exit_code == 2 and "is in [[metadata.sources]]" in configured.output
    assert run("metadata", "forget", "nope", "--config", config).exit_code == 2

    preview = run("metadata", "forget", "federation", "--config", config)
    assert preview.exit_code == 3, preview.output
    assert "Services that could then get no logins (no metadata left): 1 (pub)" in preview.output
    assert "Nothing was changed: run again with --yes to forget federation." in preview.output
    assert "federation: unconfigured" in run("metadata", "status", "--config", config).output

    forgotten = run("metadata", "forget", "federation", "--yes", "--config", config)
    assert forgotten.exit_code == 0, forgotten.output
    assert "federation forgotten" in forgotten.output
    after = run("metadata", "status", "--config", config)
    assert "federation" not in after.output


def test_status_without_sources_names_a_copy_still_held(broker: tuple[Path, Feed]) -> None:
    """No source configured (a table removed) while a copy is held: not `nothing to check`
    with exit status 0, as until 2026-11-30."""
    config, _ = broker
    assert run("metadata", "refresh", "--config", config).exit_code == 0
    text = config.read_text(encoding="utf-8")
    config.write_text(text.split("[[metadata.sources]]", 1)[0], encoding="utf-8")
    refreshed = run("metadata", "refresh", "--config", config)
    assert refreshed.exit_code == 0
    assert "federation: unconfigured" in refreshed.output
    assert "one-school: unconfigured" in refreshed.output
    status = run("metadata", "status", "--config", config)
    assert status.exit_code == 1
    assert status.output.startswith("No [[metadata.sources]] configured.\n")
    assert "federation: unconfigured" in status.output
