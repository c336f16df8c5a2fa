"""`ketenbroker school add --town`, `school update --town`, `school list` and the registry file's
`town`: set, changed, cleared, listed, carried by export and import; a bad town is refused with
the reason and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from broker.config import load_settings
from broker.core.towns import MAX_TOWN
from broker.registry import SqlRegistry

# The CLI's fixtures: a broker with a chain, the school 99XX00 (no town) and a publisher.
from tests.adapters.test_cli import (  # noqa: F401  # fixtures
    Metadata,
    expect_refusal,
    metadata,
    populated,
    populated_template,
    unchanged,
)
from tests.support.cli import run


def exported(config: Path, folder: Path) -> tuple[Path, str]:
    """The registry of `config` exported into `folder`: the file and its text."""
    file = folder / "registry.toml"
    assert run("registry", "export", "--config", config, file).exit_code == 0
    return file, file.read_text()


def import_text(config: Path, file: Path, text: str) -> Result:
    """`text` written to `file` and imported into the registry of `config`."""
    file.write_text(text)
    return run("registry", "import", "--config", config, file)


def _town(config: Path, school_id: str) -> str:
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        school = registry.school(school_id)
        assert school is not None
        return school.town
    finally:
        registry.close()


def test_a_school_is_added_with_its_town(
    populated: Path,  # noqa: F811 - the imported fixture
    metadata: Metadata,  # noqa: F811
) -> None:
    result = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "Stedelijk Gymnasium",
        "--town", "  Leiden ", "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _town(populated, "11AA00") == "Leiden"
    listed = [json.loads(line) for line in run("school", "list", "--config", populated, "--json")
              .output.splitlines() if line.startswith("{")]  # fmt: skip
    assert {line["id"]: line["town"] for line in listed} == {"11AA00": "Leiden", "99XX00": None}
    table = run("school", "list", "--config", populated).output
    assert "TOWN" in table and "Leiden" in table


def test_update_sets_changes_and_clears_the_town(populated: Path) -> None:  # noqa: F811
    result = run("school", "update", "--config", populated, "--id", "99XX00", "--town", "Utrecht")
    assert result.exit_code == 0, result.output
    assert "School 99XX00: town set to Utrecht." in result.output
    assert _town(populated, "99XX00") == "Utrecht"
    run("school", "update", "--config", populated, "--id", "99XX00", "--town", "'s-Hertogenbosch")
    assert _town(populated, "99XX00") == "'s-Hertogenbosch"
    result = run("school", "update", "--config", populated, "--id", "99XX00", "--town", "")
    assert result.exit_code == 0 and "town cleared" in result.output
    assert _town(populated, "99XX00") == ""


@pytest.mark.parametrize(
    ("town", "reason"),
    [
        ("L" * (MAX_TOWN + 1), f"at most {MAX_TOWN} characters"),
        (
            "Leiden\u202e",
            "the town must not contain hidden or control characters: "
            '"Leiden?" has U+202E RIGHT-TO-LEFT OVERRIDE as character 7 (delete it)',
        ),
        ("Lei\x00den", '"Lei?den" has U+0000 (a control character) as character 4 (delete it)'),
        # A Cyrillic e: named by its code point and Unicode name, with the letter to type.
        (
            "L\u0435iden",
            "must not mix Latin letters with look-alike Cyrillic ones in one word: "
            '"L\u0435iden" has U+0435 CYRILLIC SMALL LETTER IE as character 2 (type "e" instead)',
        ),
        # Fullwidth letters; Cyrillic letters that all pass for Latin ones.
        (
            "\uff2c\uff45\uff49\uff44\uff45\uff4e",
            'special forms of them: "\uff2c\uff45\uff49\uff44\uff45\uff4e" has U+FF2C FULLWIDTH '
            'LATIN CAPITAL LETTER L as character 1 (type "L" instead)',
        ),
        (
            "\u0421\u043e\u0441\u043e",
            "the town must not spell a word only in Cyrillic letters that look like Latin ones: "
            '"\u0421\u043e\u0441\u043e" reads as "Coco" and has U+0421 CYRILLIC CAPITAL LETTER ES '
            'as character 1 (type "C" instead)',
        ),
    ],
)
def test_a_bad_town_is_refused_and_changes_nothing(
    unchanged: Path,  # noqa: F811
    metadata: Metadata,  # noqa: F811
    town: str,
    reason: str,
) -> None:
    update = run("school", "update", "--config", unchanged, "--id", "99XX00", "--town", town)
    expect_refusal(update, "--town", reason)
    add = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--town", town, "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(add, "--town", reason)


def test_update_needs_something_to_update_and_a_known_school(unchanged: Path) -> None:  # noqa: F811
    expect_refusal(run("school", "update", "--config", unchanged, "--id", "99XX00"), "--town")
    unknown = run("school", "update", "--config", unchanged, "--id", "00ZZ00", "--town", "Ede")
    expect_refusal(unknown, "no school with id '00ZZ00'")


def test_the_town_travels_with_the_registry_file(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run("school", "update", "--config", populated, "--id", "99XX00", "--town", "Den Haag")
    file, text = exported(populated, tmp_path)
    assert 'town = "Den Haag"' in text
    # A file that moves the school to another town changes only that.
    result = import_text(populated, file, text.replace('town = "Den Haag"', 'town = "Delft"'))
    assert result.exit_code == 0, result.output
    assert "changed  school 99XX00" in result.output
    assert _town(populated, "99XX00") == "Delft"


def test_a_bad_town_in_the_registry_file_is_named_with_its_place(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    text = file.read_text().replace(
        'name = "De Demoschool"\n', 'name = "De Demoschool"\ntown = 3\n'
    )
    file.write_text(text)
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    assert "town: must be text of 1-80 characters" in result.output
    assert _town(populated, "99XX00") == ""


# U+0435 is a Cyrillic e, U+03BF a Greek omicron: "Gymnasium Leiden" and "Woordwijs" to a reader.
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "Lees\u200bplank",
            "the name must not contain hidden or control characters: "
            '"Lees?plank" has U+200B ZERO WIDTH SPACE as character 5 (delete it)',
        ),
        (
            "Lyceum\u202emuecyL",
            '"Lyceum?muecyL" has U+202E RIGHT-TO-LEFT OVERRIDE as character 7 (delete it)',
        ),
        # Pasted from a document: a tab between two words, a soft hyphen, a byte-order mark.
        (
            "Het\tBaken",
            'the name must not contain hidden or control characters: "Het?Baken" has U+0009 '
            "CHARACTER TABULATION as character 4 (type an ordinary space instead)",
        ),
        (
            "\ufeffLeer\u00adlingen\u00adbank",
            'the name must not contain hidden or control characters: "?Leer?lingen?bank" has '
            "U+FEFF ZERO WIDTH NO-BREAK SPACE as character 1 (delete it); U+00AD SOFT HYPHEN as "
            "characters 6, 13 (delete them)",
        ),
        ("   ", "the name must not be empty"),
        (
            "Gymnasium L\u0435iden",
            "the name must not mix Latin letters with look-alike Cyrillic ones in one word: "
            '"L\u0435iden" has U+0435 CYRILLIC SMALL LETTER IE as character 2 (type "e" instead)',
        ),
        (
            "W\u03bfordwijs",
            "the name must not mix Latin letters with look-alike Greek ones in one word: "
            '"W\u03bfordwijs" has U+03BF GREEK SMALL LETTER OMICRON as character 2 (type "o" '
            "instead)",
        ),
        # U+FF37...: fullwidth "Woord"; U+0421 U+043E U+0441 U+043E: "Coco" in Cyrillic; U+212A
        # the Kelvin sign, as a name pasted from a PDF may have it for its K.
        (
            "\uff37\uff4f\uff4f\uff52\uff44 Wijs",
            "the name must be written in ordinary letters and digits, not in wide, mathematical "
            'or other special forms of them: "\uff37\uff4f\uff4f\uff52\uff44" has U+FF37 FULLWIDTH '
            'LATIN CAPITAL LETTER W as character 1 (type "W" instead); U+FF4F FULLWIDTH LATIN '
            'SMALL LETTER O as characters 2, 3 (type "o" instead); U+FF52 FULLWIDTH LATIN SMALL '
            'LETTER R as character 4 (type "r" instead); and 1 other such character',
        ),
        (
            "\u212aennisnet",
            "the name must be written in ordinary letters and digits, not in wide, mathematical "
            'or other special forms of them: "\u212aennisnet" has U+212A KELVIN SIGN as character '
            '1 (type "K" instead)',
        ),
        (
            "\u0421\u043e\u0441\u043e Lyceum",
            "the name must not spell a word only in Cyrillic letters that look like Latin ones: "
            '"\u0421\u043e\u0441\u043e" reads as "Coco" and has U+0421 CYRILLIC CAPITAL LETTER ES '
            'as character 1 (type "C" instead); U+043E CYRILLIC SMALL LETTER O as characters 2, 4 '
            '(type "o" instead); U+0441 CYRILLIC SMALL LETTER ES as character 3 (type "c" '
            "instead)",
        ),
    ],
)
def test_a_name_that_would_mislead_students_is_refused_and_changes_nothing(
    unchanged: Path,  # noqa: F811
    metadata: Metadata,  # noqa: F811
    name: str,
    reason: str,
) -> None:
    """The same rule for every name students or staff read (core/display_text.py)."""
    school = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", name,
        "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(school, "--name", reason)
    chain = run("chain", "add", "--config", unchanged, "--id", "toetsen2", "--name", name)
    expect_refusal(chain, "--name", reason)
    service = run(
        "publisher", "add", "--config", unchanged, "--id", "woordwijs", "--name", name,
        "--saml-metadata", metadata.second_sp,
    )  # fmt: skip
    expect_refusal(service, "--name", reason)


def test_a_misleading_name_in_the_registry_file_is_named_with_its_place(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    file.write_text(
        file.read_text().replace('name = "De Demoschool"', 'name = "De\u200bDemoschool"')
    )
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    # The character a terminal would not show is named by its code point, its Unicode name and
    # its place in the word, shown as "?".
    assert (
        'name: must not contain hidden or control characters: "De?Demoschool" has U+200B ZERO '
        "WIDTH SPACE as character 3 (delete it)"
    ) in result.output


def _names(config: Path) -> dict[str, str]:
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        snapshot = registry.snapshot()
        return {
            **{f"chain {c.id}": c.name for c in snapshot.chains},
            **{f"publisher {p.id}": p.name for p in snapshot.publishers},
            **{f"school {s.school.id}": s.school.name for s in snapshot.schools},
            **{f"service {s.service.id}": s.service.name for s in snapshot.services},
        }
    finally:
        registry.close()


def test_a_look_alike_name_in_the_registry_file_is_refused_for_every_kind(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A chain's, a publisher's, a school's and a service's name and a town, each named with its
    place; nothing is imported (U+0435: a Cyrillic e)."""
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    before = _names(populated)
    text = file.read_text()
    for name in before.values():
        look_alike = name.replace("e", "\u0435", 1)
        text = text.replace(f'name = "{name}"', f'name = "{look_alike}"')
    text = text.replace("\n[[schools]]\n", '\n[[schools]]\ntown = "L\u0435iden"\n')
    text += '\n[[publishers]]\nid = "uitgeverij-b"\nname = "Uitg\u0435verij B"\n'
    file.write_text(text)
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    refused = [line for line in result.output.splitlines() if "look-alike Cyrillic" in line]
    places = sorted(line.split(":")[0].split("[")[0].strip() for line in refused)
    assert places == ["chains", "publishers", "schools", "schools", "services"], result.output
    assert any(": town: the town must not mix" in line for line in refused), refused
    assert _names(populated) == before
    assert _town(populated, "99XX00") == ""


def test_a_name_registered_before_the_rule_does_not_stop_an_import_that_keeps_it(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Existing rows are not judged again: an export of a registry with an old look-alike name
    and town imports, and so does a file that changes the town alone; a file that changes the
    name to another look-alike is refused (U+043E: a Cyrillic o)."""
    old_name, old_town = "De Dem\u043eschool", "R\u043ermond"
    registry = SqlRegistry(load_settings(populated).registry_url)
    try:  # as a registry written before the rule holds them
        registry.set_school_details("99XX00", old_name, old_town)
    finally:
        registry.close()
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 0, result.output
    file.write_text(file.read_text().replace(f'town = "{old_town}"', 'town = "Roermond"'))
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 0, result.output
    assert "changed  school 99XX00" in result.output
    assert _names(populated)["school 99XX00"] == old_name
    assert _town(populated, "99XX00") == "Roermond"
    file.write_text(file.read_text().replace(old_name, "De Demo Sch\u043eol"))
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    assert (
        "name: must not mix Latin letters with look-alike Cyrillic ones in one word: "
        '"Sch\u043eol" has U+043E CYRILLIC SMALL LETTER O as character 4 (type "o" instead)'
        in result.output
    )
    assert _names(populated)["school 99XX00"] == old_name
