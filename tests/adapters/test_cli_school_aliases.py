"""`ketenbroker school add --alias`, `school update --alias/--clear-aliases/--name`, `school list`
and the registry file's `aliases`: set, replaced, cleared, listed, carried by export and import,
a name and aliases in one write; a bad alias or name is refused with the reason and changes
nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import load_settings
from broker.core.display_text import MAX_NAME
from broker.core.model import School
from broker.core.school_aliases import MAX_ALIASES
from broker.registry import SqlRegistry

# The CLI's fixtures: a broker with a chain, the school 99XX00 ("De Demoschool") and a
# publisher.
from tests.adapters.test_cli import (  # noqa: F401  # fixtures
    Metadata,
    expect_refusal,
    metadata,
    populated,
    populated_template,
    unchanged,
)
from tests.adapters.test_cli_school_town import exported, import_text
from tests.support.cli import run

SCHOOL = "99XX00"


def _school(config: Path, school_id: str = SCHOOL) -> tuple[School, int]:
    """The school as registered, and the registry's generation."""
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        school = registry.school(school_id)
        assert school is not None
        return school, registry.generation()
    finally:
        registry.close()


def _update(config: Path, *args: str) -> tuple[int, str]:
    result = run("school", "update", "--config", config, "--id", SCHOOL, *args)
    return result.exit_code, result.output


def test_a_school_is_added_with_its_aliases_and_listed_with_them(
    populated: Path,  # noqa: F811 - the imported fixture
    metadata: Metadata,  # noqa: F811
) -> None:
    result = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "Baken Lyceum",
        "--alias", " Het  Baken ", "--alias", "Locatie Zuid", "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _school(populated, "11AA00")[0].aliases == ("Het Baken", "Locatie Zuid")
    listed = [json.loads(line) for line in run("school", "list", "--config", populated, "--json")
              .output.splitlines() if line.startswith("{")]  # fmt: skip
    assert {line["id"]: line["aliases"] for line in listed} == {
        "11AA00": ["Het Baken", "Locatie Zuid"],
        SCHOOL: [],
    }
    table = run("school", "list", "--config", populated).output.splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "TOWN", "ALIASES"]
    assert "Het Baken; Locatie Zuid" in table[1]


def test_update_sets_replaces_and_clears_the_aliases(populated: Path) -> None:  # noqa: F811
    code, output = _update(populated, "--alias", "Demo", "--alias", "DS Noord")
    assert code == 0, output
    assert f"School {SCHOOL}: aliases set to Demo, DS Noord." in output
    assert _school(populated)[0].aliases == ("Demo", "DS Noord")
    # --alias replaces the list: the ones to keep are given again.
    _update(populated, "--alias", "DS Noord")
    assert _school(populated)[0].aliases == ("DS Noord",)
    code, output = _update(populated, "--clear-aliases")
    assert code == 0 and f"School {SCHOOL}: aliases cleared." in output
    assert _school(populated)[0].aliases == ()


def test_update_renames_a_school_with_its_town_and_aliases_in_one_write(
    populated: Path,  # noqa: F811
) -> None:
    before, generation = _school(populated)
    code, output = _update(
        populated, "--name", "Demo Lyceum", "--town", "Utrecht", "--alias", "De Demoschool"
    )
    assert code == 0, output
    assert f"School {SCHOOL}: name set to Demo Lyceum." in output
    school, after = _school(populated)
    assert (school.name, school.town, school.aliases) == (
        "Demo Lyceum",
        "Utrecht",
        ("De Demoschool",),
    )
    assert after == generation + 1  # one write: no worker shows the name without the alias
    assert school.idp_entity_id == before.idp_entity_id
    # The name alone: the town and the aliases stay.
    code, output = _update(populated, "--name", "Demo-Lyceum Utrecht")
    assert code == 0, output
    school, _generation = _school(populated)
    assert (school.name, school.town, school.aliases) == (
        "Demo-Lyceum Utrecht",
        "Utrecht",
        ("De Demoschool",),
    )


