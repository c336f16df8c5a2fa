"""Names and towns students and staff read (broker/core/display_text.py): plain text of one
line; invisible characters, direction overrides and words that mix Latin letters with
look-alike letters of another script refused, whatever else is allowed."""

from __future__ import annotations

import unicodedata

import pytest

from broker.core.display_text import (
    LOOK_ALIKE_SCRIPTS,
    MAX_NAME,
    MAX_NAMED,
    MAX_PLACES,
    MAX_SHOWN,
    MAX_SHOWN_WORD,
    UNNAMED,
    CharacterAtFault,
    TextFault,
    TextProblem,
    mixed_script_word,
    name_problem,
    plain_text_problem,
    shown_excerpt,
)
from broker.core.latin_look_alikes import LATIN_LOOK_ALIKES, LATIN_VARIANTS, WHOLE_SCRIPT_CHECKED
from broker.core.school_aliases import clean_alias
from broker.core.towns import MAX_TOWN, clean_town, town_problem


@pytest.mark.parametrize(
    "name", ["Demo Lyceum", "'s-Hertogenbosch College", "Sint-Bonifatiuscollege", "Ée & Ça (1)"]
)
def test_ordinary_names_pass(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * (MAX_NAME + 1), f"must be at most {MAX_NAME} characters"),
        # shown backwards from there on
        ("Leesplank\u202eknalpseel", "must not contain hidden or control characters"),
        # looks like "Leesplank", is not
        ("Lees\u200bplank", "must not contain hidden or control characters"),
        ("Lees\nplank", "must not contain hidden or control characters"),
        ("Lees\x00plank", "must not contain hidden or control characters"),
    ],
)
def test_names_that_would_mislead_a_reader_are_refused(name: str, reason: str) -> None:
    problem = name_problem(name)
    assert problem is not None and str(problem).startswith(reason)


def test_a_town_is_judged_by_the_same_rule_with_its_own_limit() -> None:
    assert town_problem("Leiden") is None
    assert town_problem("x" * (MAX_TOWN + 1)) == TextProblem(TextFault.TOO_LONG, limit=MAX_TOWN)
    assert town_problem("Lei\u202eden") == TextProblem(
        TextFault.HIDDEN,
        position=4,
        word="Lei?den",
        characters=(CharacterAtFault("\u202e", (4,), delete=True),),
    )
    assert plain_text_problem("Leiden", MAX_TOWN) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", TextProblem(TextFault.EMPTY)),
        ("x" * (MAX_NAME + 1), TextProblem(TextFault.TOO_LONG, limit=MAX_NAME)),
        (
            "De Lees\u200bplank",
            TextProblem(
                TextFault.HIDDEN,
                position=8,
                word="Lees?plank",
                characters=(CharacterAtFault("\u200b", (5,), delete=True),),
            ),
        ),
        (
            "Het W\u043eordwijs",
            TextProblem(
                TextFault.MIXED_SCRIPT,
                position=6,
                word="W\u043eordwijs",
                script="Cyrillic",
                characters=(CharacterAtFault("\u043e", (2,), "o"),),
            ),
        ),
        (
            "De Sint-J\u043ezef \u0391msterdam",
            TextProblem(
                TextFault.MIXED_SCRIPT,
                position=10,
                word="Sint-J\u043ezef",
                script="Cyrillic",
                characters=(CharacterAtFault("\u043e", (7,), "o"),),
            ),
        ),
    ],
)
def test_a_problem_says_which_rule_which_word_and_where(name: str, problem: TextProblem) -> None:
    """What callers word their own messages from: the portal in the page's language, the CLI
    and the registry file import in English (`str`): the characters at fault are named with
    their places in the word."""
    assert name_problem(name) == problem


@pytest.mark.parametrize(
    "name", ["Lees\u2028plank", "Lees\u3164plank", "Lees\u034fplank", "Lees\u00adplank"]
)
def test_separators_and_invisible_letters_are_refused_too(name: str) -> None:
    """A line separator makes a second line; a Hangul filler (a letter) and the combining
    grapheme joiner (a mark) show nothing, as a soft hyphen (a format character) does."""
    problem = name_problem(name)
    assert problem is not None and problem.fault is TextFault.HIDDEN
    # A line separator is white space between two pieces of a word: an ordinary space instead.
    instead = "type an ordinary space instead" if name[4].isspace() else "delete it"
    assert str(problem) == (
        'must not contain hidden or control characters: "Lees?plank" has '
        f"U+{ord(name[4]):04X} {unicodedata.name(name[4])} as character 5 ({instead})"
    )


