"""`ketenbroker registry export` / `import` as an operator runs them: the demo's registry into a
fresh broker, every problem listed with its place, nothing changed on a refusal, and the demo's
OIDC publisher still authenticating at the new broker's token endpoint."""

from __future__ import annotations

import base64
import re
import sqlite3
import tomllib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, prepare_demo
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.config import load_settings
from broker.core.model import School
from broker.core.sealed_secrets import PREFIX
from broker.oidc.provider import TOKEN_PATH
from broker.registry import SqlRegistry
from broker.web import create_app
from tests.support.cli import registry_of, run


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-registry-demo")
    settings, apps = prepare_demo(folder, 8720)
    apps[settings.base_url].extensions["ketenbroker"].registry.close()
    return folder


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Path]:
    assert run("init", tmp_path / "broker").exit_code == 0
    config = tmp_path / "broker" / "ketenbroker.toml"
    assert run("migrate", "--config", config).exit_code == 0
    yield config


def registry_dump(config: Path) -> list[str]:
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        return list(connection.iterdump())


def export(demo: Path, target: Path, *extra: str | Path) -> Path:
    result = run("registry", "export", "--config", demo / "ketenbroker.toml", target, *extra)
    assert result.exit_code == 0, result.output
    assert "Client secrets are not exported" in result.output
    (target.parent / f"{DEMO_OIDC_SCHOOL_ID}.client-secret").write_text("demo-secret\n")
    return target


def test_export_then_import_reports_what_it_added_then_nothing(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "registry.toml")
    first = run("registry", "import", "--config", fresh, file)
    assert first.exit_code == 0, first.output
    assert "added    school 99XX00" in first.output
    assert "added    service woordwijs" in first.output
    assert "0 changed, 0 unchanged." in first.output
    before = registry_dump(fresh)
    second = run("registry", "import", "--config", fresh, file)
    assert second.exit_code == 0
    assert "0 added, 0 changed, 12 unchanged." in second.output
    assert registry_dump(fresh) == before