@pytest.mark.parametrize(
    ("aliases", "reason"),
    [
        ([f"Locatie {n}" for n in range(MAX_ALIASES + 1)], f"at most {MAX_ALIASES} aliases"),
        (["Het Baken", "het-baken"], "'het-baken' is 'Het Baken' again"),
        (["De Demoschool"], "the alias 'De Demoschool' is the school's name"),
        (
            ["Het\u200bBaken"],
            "the alias 'Het\\u200bBaken' must not contain hidden or control characters: "
            '"Het?Baken" has U+200B ZERO WIDTH SPACE as character 4 (delete it)',
        ),
        (["Baken\u202e"], '"Baken?" has U+202E RIGHT-TO-LEFT OVERRIDE as character 6'),
        (["L" * (MAX_NAME + 1)], f"must be at most {MAX_NAME} characters"),
        (["   "], "the alias '' must not be empty"),
        (["--"], "must hold a letter or a digit"),
        # The mathematical bold "Het"; "Coco" in Cyrillic (U+0421 U+043E U+0441 U+043E).
        (
            ["\U0001d407\U0001d41e\U0001d42d Baken"],
            'forms of them: "\U0001d407\U0001d41e\U0001d42d" has U+1D407 MATHEMATICAL BOLD '
            'CAPITAL H as character 1 (type "H" instead); U+1D41E MATHEMATICAL BOLD SMALL E as '
            'character 2 (type "e" instead); U+1D42D MATHEMATICAL BOLD SMALL T as character 3 '
            '(type "t" instead)',
        ),
        (
            ["\u0421\u043e\u0441\u043e"],
            'Cyrillic letters that look like Latin ones: "\u0421\u043e\u0441\u043e" reads as '
            '"Coco" and has U+0421 CYRILLIC CAPITAL LETTER ES as character 1 (type "C" instead)',
        ),
    ],
)
def test_bad_aliases_are_refused_and_change_nothing(
    unchanged: Path,  # noqa: F811
    metadata: Metadata,  # noqa: F811
    aliases: list[str],
    reason: str,
) -> None:
    given = [arg for alias in aliases for arg in ("--alias", alias)]
    update = run("school", "update", "--config", unchanged, "--id", SCHOOL, *given)
    expect_refusal(update, "--alias", reason)
    # With a name and a town too: nothing of the three is written.
    both = run(
        "school", "update", "--config", unchanged, "--id", SCHOOL, "--town", "Ede", *given
    )  # fmt: skip
    expect_refusal(both, "--alias")
    add = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "De Demoschool",
        *given, "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(add, "--alias", reason)


def test_a_new_name_is_checked_against_the_aliases_it_will_have(
    populated: Path,  # noqa: F811
) -> None:
    _update(populated, "--alias", "Het Baken", "--alias", "Locatie Zuid")
    before = _school(populated)
    code, output = _update(populated, "--name", "Het  Baken")
    assert code != 0
    assert "--name" in output and "the alias 'Het Baken' is the school's name" in output
    assert "--clear-aliases" in output
    assert _school(populated) == before
    # Given with the aliases to keep, the same name is no alias of itself.
    code, output = _update(populated, "--name", "Het Baken", "--alias", "Locatie Zuid")
    assert code == 0, output
    school, _generation = _school(populated)
    assert (school.name, school.aliases) == ("Het Baken", ("Locatie Zuid",))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--name", "Demo\u200bLyceum"],
            "the name must not contain hidden or control characters: "
            '"Demo?Lyceum" has U+200B ZERO WIDTH SPACE as character 5 (delete it)',
        ),
        (["--name", "   "], "the name must not be empty"),
        (["--name", "L" * (MAX_NAME + 1)], f"the name must be at most {MAX_NAME} characters"),
        (["--alias", "X", "--clear-aliases"], "give --alias or --clear-aliases, not both"),
        ([], "--clear-aliases"),
    ],
)
def test_a_bad_name_or_a_muddled_command_is_refused_and_changes_nothing(
    unchanged: Path,  # noqa: F811
    args: list[str],
    reason: str,
) -> None:
    expect_refusal(run("school", "update", "--config", unchanged, "--id", SCHOOL, *args), reason)


def test_the_aliases_travel_with_the_registry_file(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _update(populated, "--alias", "Het Baken")
    file, text = exported(populated, tmp_path)
    given = 'aliases = ["Het Baken"]'
    assert given in text
    result = import_text(populated, file, text.replace(given, 'aliases = ["Het Baken", "Zuid"]'))
    assert result.exit_code == 0, result.output
    assert f"changed  school {SCHOOL}" in result.output
    assert _school(populated)[0].aliases == ("Het Baken", "Zuid")
    # A file without the key: the school has none (as for the town).
    assert import_text(populated, file, text.replace(given + "\n", "")).exit_code == 0
    assert _school(populated)[0].aliases == ()


@pytest.mark.parametrize(
    ("aliases", "reason"),
    [
        ('"Het Baken"', "aliases: must be a list of strings"),
        ('["Het Baken", 3]', "aliases: must be a list of strings"),
        ('["Het Baken", "HET BAKEN"]', "aliases: the alias 'HET BAKEN' is 'Het Baken' again"),
        ('["de demoschool"]', "aliases: the alias 'de demoschool' is the school's name"),
        (
            '["Het\\u202eBaken"]',
            "aliases: the alias 'Het\\u202eBaken' must not contain hidden or control characters: "
            '"Het?Baken" has U+202E RIGHT-TO-LEFT OVERRIDE as character 4 (delete it)',
        ),
    ],
)
def test_bad_aliases_in_the_registry_file_are_named_with_their_place(
    populated: Path,  # noqa: F811
    tmp_path: Path,
    aliases: str,
    reason: str,
) -> None:
    file, text = exported(populated, tmp_path)
    before = _school(populated)
    named = 'name = "De Demoschool"\n'
    result = import_text(populated, file, text.replace(named, f"{named}aliases = {aliases}\n"))
    assert result.exit_code == 1
    assert f"schools[1] {SCHOOL}: {reason}" in result.output, result.output
    assert "nothing was imported" in result.output
    assert _school(populated) == before