# What a school's ICT officer pastes from a PDF or a Word document, each named by its code point
# and Unicode name with its place in the word and what to do.
@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Woord\u200bwijs",
            '"Woord?wijs" has U+200B ZERO WIDTH SPACE as character 6 (delete it)',
        ),
        (
            "Leerlingen\u00adbank Zuid",
            '"Leerlingen?bank" has U+00AD SOFT HYPHEN as character 11 (delete it)',
        ),
        (
            "\ufeffDemo Lyceum",
            '"?Demo" has U+FEFF ZERO WIDTH NO-BREAK SPACE as character 1 (delete it)',
        ),
        (
            "Demo Lyceum\u200e",
            '"Lyceum?" has U+200E LEFT-TO-RIGHT MARK as character 7 (delete it)',
        ),
        # A tab has no Unicode name: its formal alias names it. Between two pieces of a word it
        # stands for a space; at the end of the text, as a spreadsheet's cell gives it, it is
        # only to delete.
        (
            "Het\tBaken Lyceum",
            '"Het?Baken" has U+0009 CHARACTER TABULATION as character 4 (type an ordinary '
            "space instead)",
        ),
        (
            "Het Baken\t",
            '"Baken?" has U+0009 CHARACTER TABULATION as character 6 (delete it)',
        ),
        # A line break of two characters: one space for both.
        (
            "Het\r\nBaken",
            '"Het??Baken" has U+000D CARRIAGE RETURN as character 4 (type an ordinary space '
            "instead); U+000A LINE FEED as character 5 (delete it)",
        ),
        # Beside an ordinary space it is a word of its own: to delete.
        ("Het \t Baken", '"?" has U+0009 CHARACTER TABULATION as character 1 (delete it)'),
        # A control with no name and no alias: by its category.
        (
            "Lees\x01plank",
            '"Lees?plank" has U+0001 (a control character) as character 5 (delete it)',
        ),
        (
            "Lees\ue000plank",
            '"Lees?plank" has U+E000 (a private-use character) as character 5 (delete it)',
        ),
        # A letter that shows nothing is shown as "?" too.
        ("Lees\u3164plank", '"Lees?plank" has U+3164 HANGUL FILLER as character 5 (delete it)'),
    ],
)
def test_a_hidden_character_is_named_with_its_place_in_the_word_and_what_to_do(
    name: str, message: str
) -> None:
    problem = name_problem(name)
    assert problem is not None and problem.fault is TextFault.HIDDEN
    assert str(problem) == f"must not contain hidden or control characters: {message}"
    # Its place in the whole text, for a caller that needs it; the message counts in the word.
    first = next(i for i, c in enumerate(name) if problem.characters[0].character == c)
    assert problem.position == first + 1


def test_hidden_characters_in_a_word_are_named_a_few_at_most_and_the_rest_counted() -> None:
    problem = name_problem("Lees\u200bpl\u00adank\u200b \u2060Zuid")
    assert problem is not None and problem.word == "Lees?pl?ank?"
    # The zero-width space at two places; the word joiner is in the next word, not named.
    assert problem.characters == (
        CharacterAtFault("\u200b", (5, 12), delete=True),
        CharacterAtFault("\u00ad", (8,), delete=True),
    )
    assert str(problem).endswith(
        "U+200B ZERO WIDTH SPACE as characters 5, 12 (delete them); U+00AD SOFT HYPHEN as "
        "character 8 (delete it)"
    )
    many = name_problem("a\u200b\u200c\u200d\u2060\ufeff")
    assert many is not None and (len(many.characters), many.more) == (MAX_NAMED, 2)
    assert str(many).endswith(
        "U+200D ZERO WIDTH JOINER as character 4 (delete it); and 2 other such characters"
    )
    # A tab between two pieces of the word and one at its end: two different things to do.
    tabs = name_problem("Het\tBaken\t")
    assert tabs is not None and tabs.characters == (
        CharacterAtFault("\t", (4,), " "),
        CharacterAtFault("\t", (10,), delete=True),
    )