def test_client_secrets_are_sealed_in_either_registry_and_never_in_the_file(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    """As before sealing, an export carries no client secret (the import reads it from the file
    `client_secret_file` names); each registry keeps it sealed under its own broker's key."""
    secret = (demo / "peers" / "school-op-client-secret").read_text().strip()
    assert not [line for line in registry_dump(demo / "ketenbroker.toml") if secret in line]
    file = export(demo, tmp_path / "registry.toml")  # and puts "demo-secret" in its file
    assert secret not in file.read_text() and "demo-secret" not in file.read_text()
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    dump = "\n".join(registry_dump(fresh))
    assert "demo-secret" not in dump and f"{PREFIX}" in dump
    with closing(registry_of(fresh)) as registry:
        school = registry.school(DEMO_OIDC_SCHOOL_ID)
        assert school is not None and school.oidc is not None
        assert school.oidc.client_secret == "demo-secret"
    again = tmp_path / "again" / "registry.toml"
    again.parent.mkdir()
    assert run("registry", "export", "--config", fresh, again).exit_code == 0
    assert "demo-secret" not in again.read_text()
    # Imported again: the same secret, compared opened, is no change and no write.
    before = registry_dump(fresh)
    second = run("registry", "import", "--config", fresh, file)
    assert "0 added, 0 changed, 12 unchanged." in second.output and registry_dump(fresh) == before
    # One the broker cannot open (a changed value) is given again by the import: the fix.
    with sqlite3.connect(fresh.parent / "registry.sqlite3") as connection:
        connection.execute(
            "UPDATE school_oidc_providers SET client_secret = client_secret || 'x' "
            "WHERE school_id = ?",
            (DEMO_OIDC_SCHOOL_ID,),
        )
    export_broken = run("registry", "export", "--config", fresh, again)
    assert export_broken.exit_code == 0, export_broken.output
    fixed = run("registry", "import", "--config", fresh, file)
    assert fixed.exit_code == 0 and f"changed  school {DEMO_OIDC_SCHOOL_ID}" in fixed.output
    with closing(registry_of(fresh)) as registry:
        school = registry.school(DEMO_OIDC_SCHOOL_ID)
        assert school is not None and school.oidc is not None
        assert school.oidc.client_secret == "demo-secret" and not school.oidc.secret_problem


def test_logout_registration_travels_with_the_registry_file(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text()
    assert 'backchannel_logout_uri = "http://localhost:' in text
    assert "backchannel_logout_session_required = true" in text
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    original = SqlRegistry(load_settings(demo / "ketenbroker.toml").registry_url)
    imported = SqlRegistry(load_settings(fresh).registry_url)
    try:
        before, after = original.service("woordwijs"), imported.service("woordwijs")
        assert before is not None and after is not None and after.oidc is not None
        assert after.oidc == before.oidc
        assert after.oidc.post_logout_redirect_uris[0].endswith("/logged-out")
    finally:
        original.close()
        imported.close()
    # A logout URI with a fragment is refused like a redirect URI, with its place.
    file.write_text(text.replace("/backchannel-logout", "/backchannel-logout#x"))
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 1
    assert "woordwijs: oidc: backchannel_logout_uri: back-channel logout URI must not" in (
        result.output
    )


def test_metadata_can_live_in_files_next_to_the_toml(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "git" / "registry.toml", "--metadata-dir", tmp_path / "git/md")
    text = file.read_text()
    assert 'saml_metadata_file = "md/schools/99XX00.xml"' in text
    assert "<md:EntityDescriptor" not in text and "EntityDescriptor" not in text
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 0, result.output


def test_every_problem_is_listed_with_its_place_and_nothing_changes(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text()
    text = text.replace('chain = "toetsen"', 'chain = "nergens"')
    # (At the start of a line: post_logout_redirect_uris has the same ending.)
    text = text.replace(
        '\nredirect_uris = ["http://localhost', '\nredirect_uris = ["http://example'
    )
    (tmp_path / f"{DEMO_OIDC_SCHOOL_ID}.client-secret").unlink()
    file.write_text(text)
    before = registry_dump(fresh)
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 1
    assert "3 problem(s); nothing was imported." in result.output
    assert "schools[2] 99ZZ00: oidc: client_secret_file: cannot read" in result.output
    assert "services[3] toetsplein: chain: no chain 'nergens'" in result.output
    assert "services[4] woordwijs: oidc: redirect_uris: redirect URI" in result.output
    assert registry_dump(fresh) == before
    assert "Traceback" not in result.output


def test_a_school_identified_by_user_name_needs_its_realms(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    # Without scopes every user name is dropped at login: no student could sign in.
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text()
    assert text.count('subject = "sub"') == 1
    text = text.replace('subject = "sub"', 'subject = "username"')
    file.write_text(re.sub(r"\nscopes = \[[^\]]*\]", "\nscopes = []", text))
    before = registry_dump(fresh)
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 1, result.output
    assert f"{DEMO_OIDC_SCHOOL_ID}: subject: username needs the school's realms" in result.output
    assert registry_dump(fresh) == before


def test_dry_run_and_a_file_that_is_not_toml(demo: Path, fresh: Path, tmp_path: Path) -> None:
    file = export(demo, tmp_path / "registry.toml")
    before = registry_dump(fresh)
    result = run("registry", "import", "--config", fresh, file, "--dry-run")
    assert result.exit_code == 0 and "Nothing was changed (--dry-run)." in result.output
    file.write_text("[[chains]\nid=")
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 1 and "not a TOML file" in result.output
    assert registry_dump(fresh) == before


def _token_request(config: Path, secret: str) -> tuple[int, str]:
    client = create_app(load_settings(config)).test_client()
    credentials = base64.b64encode(f"{OIDC_PUBLISHER_ID}:{secret}".encode()).decode()
    response = client.post(
        TOKEN_PATH,
        headers={"Authorization": f"Basic {credentials}"},
        data={
            "grant_type": "authorization_code",
            "code": "no-such-code",
            "redirect_uri": "http://localhost:8726/callback",
        },
    )
    return response.status_code, response.get_json()["error"]


def test_the_oidc_publisher_authenticates_at_the_imported_broker(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "registry.toml")
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    secret = (demo / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret").read_text().strip()
    # The client got past authentication: only the (made-up) code is refused.
    assert _token_request(fresh, secret) == (400, "invalid_grant")
    assert _token_request(fresh, "not-the-secret") == (401, "invalid_client")


def test_schools_of_one_board_share_an_idp_with_the_same_metadata_only(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    """Two schools of the file on the demo school's IdP: with the same metadata file they are
    imported; with another copy for the second, the file is refused, naming the first."""
    file = export(demo, tmp_path / "git" / "registry.toml", "--metadata-dir", tmp_path / "git/md")
    board_school = (
        '\n[[schools]]\nid = "99XX01"\nname = "Demo Lyceum Zuid"\nsubject = "name_id"\n'
        'saml_metadata_file = "md/schools/{}.xml"\n'
    )
    shared = file.read_text() + board_school.format("99XX00")
    file.write_text(shared)
    copy = tmp_path / "git" / "md" / "schools" / "99XX00-other.xml"
    copy.write_text((tmp_path / "git/md/schools/99XX00.xml").read_text() + "\n<!-- other -->\n")

    other = file.with_name("other.toml")
    other.write_text(
        shared.replace(board_school.format("99XX00"), board_school.format("99XX00-other"))
    )
    before = registry_dump(fresh)
    refused = run("registry", "import", "--config", fresh, other)
    assert refused.exit_code == 1, refused.output
    assert "1 problem(s); nothing was imported." in refused.output
    assert "is shared with school(s) 99XX00, whose metadata differs" in refused.output
    assert registry_dump(fresh) == before

    imported = run("registry", "import", "--config", fresh, file)
    assert imported.exit_code == 0, imported.output
    assert "added    school 99XX01" in imported.output
    # The IdP two schools are on now names the school, and the export says so for each.
    again = export(fresh.parent, tmp_path / "again.toml")
    assert again.read_text().count("idp_names_school = true") == 2

    # A file may not say false for a shared IdP, nor put an id that is not a BRIN on it.
    wrong = file.with_name("wrong.toml")
    not_a_brin = board_school.format("99XX00").replace('"99XX01"', '"lyceum-zuid"')
    wrong.write_text(
        file.read_text().replace('id = "99XX01"\n', 'id = "99XX01"\nidp_names_school = false\n')
        + not_a_brin
    )
    before = registry_dump(fresh)
    refused = run("registry", "import", "--config", fresh, wrong)
    assert refused.exit_code == 1, refused.output
    assert "idp_names_school: schools on one IdP must say the same" not in refused.output
    assert "idp_names_school: must be true: the IdP is shared with school(s)" in refused.output
    assert "id: school id 'lyceum-zuid' is not a BRIN" in refused.output
    assert registry_dump(fresh) == before


def test_an_idps_school_naming_rule_is_counted_as_its_own_kind(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    """The file's `idp_names_school` is reported per IdP, with its own per-kind line, so the
    per-kind counts add up to the total."""
    file = export(demo, tmp_path / "registry.toml")
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    says = {word: file.with_name(f"{word}.toml") for word in ("true", "false")}
    for word, path in says.items():
        path.write_text(
            file.read_text().replace(
                'id = "99XX00"\n', f'id = "99XX00"\nidp_names_school = {word}\n'
            )
        )
    rule = "IdP school-naming rules: "
    for path, entry, count in (
        (says["true"], " names school", "0 added, 1 changed, 0 unchanged"),
        (says["true"], "", "0 added, 0 changed, 1 unchanged"),
        (file, "", "0 added, 0 changed, 0 unchanged; 1 other kept (http"),
        (says["false"], " need not name school", "0 added, 1 changed, 0 unchanged"),
    ):
        imported = run("registry", "import", "--config", fresh, path)
        assert imported.exit_code == 0, imported.output
        lines = imported.output.splitlines()
        changed = [line for line in lines if line.startswith("changed  IdP ")]
        assert [line.endswith(entry) for line in changed] == ([True] if entry else [])
        assert any(line.startswith(rule + count) for line in lines), imported.output
        per_kind = [
            _counts(line.split(": ", 1)[1]) for line in lines if ": " in line and " added, " in line
        ]
        assert [sum(column) for column in zip(*per_kind, strict=True)] == _counts(lines[-1])


def test_an_idps_rule_with_no_school_on_it_goes_with_the_file(fresh: Path, tmp_path: Path) -> None:
    """A board IdP whose schools were all removed still must name the school: the export says
    so in `[[idps_naming_school]]`, and another broker's import (its dry run first) takes it,
    counted as the IdP's rule."""
    board = "https://sts.bestuur.example/adfs/services/trust"
    with closing(SqlRegistry(load_settings(fresh).registry_url)) as registry:
        for school_id in ("10AA", "10AA01"):
            registry.add_school(School(school_id, f"Lyceum {school_id}", board), "<board/>")
        for school_id in ("10AA", "10AA01"):
            registry.remove_school(school_id, apply=True, removed_by="cli:ops")
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", fresh, file).exit_code == 0
    assert f'[[idps_naming_school]]\nentity_id = "{board}"\n' in file.read_text()

    assert run("init", tmp_path / "other").exit_code == 0
    other = tmp_path / "other" / "ketenbroker.toml"
    assert run("migrate", "--config", other).exit_code == 0
    preview = run("registry", "import", "--config", other, file, "--dry-run")
    assert preview.output.splitlines()[1:] == [
        f"would change IdP {board} names school",
        "IdP school-naming rules: 0 added, 1 changed, 0 unchanged",
        "0 added, 1 changed, 0 unchanged.",
        "Nothing was changed (--dry-run).",
    ]
    assert run("registry", "import", "--config", other, file).exit_code == 0
    again = run("registry", "import", "--config", other, file)
    assert again.output.splitlines() == [
        "IdP school-naming rules: 0 added, 0 changed, 1 unchanged",
        "0 added, 0 changed, 1 unchanged.",
    ]
    assert run("registry", "export", "--config", other, tmp_path / "again.toml").exit_code == 0
    assert (tmp_path / "again.toml").read_text() == file.read_text()
    # An import that does not name it keeps it, and says so.
    empty = tmp_path / "empty.toml"
    empty.write_text("format = 1\n")
    kept = run("registry", "import", "--config", other, empty)
    assert f"IdP school-naming rules: 0 added, 0 changed, 0 unchanged; 1 other kept ({board})" in (
        kept.output
    )


def test_update_idp_sets_and_clears_an_idps_mark_by_its_entity_id(
    fresh: Path, tmp_path: Path
) -> None:
    """`school update-idp`: the mark of a board IdP whose schools were all removed is cleared
    by its entity id, an entity id nothing holds is refused with what to check, and the file
    exported before the clear sets the mark again on import."""
    board = "https://sts.bestuur.example/adfs/services/trust"
    with closing(SqlRegistry(load_settings(fresh).registry_url)) as registry:
        for school_id in ("10AA", "10AA01"):
            registry.add_school(School(school_id, f"Lyceum {school_id}", board), "<board/>")
    config = ("--config", fresh)

    def update_idp(*args: str) -> tuple[int, str]:
        result = run("school", "update-idp", *config, *args)
        return result.exit_code, result.output

    # Two schools on it: the mark stays, nothing written.
    assert update_idp("--entity-id", board, "--no-idp-names-school") == (
        1,
        f"Error: IdP '{board}' is registered for schools 10AA, 10AA01: its logins must name "
        "their school while more than one school is on it; nothing was changed\n",
    )
    assert update_idp("--entity-id", board, "--idp-names-school") == (
        0,
        f"IdP {board} (school(s) 10AA, 10AA01): its logins already had to name their school.\n",
    )
    for school_id in ("10AA", "10AA01"):
        assert run("school", "remove", *config, school_id, "--yes").exit_code == 0
    marked = tmp_path / "marked.toml"
    assert run("registry", "export", *config, marked).exit_code == 0
    assert f'[[idps_naming_school]]\nentity_id = "{board}"\n' in marked.read_text()

    assert update_idp("--entity-id", board, "--no-idp-names-school") == (
        0,
        f"IdP {board} (no school on it): its logins need not name the school any more.\n",
    )
    cleared = tmp_path / "cleared.toml"
    assert run("registry", "export", *config, cleared).exit_code == 0
    assert "idps_naming_school" not in cleared.read_text()
    # Nothing holds the entity id any more: refused, to set as to clear, naming where to look.
    for flag in ("--idp-names-school", "--no-idp-names-school"):
        code, output = update_idp("--entity-id", board, flag)
        assert code == 1 and output.startswith(f"Error: no school is registered on IdP '{board}'")
        assert "`ketenbroker school list` shows each school's IdP" in output
    # What cannot be an entity id, and no flag: refused before the registry is opened.
    code, output = update_idp("--entity-id", f"{board} ", "--idp-names-school")
    assert code == 2 and "has spaces at its start or end" in output
    code, output = update_idp("--entity-id", "", "--idp-names-school")
    assert code == 2 and "must be text of 1-1024 characters" in output
    code, output = update_idp("--entity-id", board)
    assert code == 2 and "give --idp-names-school or --no-idp-names-school" in output

    # The file exported while it was marked sets it again; the command then says so.
    imported = run("registry", "import", *config, marked)
    assert f"changed  IdP {board} names school" in imported.output
    assert update_idp("--entity-id", board, "--idp-names-school") == (
        0,
        f"IdP {board} (no school on it): its logins already had to name their school.\n",
    )


def _counts(line: str) -> list[int]:
    """The added, changed and unchanged counts of a summary line ("1 added, 2 changed, …")."""
    return [int(part.split()[0]) for part in line.partition(";")[0].rstrip(".").split(", ")]


def _small_registry(schools: dict[str, str], release: str) -> str:
    """A registry file by hand: one chain, the `schools` (id: name) with a federation's
    metadata, one service and one school's policy for it."""
    text = 'format = 1\n\n[[chains]]\nid = "lezen"\nname = "Lezen"\n'
    for school_id, name in schools.items():
        text += (
            f'\n[[schools]]\nid = "{school_id}"\nname = "{name}"\n'
            f'saml_entity_id = "https://idp.example.org/{school_id}"\n'
        )
    text += (
        '\n[[services]]\nid = "boekenplank"\nname = "Boekenplank"\nchain = "lezen"\n'
        'saml_entity_id = "https://boekenplank.example.org/sp"\napproved = true\n'
        '[[services.declarations]]\nattribute = "given_name"\npurpose = "Aanspreken"\n'
        '[[services.declarations]]\nattribute = "affiliation"\npurpose = "Rol"\n'
        f'\n[[policies]]\nschool = "99AA00"\nservice = "boekenplank"\nrelease = ["{release}"]\n'
    )
    return text


def test_dry_run_says_what_the_import_adds_changes_and_keeps(fresh: Path, tmp_path: Path) -> None:
    file = tmp_path / "registry.toml"
    file.write_text(_small_registry({"99AA00": "Lyceum A", "99BB00": "College B"}, "given_name"))
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    # Renamed 99AA00, added 99CC00, left 99BB00 out, released another attribute.
    file.write_text(_small_registry({"99AA00": "Lyceum Aa", "99CC00": "School C"}, "affiliation"))
    before = registry_dump(fresh)
    preview = run("registry", "import", "--config", fresh, file, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert registry_dump(fresh) == before
    assert preview.output == (
        f"{file} is valid. Importing it now would do this (--dry-run):\n"
        "would add    school 99CC00\n"
        "would change school 99AA00\n"
        "would change policy 99AA00/boekenplank\n"
        "chains: 0 added, 0 changed, 1 unchanged\n"
        "schools: 1 added, 1 changed, 0 unchanged; 1 other kept (99BB00)\n"
        "services: 0 added, 0 changed, 1 unchanged\n"
        "policies: 0 added, 1 changed, 0 unchanged\n"
        "1 added, 2 changed, 2 unchanged.\n"
        "Nothing was changed (--dry-run).\n"
    )
    imported = run("registry", "import", "--config", fresh, file)
    assert imported.exit_code == 0
    lines = preview.output.splitlines()[1:-1]
    assert imported.output.splitlines() == [
        line.replace("would add   ", "added   ").replace("would change", "changed ")
        for line in lines
    ]
    assert registry_dump(fresh) != before
    exported = run("registry", "export", "--config", fresh, tmp_path / "out.toml")
    assert exported.output == (
        "Exported 1 chain, 0 publishers, 3 schools, 1 service and 1 policy to "
        f"{tmp_path / 'out.toml'}.\n"
    )


def test_an_import_that_gives_an_attribute_a_new_purpose_asks_to_confirm_first(
    fresh: Path, tmp_path: Path
) -> None:
    """As the publisher's portal asks before saving: a file whose service states another purpose
    for an attribute a school releases is not imported until the operator confirms it; then
    that release stops (core/purposes.py). New wording of the same purpose needs nothing."""
    file = tmp_path / "registry.toml"
    small = _small_registry({"99AA00": "Lyceum A"}, "given_name")
    file.write_text(small)
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    file.write_text(small.replace('purpose = "Aanspreken"', 'purpose = "aanspreken."'))
    reworded = run("registry", "import", "--config", fresh, file)
    assert reworded.exit_code == 0, reworded.output
    assert "changed  service boekenplank" in reworded.output and "stop" not in reworded.output

    file.write_text(small.replace('purpose = "Aanspreken"', 'purpose = "Voor reclame"'))
    preview = run("registry", "import", "--config", fresh, file, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "would stop   given_name in policy 99AA00/boekenplank (new purpose)\n" in preview.output
    assert "Importing it needs --confirm-purpose-changes" in preview.output
    before = registry_dump(fresh)
    refused = run("registry", "import", "--config", fresh, file)
    assert refused.exit_code == 1
    assert "new purposes would stop 1 release" in refused.output
    assert "nothing was imported. Run it again with --confirm-purpose-changes" in refused.output
    assert registry_dump(fresh) == before

    confirmed = run("registry", "import", "--config", fresh, file, "--confirm-purpose-changes")
    assert confirmed.exit_code == 0, confirmed.output
    assert "stopped  given_name in policy 99AA00/boekenplank (new purpose)\n" in confirmed.output
    registry = SqlRegistry(f"sqlite:///{fresh.parent / 'registry.sqlite3'}")
    try:
        assert registry.policy("99AA00", "boekenplank").attributes == frozenset()
        (*_, last) = registry.policy_history("99AA00", "boekenplank")
        assert last.changed_by.startswith("purpose-change:")
    finally:
        registry.close()


def test_the_same_file_with_a_new_purpose_imported_twice_changes_nothing_the_second_time(
    fresh: Path, tmp_path: Path
) -> None:
    file = tmp_path / "registry.toml"
    small = _small_registry({"99AA00": "Lyceum A"}, "given_name")
    file.write_text(small)
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    file.write_text(small.replace('purpose = "Aanspreken"', 'purpose = "Voor reclame"'))
    first = run("registry", "import", "--config", fresh, file, "--confirm-purpose-changes")
    assert first.exit_code == 0, first.output
    before = registry_dump(fresh)
    for flags in ((), ("--confirm-purpose-changes",)):
        again = run("registry", "import", "--config", fresh, file, *flags)
        assert again.exit_code == 0, again.output
        assert "stop" not in again.output and again.output.endswith("0 changed, 4 unchanged.\n")
        assert registry_dump(fresh) == before


def test_endpoints_on_a_unicode_host_are_refused_naming_their_xn_form(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text()
    unicode_text = (
        text.replace('Location="http://localhost:8722/', 'Location="https://bücher.example/')
        .replace('\nredirect_uris = ["http://localhost', '\nredirect_uris = ["https://例え.jp')
        .replace('\nissuer = "http://localhost:8725', '\nissuer = "https://bücher.example')
    )
    assert unicode_text.count("bücher") >= 2 and "例え" in unicode_text
    file.write_text(unicode_text)
    before = registry_dump(fresh)
    result = run("registry", "import", "--config", fresh, file)
    assert result.exit_code == 1
    assert "4 problem(s); nothing was imported." in result.output, result.output
    ascii_form = "must write its host in ASCII (its xn-- form): use"
    assert f"99ZZ00: oidc: issuer: {ascii_form} https://xn--bcher-kva.example" in result.output
    for endpoint in ("acs", "slo"):  # the SAML metadata: every endpoint named
        assert f"{ascii_form} 'https://xn--bcher-kva.example/{endpoint}'" in result.output
    assert f"{ascii_form} https://xn--r8jz45g.jp:8726/callback" in result.output
    assert registry_dump(fresh) == before


ADFS_URL = "https://adfs.demoschool.example/FederationMetadata/2007-06/FederationMetadata.xml"


def test_a_schools_metadata_url_goes_out_and_comes_back_and_a_bad_one_is_refused(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    """`saml_metadata_url` beside the copy: exported, imported (nothing fetched: the next
    `metadata refresh` does), and absent again it clears the URL; an http URL, or one without
    a copy beside it, is refused with its place and nothing imported."""
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text(encoding="utf-8")
    assert "saml_metadata_url" not in text  # the demo's schools were given as files
    with_url = text.replace(
        'id = "99XX00"\n', f'id = "99XX00"\nsaml_metadata_url = "{ADFS_URL}"\n', 1
    )
    file.write_text(with_url, encoding="utf-8")
    assert run("registry", "import", "--config", fresh, file).exit_code == 0
    with closing(registry_of(fresh)) as registry:
        assert registry.metadata_url("idp", "99XX00") == ADFS_URL
    again = tmp_path / "again" / "registry.toml"
    again.parent.mkdir()
    assert run("registry", "export", "--config", fresh, again).exit_code == 0
    assert f'saml_metadata_url = "{ADFS_URL}"' in again.read_text(encoding="utf-8")
    before = registry_dump(fresh)
    for bad, said in (
        (ADFS_URL.replace("https:", "http:"), "must be https"),
        ("https://user:pw@adfs.demoschool.example/md", "user name or password"),
    ):
        file.write_text(with_url.replace(ADFS_URL, bad), encoding="utf-8")
        refused = run("registry", "import", "--config", fresh, file)
        assert refused.exit_code != 0 and "saml_metadata_url" in refused.output, refused.output
        assert said in refused.output, refused.output
        assert registry_dump(fresh) == before
    # Beside a registration by entity id instead of a copy.
    school = with_url.index('id = "99XX00"')
    copy = with_url.index("saml_metadata = ", school)
    end = with_url.index("\n", with_url.index("'''", copy + len("saml_metadata = '''")))
    lone = with_url[:copy] + 'saml_entity_id = "https://idp.elders.example"' + with_url[end:]
    file.write_text(lone, encoding="utf-8")
    refused = run("registry", "import", "--config", fresh, file)
    assert "goes beside saml_metadata or saml_metadata_file" in refused.output, refused.output
    assert registry_dump(fresh) == before
    # Absent again: the copy is a file's, which nothing fetches.
    file.write_text(text, encoding="utf-8")
    cleared = run("registry", "import", "--config", fresh, file)
    assert cleared.exit_code == 0 and "changed  school 99XX00" in cleared.output, cleared.output
    with closing(registry_of(fresh)) as registry:
        assert registry.metadata_url("idp", "99XX00") is None


SP_URL = "https://platform.uitgever.example/saml/metadata"


def test_a_services_metadata_url_goes_out_and_comes_back_and_a_bad_one_is_refused(
    demo: Path, fresh: Path, tmp_path: Path
) -> None:
    """A service's `saml_metadata_url` (revision 0029) as a school's: exported, imported
    (nothing fetched: the next `metadata refresh` does), absent again it clears the URL; an
    http URL is refused with its place and nothing imported."""
    file = export(demo, tmp_path / "registry.toml")
    text = file.read_text(encoding="utf-8")
    (service_id, *_) = [s["id"] for s in tomllib.loads(text)["services"] if "saml_metadata" in s]
    block = f'[[services]]\nid = "{service_id}"\n'
    with_url = text.replace(block, f'{block}saml_metadata_url = "{SP_URL}"\n', 1)
    file.write_text(with_url, encoding="utf-8")
    imported = run("registry", "import", "--config", fresh, file)
    assert imported.exit_code == 0, imported.output
    with closing(registry_of(fresh)) as registry:
        assert registry.metadata_url("sp", service_id) == SP_URL
    again = tmp_path / "again" / "registry.toml"
    again.parent.mkdir()
    assert run("registry", "export", "--config", fresh, again).exit_code == 0
    assert f'saml_metadata_url = "{SP_URL}"' in again.read_text(encoding="utf-8")
    before = registry_dump(fresh)
    file.write_text(with_url.replace(SP_URL, SP_URL.replace("https:", "http:")), encoding="utf-8")
    refused = run("registry", "import", "--config", fresh, file)
    assert refused.exit_code != 0 and "saml_metadata_url" in refused.output, refused.output
    assert "must be https" in refused.output
    assert registry_dump(fresh) == before
    file.write_text(text, encoding="utf-8")
    cleared = run("registry", "import", "--config", fresh, file)
    assert f"changed  service {service_id}" in cleared.output, cleared.output
    with closing(registry_of(fresh)) as registry:
        assert registry.metadata_url("sp", service_id) is None