def test_what_is_accepted_or_tidied_stays_so_and_only_the_refusal_is_worded() -> None:
    """A no-break, thin or narrow no-break space is a space (Zs) that a name keeps as it is; a
    town and an alias are tidied first (every run of white space one space, none at either
    end), so a tab, a line break or a no-break space there is never refused. A zero-width space,
    a soft hyphen, a byte-order mark or a direction mark is refused everywhere."""
    for space in ("\u00a0", "\u2009", "\u202f"):
        assert name_problem(f"Het{space}Baken") is None
        assert town_problem(clean_town(f"Den{space}Haag")) is None
        assert clean_alias(f"Het{space}Baken") == "Het Baken"
    for white in ("\t", "\n", "\r\n", "\u2028", "\x85"):
        assert name_problem(f"Het{white}Baken") is not None
        assert clean_town(f"Den{white}Haag{white}") == "Den Haag"
        assert clean_alias(f"{white}Het{white}Baken") == "Het Baken"
    for hidden in ("\u200b", "\u00ad", "\ufeff", "\u200e", "\u200f"):
        assert name_problem(f"Het{hidden}Baken") is not None
        assert town_problem(clean_town(f"Den{hidden}Haag")) is not None


def test_every_character_without_a_unicode_name_is_called_by_its_category() -> None:
    """Only control, private-use, surrogate and unassigned code points have no Unicode name,
    but for letters no rule names (Python's unicodedata gives the Tangut ideographs none); the
    controls that are white space are named by their formal alias (NameAliases.txt)."""
    categories = {
        unicodedata.category(chr(point))
        for point in range(0x110000)
        if not unicodedata.name(chr(point), "")
    }
    assert {c for c in categories if c[0] != "L"} == UNNAMED.keys()
    for point in range(0x110000):
        character = chr(point)
        named = CharacterAtFault(character, (1,))
        if unicodedata.category(character) == "Cc" and character.isspace():
            assert named.name and unicodedata.lookup(named.name) == character
    assert CharacterAtFault("\t", (1,)).named == "U+0009 CHARACTER TABULATION"
    assert CharacterAtFault("\x7f", (1,)).named == "U+007F (a control character)"
    assert CharacterAtFault("\U0010ffff", (1,)).named == "U+10FFFF (an unassigned code point)"


def test_a_peers_text_in_an_error_is_cut_short_and_printable() -> None:
    """Every plain str parameter of an error (an entity id, a URL from fetched metadata) reaches
    a page, a terminal and a log line only as `shown_excerpt` leaves it."""
    from broker.core.errors import BrokerError, Phrase

    long = "https://idp.example/" + "x" * 500
    error = BrokerError("metadata of %(entity_id)s: %(what)s", entity_id=long, what=Phrase("ok"))
    assert error.params["entity_id"] == shown_excerpt(long) == long[:MAX_SHOWN] + "…"
    assert isinstance(error.params["what"], Phrase)  # translated by the portal, kept as it is
    sneaky = BrokerError("issuer %(named)s", named="https://a\u202e\x1b[2Jb")
    assert sneaky.detail == "issuer https://a??[2Jb"


# Look-alike letters are written as escapes here (ruff's RUF001 refuses them as they are, and a
# reader could not tell them apart either): U+043E Cyrillic o, U+0435 Cyrillic e, U+03BF Greek
# omicron, U+0391 Greek Alpha, U+0585 Armenian oh, U+13AA Cherokee go (an A), U+2C9E Coptic O,
# U+A4EE Lisu A.
CYRILLIC_NAME = "\u0420\u0443\u0441\u0441\u043a\u0430\u044f \u0448\u043a\u043e\u043b\u0430"
GREEK_NAME = (
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03cc \u03a3\u03c7\u03bf\u03bb\u03b5\u03af\u03bf"
)
# Armenian "Mesrop Mashtots school" (the name of many Armenian weekend schools); Coptic "Abba
# Shenoute" (a saint a Coptic Sunday school is named after), its last letters from the Greek block.
ARMENIAN_NAME = (
    "\u0544\u0565\u057d\u0580\u0578\u057a \u0544\u0561\u0577\u057f\u0578\u0581 "
    "\u0564\u057a\u0580\u0578\u0581"
)
COPTIC_NAME = "\u2c80\u2c83\u2c83\u2c81 \u03e2\u2c89\u2c9b\u2c9f\u2ca9\u03ef"


@pytest.mark.parametrize(
    "name",
    [
        "Ĳsselcollege",
        "IJsselcollege",
        "Sint-Jozef",
        "Leerlingenbank 2.0",
        "Collège Saint-Éloi",
        "Ça Va Crèche",
        "Gräfin-Überlingen Schule",
        "Oost-Gaasterlân Skoalle",
        "Cafe\u0301 Lyceum",  # an accent as a combining mark: no script of its own
        "Colegio nª 5",  # FEMININE ORDINAL INDICATOR: no script
        "\u00b5-lab",  # MICRO SIGN: no script
        CYRILLIC_NAME,  # wholly Cyrillic
        GREEK_NAME,  # wholly Greek
        f"{CYRILLIC_NAME} Amsterdam",  # a Latin word beside Cyrillic ones: each reads as it is
        f"{GREEK_NAME} Amsterdam",
        ARMENIAN_NAME,
        f"{ARMENIAN_NAME} Almelo",
        COPTIC_NAME,
        f"{COPTIC_NAME} Amsterdam",
    ],
)
def test_names_in_one_script_per_word_pass(name: str) -> None:
    assert name_problem(name) is None
    assert mixed_script_word(name) is None


@pytest.mark.parametrize(
    ("name", "word", "script"),
    [
        ("W\u043eordwijs", "W\u043eordwijs", "Cyrillic"),
        ("Gymnasium L\u0435iden", "L\u0435iden", "Cyrillic"),
        ("W\u03bfordwijs", "W\u03bfordwijs", "Greek"),
        ("\u0391msterdams Lyceum", "\u0391msterdams", "Greek"),
        ("W\u0585ordwijs", "W\u0585ordwijs", "Armenian"),
        ("De \u13aamsterdamse School", "\u13aamsterdamse", "Cherokee"),
        ("\u2c9eost-College", "\u2c9eost-College", "Coptic"),
        ("\ua4eemsterdam", "\ua4eemsterdam", "Lisu"),
        # A hyphen or a dot does not end a word: the Cyrillic o is not a word of its own.
        ("Sint-J\u043ezef", "Sint-J\u043ezef", "Cyrillic"),
        ("Leerlingenb\u0430nk 2.0", "Leerlingenb\u0430nk", "Cyrillic"),
        (f"{GREEK_NAME}-Nederlands", GREEK_NAME.split()[1] + "-Nederlands", "Greek"),
        # Accented Latin letters are Latin: one Cyrillic letter among them is still refused.
        ("Coll\u00e8ge \u00c9l\u043ei", "\u00c9l\u043ei", "Cyrillic"),
        # Only an ordinary space ends a word: a hair, thin, narrow no-break, ideographic or
        # no-break space (nearly invisible, or not at all) does not split a look-alike off; a
        # message shows it as "?" (not printable).
        ("Woordwij\u200a\u0455", "Woordwij?\u0455", "Cyrillic"),
        ("Leesplan\u2009\u043a", "Leesplan?\u043a", "Cyrillic"),
        ("W\u202f\u043e\u043erdwijs", "W?\u043e\u043erdwijs", "Cyrillic"),
        ("Rekenroute\u3000\u0391", "Rekenroute?\u0391", "Greek"),
        ("Woordwijs\u00a0\u0455", "Woordwijs?\u0455", "Cyrillic"),
    ],
)
def test_a_word_mixing_latin_with_look_alike_letters_is_refused(
    name: str, word: str, script: str
) -> None:
    found = mixed_script_word(name)
    assert found is not None and (found.fault, found.word, found.script) == (
        TextFault.MIXED_SCRIPT,
        word,
        script,
    )
    # The message names the first look-alike letter: its code point, its Unicode name, where it
    # stands in the word and the Latin letter to type instead (none for the Greek sigma of
    # "Σχολείο-Nederlands": it passes for no Latin letter).
    first = found.characters[0]
    letter = first.character
    assert unicodedata.name(letter).startswith(script.upper())
    assert first.places[0] == word.index(letter) + 1
    assert first.plain == LATIN_LOOK_ALIKES.get(letter, "")
    message = str(name_problem(name))
    assert message.startswith(
        f'must not mix Latin letters with look-alike {script} ones in one word: "{word}" has '
        f"U+{ord(letter):04X} {unicodedata.name(letter)} as character"
    ), message
    assert (f'(type "{first.plain}" instead)' in message) == bool(first.plain)


def test_every_look_alike_script_is_recognised_by_its_letters_names() -> None:
    samples = {"\u043e", "\u03bf", "\u0585", "\u13aa", "\u2c9f", "\ua4f3"}
    found = {mixed_script_word(f"x{letter}") for letter in samples}
    assert {m.script.upper() for m in found if m} == LOOK_ALIKE_SCRIPTS


def test_the_look_alike_rule_holds_for_towns_and_shows_a_long_word_cut_short() -> None:
    town = town_problem("L\u0435iden")
    assert f"the town {town}" == (
        "the town must not mix Latin letters with look-alike Cyrillic ones in one word: "
        '"L\u0435iden" has U+0435 CYRILLIC SMALL LETTER IE as character 2 (type "e" instead)'
    )
    long_word = "W\u043e" + "o" * 80
    found = mixed_script_word(long_word)
    assert found is not None and found.word == long_word[:MAX_SHOWN_WORD] + "…"
    # A hidden character is the first thing said: the word would carry it into the message.
    hidden = name_problem("W\u043eord\u200bwijs")
    assert hidden is not None and hidden.fault is TextFault.HIDDEN


# Compatibility forms (NFKC replaces them) and whole words of Cyrillic, Greek, Armenian or Coptic
# look-alikes, as escapes: U+FF37 and others fullwidth, U+1D416 and others mathematical bold,
# U+1D4B2 mathematical script W, U+FB01 the fi ligature, U+017F long s, U+216B Roman numeral
# twelve; U+0261 script g, U+1D04 and U+1D0F small capitals c and o, U+01C0 the dental click
# letter, U+212A the Kelvin sign, U+212B the Angstrom sign.
FULLWIDTH_WOORDWIJS = "\uff37\uff4f\uff4f\uff52\uff44\uff57\uff49\uff4a\uff53"
BOLD_WOORDWIJS = "".join(chr(0x1D41A + ord(c) - ord("a")) for c in "woordwijs")


@pytest.mark.parametrize(
    "name",
    [
        "Ca\u00f1ada College",  # ñ as one letter
        "Can\u0303ada College",  # n with a combining tilde: canonical, not compatibility
        "\u0132sselmonde Lyceum",  # the Dutch IJ as one letter: kept
        "\u0133sselcollege",
        "\u2019s-Hertogenbosch",  # typographic apostrophe: punctuation is not judged
        "Sint-Jan\u2019s \u2026 en meer",  # an ellipsis (NFKC makes it three dots) too
        "Colegio n\u00ba 5",  # ordinal indicator: raised, reads as it is
        "Lab\u00b2",  # superscript two
        "Rekenen \u00bd",  # a fraction
        "\u00b5-lab",  # the micro sign: NFKC makes it a Greek mu, no Latin letter
        "Citro\u00ebn Na\u00efef",
        # Cyrillic and Greek names that show their script: a short word of look-alikes inside
        # (Russian "s", "o"; the Greek article "To") passes.
        "\u0420\u0443\u0441\u0441\u043a\u0430\u044f \u0448\u043a\u043e\u043b\u0430 \u0441 Amsterdam",
        "\u0428\u043a\u043e\u043b\u0430 \u043e \u043c\u0438\u0440\u0435",
        "\u03a4\u03bf \u03a3\u03c7\u03bf\u03bb\u03b5\u03af\u03bf",
        "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u0448\u043a\u043e\u043b\u0430",
        # Armenian and Coptic names, and one beside a word of look-alikes: "Sos village school"
        # (Sos, U+054D U+0578 U+057D, reads as "Unu"), "Pikhristos" (the Christ).
        ARMENIAN_NAME,
        "\u054d\u0578\u057d \u0563\u0575\u0578\u0582\u0572\u056b \u0564\u057a\u0580\u0578\u0581",
        COPTIC_NAME,
        "\u2ca1\u2c93\u2cad\u2ca3\u2c93\u2ca5\u2ca7\u2c9f\u2ca5",
        # Letters that only come close to a Latin one: Armenian ho (an h hooked at the top) in
        # a word of look-alikes shows the script; Latin alpha, iota and small capital I (a
        # one-storey a, no dot, serifs) are no special form of a, i or I.
        "\u0570\u0585\u0581",
        "M\u0251th\u0269s \u026a",
    ],
)
def test_accents_the_dutch_ij_punctuation_and_real_names_in_other_scripts_pass(
    name: str,
) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "word", "plain"),
    [
        (FULLWIDTH_WOORDWIJS, FULLWIDTH_WOORDWIJS, "Woordwijs"),
        (f"Het {BOLD_WOORDWIJS}", BOLD_WOORDWIJS, "woordwijs"),
        ("\U0001d4b2oordwijs", "\U0001d4b2oordwijs", "Woordwijs"),  # one script capital
        ("Leerlingenbank \uff12.\uff10", "\uff12.\uff10", "2.0"),  # fullwidth digits
        ("Pro\ufb01el College", "Pro\ufb01el", "Profiel"),  # ligature
        ("Wi\u017fkunde", "Wi\u017fkunde", "Wiskunde"),  # long s
        ("College \u216b", "\u216b", "XII"),  # Roman numeral
        ("\u0132ssel \uff37ijs", "\uff37ijs", "Wijs"),  # the IJ is kept, the W is not
        # Letters NFKC keeps that are drawn as an ordinary one (core/latin_look_alikes.py).
        ("Lee\u0261plank", "Lee\u0261plank", "Leegplank"),  # the phonetic script g
        ("\u1d04\u1d0f\u1d04\u1d0f", "\u1d04\u1d0f\u1d04\u1d0f", "coco"),  # small capitals
        ("Wi\u01c0lem College", "Wi\u01c0lem", "Willem"),  # a click letter, an upright stroke
        ("\u212aennisnet Leiden", "\u212aennisnet", "Kennisnet"),  # the Kelvin sign
        ("\u212bngstr\u00f6m", "\u212bngstr\u00f6m", "\u00c5ngstr\u00f6m"),  # the Angstrom sign
    ],
)
def test_letters_and_digits_in_a_compatibility_form_are_refused(
    name: str, word: str, plain: str
) -> None:
    problem = name_problem(name)
    assert problem is not None and problem.fault is TextFault.COMPATIBILITY_FORM
    assert (problem.word, problem.plain) == (word, plain)
    assert (
        problem.position
        == name.index(word)
        + next(i for i, c in enumerate(word) if not c.isascii() and c not in "\u0132\u0133")
        + 1
    )
    # Named: the first special form, by its code point and Unicode name, with the ordinary
    # letter to type instead (the word and `plain` look alike: "Kennisnet" twice).
    first = next(c for c in word if not c.isascii() and c not in "\u0132\u0133")
    ordinary = LATIN_VARIANTS.get(first) or unicodedata.normalize("NFKC", first)
    message = str(problem)
    assert message.startswith(
        "must be written in ordinary letters and digits, not in wide, mathematical or other "
        f'special forms of them: "{word}" has U+{ord(first):04X} {unicodedata.name(first)} as '
        f"character{'s' if word.count(first) > 1 else ''} {word.index(first) + 1}"
    ), message
    assert f'(type "{ordinary}" instead)' in message
    assert problem.characters[0] == CharacterAtFault(
        first, tuple(i + 1 for i, c in enumerate(word) if c == first), ordinary
    )


def test_the_kelvin_sign_is_named_with_the_letter_to_type_instead() -> None:
    """A name pasted from a PDF with a Kelvin sign for its K: the word looks like the plain one,
    so the message names the character, where it stands and what to type."""
    assert str(name_problem("\u212aennisnet Leiden")) == (
        "must be written in ordinary letters and digits, not in wide, mathematical or other "
        'special forms of them: "\u212aennisnet" has U+212A KELVIN SIGN as character 1 (type "K" '
        "instead)"
    )


def test_a_word_with_many_characters_at_fault_names_a_few_and_counts_the_rest() -> None:
    problem = name_problem(FULLWIDTH_WOORDWIJS)
    assert problem is not None and len(problem.characters) == MAX_NAMED
    # W o r d w i j s: eight different letters, the o twice.
    assert [(c.character, c.places, c.plain) for c in problem.characters] == [
        ("\uff37", (1,), "W"),
        ("\uff4f", (2, 3), "o"),
        ("\uff52", (4,), "r"),
    ]
    assert problem.more == 5
    assert str(problem).endswith(
        '"\uff37\uff4f\uff4f\uff52\uff44\uff57\uff49\uff4a\uff53" has U+FF37 FULLWIDTH LATIN '
        'CAPITAL LETTER W as character 1 (type "W" instead); U+FF4F FULLWIDTH LATIN SMALL LETTER '
        'O as characters 2, 3 (type "o" instead); U+FF52 FULLWIDTH LATIN SMALL LETTER R as '
        'character 4 (type "r" instead); and 5 other such characters'
    )
    # A character at many places lists the first few.
    many = name_problem("\uff4f" * (MAX_PLACES + 2))
    assert many is not None and many.characters[0].shown_places == "1, 2, 3, …"
    assert many.more == 0 and "and" not in str(many).split(" has ")[1]
    # One other is "character", not "characters".
    one_more = name_problem("\uff37\uff4f\uff52\uff44")  # W o r d
    assert one_more is not None and str(one_more).endswith("; and 1 other such character")


def test_in_a_word_mostly_of_another_script_the_latin_letters_are_named() -> None:
    """A Russian "school" (U+0428 U+043A U+043E U+043B) with a Latin a typed last: the Latin
    letter is the odd one out, and there is no Latin letter to type instead of it."""
    problem = name_problem("\u0428\u043a\u043e\u043ba")
    assert problem is not None and problem.fault is TextFault.MIXED_SCRIPT
    assert problem.characters == (CharacterAtFault("a", (5,)),)
    assert problem.position == 5
    assert str(problem).endswith("has U+0061 LATIN SMALL LETTER A as character 5")


@pytest.mark.parametrize(
    ("name", "word", "script", "reads_as"),
    [
        ("\u0421\u043e\u0441\u043e", "\u0421\u043e\u0441\u043e", "Cyrillic", "Coco"),
        ("\u0440\u043e\u0435", "\u0440\u043e\u0435", "Cyrillic", "poe"),
        ("\u0421\u0406\u0422\u041e", "\u0421\u0406\u0422\u041e", "Cyrillic", "CITO"),
        # Beside Latin words too: the Latin town shows nothing of the Cyrillic word's script.
        ("\u0421\u043e\u0441\u043e Amsterdam", "\u0421\u043e\u0441\u043e", "Cyrillic", "Coco"),
        (
            "Lyceum \u0455\u0441\u04bb\u043e\u043e\u04cf",
            "\u0455\u0441\u04bb\u043e\u043e\u04cf",
            "Cyrillic",
            "school",
        ),
        (
            "\u0421\u0406\u0422\u0420\u041e\u0401\u041d",
            "\u0421\u0406\u0422\u0420\u041e\u0401\u041d",
            "Cyrillic",
            "CITPOËH",
        ),
        # Capitals of look-alikes only, in Greek: written with its lower case, it passes.
        ("\u03a4\u039f \u039a\u0395\u039d\u03a4\u03a1\u039f", "\u03a4\u039f", "Greek", "TO"),
        ("\u039f\u03a1\u0391 Amsterdam", "\u039f\u03a1\u0391", "Greek", "OPA"),
        # Greek letters no Greek name uses any more: digamma, capital yot.
        ("\u03dc\u0399\u03a4", "\u03dc\u0399\u03a4", "Greek", "FIT"),
        ("\u037f\u039f\u039a\u0395", "\u037f\u039f\u039a\u0395", "Greek", "JOKE"),
        # Armenian: capital liwn, small oh, co, oh; capitals tiwn, oh, seh, liwn; small vo, oh, co.
        ("\u053c\u0585\u0581\u0585", "\u053c\u0585\u0581\u0585", "Armenian", "Logo"),
        ("\u054f\u0555\u054d\u053c Rotterdam", "\u054f\u0555\u054d\u053c", "Armenian", "SOUL"),
        ("Lyceum \u0578\u0585\u0581", "\u0578\u0585\u0581", "Armenian", "nog"),
        # A modifier letter (the Armenian half ring, U+0559) reads as a quote, not as the script.
        (
            "\u0559\u053c\u0585\u0581\u0585\u0559",
            "\u0559\u053c\u0585\u0581\u0585\u0559",
            "Armenian",
            "\u0559Logo\u0559",
        ),
        # Coptic: capitals sima, iauda, tau, o; small sima, o; capitals vida, o, khi (Greek-block
        # Coptic letters pass for nothing Latin and show the script, as in COPTIC_NAME).
        ("\u2ca4\u2c92\u2ca6\u2c9e", "\u2ca4\u2c92\u2ca6\u2c9e", "Coptic", "CITO"),
        ("\u2ca5\u2c9f\u2ca5\u2c9f Amsterdam", "\u2ca5\u2c9f\u2ca5\u2c9f", "Coptic", "coco"),
        ("De \u2c82\u2c9e\u2cac", "\u2c82\u2c9e\u2cac", "Coptic", "BOX"),
    ],
)
def test_a_word_only_of_look_alikes_is_refused(
    name: str, word: str, script: str, reads_as: str
) -> None:
    problem = name_problem(name)
    assert problem is not None and problem.fault is TextFault.LOOK_ALIKE_WORD
    assert (problem.word, problem.script, problem.plain) == (word, script, reads_as)
    assert problem.position == name.index(word) + 1
    message = str(problem)
    assert message.startswith(
        f"must not spell a word only in {script} letters that look like Latin ones: "
        f'"{word}" reads as "{reads_as}" and has U+'
    ), message
    # Each letter named is of that script, with the Latin one it passes for; a modifier letter
    # (the Armenian half ring) is not.
    for named in problem.characters:
        letter = named.character
        assert unicodedata.name(letter).startswith(script.upper()), letter
        assert unicodedata.category(letter) != "Lm"
        assert named.plain == LATIN_LOOK_ALIKES[letter]
        assert f"{named.named} as character" in message
        assert named.places == tuple(i + 1 for i, c in enumerate(word) if c == letter)
    letters = {c for c in word if unicodedata.category(c) != "Lm"}
    assert len(problem.characters) + problem.more == len(letters)


def test_a_word_only_of_look_alikes_names_each_letter_and_what_to_type() -> None:
    assert str(name_problem("\u0421\u043e\u0441\u043e")) == (
        "must not spell a word only in Cyrillic letters that look like Latin ones: "
        '"\u0421\u043e\u0441\u043e" reads as "Coco" and has U+0421 CYRILLIC CAPITAL LETTER ES as '
        'character 1 (type "C" instead); U+043E CYRILLIC SMALL LETTER O as characters 2, 4 (type '
        '"o" instead); U+0441 CYRILLIC SMALL LETTER ES as character 3 (type "c" instead)'
    )


def test_a_word_mixing_latin_is_named_as_mixed_before_anything_else() -> None:
    """Checked in order: hidden characters, compatibility forms, mixed words, whole words."""
    assert name_problem("\u0421\u043e\u0441\u043e W\u043eordwijs") == TextProblem(
        TextFault.MIXED_SCRIPT,
        position=7,
        word="W\u043eordwijs",
        script="Cyrillic",
        characters=(CharacterAtFault("\u043e", (2,), "o"),),
    )
    assert name_problem("\u053c\u0585\u0581\u0585 W\u0585ordwijs") == TextProblem(
        TextFault.MIXED_SCRIPT,
        position=7,
        word="W\u0585ordwijs",
        script="Armenian",
        characters=(CharacterAtFault("\u0585", (2,), "o"),),
    )
    problem = name_problem(f"\u0421\u043e\u0441\u043e {FULLWIDTH_WOORDWIJS}")
    assert problem is not None and problem.fault is TextFault.COMPATIBILITY_FORM


def test_the_look_alike_table_maps_letters_of_the_checked_scripts_to_latin_ones() -> None:
    """Pure data (core/latin_look_alikes.py): each letter of a checked script, canonical (no
    compatibility form of its own), mapped to one Latin letter."""
    for letter, latin in LATIN_LOOK_ALIKES.items():
        assert unicodedata.name(letter).split()[0] in WHOLE_SCRIPT_CHECKED, letter
        assert unicodedata.normalize("NFKC", letter) == letter
        assert len(latin) == 1 and unicodedata.name(latin).startswith("LATIN "), latin
    # Letters that only come close stay out: Cyrillic ka and te, Greek alpha, iota and gamma,
    # Armenian ho and za, Coptic mi, small ua and fei.
    close = {"\u043a", "\u0442", "\u03b1", "\u03b9", "\u03b3", "\u0570", "\u0566", "\u2c98"}
    assert not (close | {"\u2ca9", "\u03e5"}) & LATIN_LOOK_ALIKES.keys()


def test_the_latin_variants_are_letters_no_other_rule_catches() -> None:
    """core/latin_look_alikes.LATIN_VARIANTS: each a letter of no look-alike script that NFKC
    does not replace as a compatibility form, mapped to an ordinary Latin letter."""
    for letter, latin in LATIN_VARIANTS.items():
        assert letter.isalpha() and letter not in LATIN_LOOK_ALIKES, letter
        assert unicodedata.name(letter).split()[0] not in LOOK_ALIKE_SCRIPTS, letter
        assert not unicodedata.decomposition(letter).startswith("<"), letter
        assert len(latin) == 1 and unicodedata.name(latin).startswith("LATIN "), latin
        assert name_problem(f"x{letter}x") is not None
    # Left out by shape: Latin alpha, iota and small capital I.
    assert not {"\u0251", "\u0269", "\u026a"} & LATIN_VARIANTS.keys()


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("\ua4da\ua4f2\ua4d4\ua4f3", "Lisu"),  # CITO in Lisu capitals
        ("\u13df\u13c6\u13a2\u13be", "Cherokee"),  # CITO in Cherokee letters
        # A letter of the script that passes for nothing Latin does not save a word of it.
        ("\ua4da\ua4f2\ua4d4\ua4f3 \ua4e5", "Lisu"),
        ("Leesplank \u13df\u13c6\u13a2\u13be", "Cherokee"),
    ],
)
def test_a_word_in_lisu_or_cherokee_is_refused_whatever_stands_beside_it(
    name: str, script: str
) -> None:
    problem = name_problem(name)
    assert problem is not None and problem.fault is TextFault.LOOK_ALIKE_WORD
    assert problem.script == script and problem.plain == "CITO"
