"""Which declaration changes make schools confirm again (core/declarations.py), when a new
purpose text is a new purpose (core/purposes.py), bilingual purposes with their Dutch fallback,
and how the notice and the my-data page word a purpose."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask, render_template

from broker.core.declarations import compare_declarations
from broker.core.model import Declaration
from broker.core.purposes import (
    purpose_change_author,
    purpose_change_version,
    purpose_of_record,
    same_purpose,
)
from broker.web.labels import declared_purpose
from tests.unit.test_pages import SCHOOLS, app  # noqa: F401 - a fixture

NAME = Declaration("given_name", "Om te begroeten", purpose_en="To greet")
GROUPS = Declaration("groups", "Om de klas te vinden", required=True)


def test_purpose_in_falls_back_to_dutch() -> None:
    assert NAME.purpose_in("en") == "To greet"
    assert NAME.purpose_in("nl") == "Om te begroeten"
    assert GROUPS.purpose_in("en") == "Om de klas te vinden"


@pytest.mark.parametrize(
    ("new", "confirm", "what"),
    [
        ((replace(NAME, purpose="Om te begroeten."), GROUPS), False, "reworded"),
        ((replace(NAME, purpose_en=""), GROUPS), False, "reworded"),
        ((replace(NAME, purpose_en="To say hello by name"), GROUPS), False, "reworded"),
        ((replace(NAME, purpose="Voor reclame"), GROUPS), False, "purpose_changed"),
        ((GROUPS, NAME), False, None),  # only the order
        ((GROUPS,), False, "removed"),
        ((NAME, GROUPS, Declaration("email", "Om te mailen")), True, "added"),
        ((replace(NAME, required=True), GROUPS), True, "now_required"),
        ((NAME, replace(GROUPS, required=False)), True, "now_optional"),
    ],
)
def test_only_added_attributes_or_required_changes_need_confirming(
    new: tuple[Declaration, ...], confirm: bool, what: str | None
) -> None:
    diff = compare_declarations((NAME, GROUPS), new)
    assert diff.needs_confirmation is confirm
    assert diff.empty is (what is None)
    if what is not None:
        assert getattr(diff, what)


def test_a_new_dutch_purpose_is_a_purpose_change_and_new_wording_is_not() -> None:
    new_purpose = (replace(NAME, purpose="Om de leerling reclame te sturen"), GROUPS)
    diff = compare_declarations((NAME, GROUPS), new_purpose)
    assert (diff.purpose_changed, diff.reworded) == (("given_name",), ())
    # One attribute reworded, another with a new purpose: each is named for what it is.
    both = (replace(NAME, purpose="om te Begroeten!"), replace(GROUPS, purpose="Voor reclame"))
    diff = compare_declarations((NAME, GROUPS), both)
    assert (diff.purpose_changed, diff.reworded) == (("groups",), ("given_name",))
    assert not diff.needs_confirmation


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Om de leerling te begroeten", "Om de leerling te begroeten."),  # a full stop
        ("om de leerling te begroeten", "Om de Leerling te BEGROETEN"),  # capitals
        ("Om de leerling  te\tbegroeten ", " Om de leerling te\nbegroeten"),  # whitespace
        ("Om de leerling te begroeten", "Om de leerling te\u00a0begroeten"),  # a no-break space
        ("Om de 'inloglink' te sturen", "Om de \u2018inloglink\u2019 te sturen"),  # curly quotes
        ("Om het e-mailadres te tonen", "Om het emailadres te tonen"),  # a hyphen in a word
        ("Om het e-mailadres te tonen", "Om het e-mail\u00adadres te tonen"),  # a soft hyphen
        ("Om te begroeten", "Om te\u200b begroeten"),  # a zero-width space
        ("Caf\u00e9 tonen", "Cafe\u0301 tonen"),  # composed and decomposed: NFC
        ("Om te begroeten. Niet voor reclame.", "Om te begroeten, niet voor reclame"),
        ("Om te begroeten; niet voor reclame", "Om te begroeten - niet voor reclame"),
        # Brackets are clause breaks, of any shape and like a comma; none at the ends.
        ("Om de leerling (en de ouder) te begroeten", "Om de leerling, en de ouder, te begroeten"),
        ("Om de leerling (en de ouder) te begroeten", "Om de leerling [en de ouder] te begroeten"),
        ("Om te begroeten (niet voor reclame)", "Om te begroeten, niet voor reclame."),
        # A quote mark is one mark whatever its shape; an apostrophe in a word is nothing.
        ('Voor inloggen, "niet" voor reclame', "Voor inloggen, \u201eniet\u201d voor reclame"),
        ('Voor inloggen, "niet" voor reclame', "Voor inloggen, ''niet'' voor reclame"),
        ("Om foto's te tonen", "Om foto\u2019s te tonen"),
        ("Om fotos te tonen", "Om foto's te tonen"),
        # Signs and numbers kept, whatever the spacing around them.
        ("100% van de partners", "100 % van de partners"),
        ("Naam en/of klas", "Naam en / of klas"),
        ("Bewaard 1.000 dagen", "Bewaard 1.000 dagen."),
        # Every dash in a number is one mark: a sign or a range in any dash, or the minus sign.
        ("Voor leerlingen van -16 jaar", "Voor leerlingen van \u201316 jaar"),
        ("Voor leerlingen van -16 jaar", "Voor leerlingen van \u221216 jaar"),
        ("Voor leerlingen van (-16)", "Voor leerlingen van (\u221216)"),
        ("Voor leerlingen van 10-12 jaar", "Voor leerlingen van 10\u201312 jaar"),
        # A hyphen after a letter is one in a word, before a digit too.
        ("Over COVID-19 informeren", "Over COVID19 informeren"),
        ("Over COVID-19 informeren", "Over COVID\u221219 informeren"),
        ("Om te begroeten - niet voor reclame", "Om te begroeten \u2212 niet voor reclame"),
    ],
)
def test_the_same_purpose_in_other_punctuation_case_or_spacing(old: str, new: str) -> None:
    assert purpose_of_record(old) == purpose_of_record(new)
    assert same_purpose(Declaration("email", old), Declaration("email", new, purpose_en="Mail"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Om een inloglink te sturen", "Voor marketing"),
        ("Om een inloglink te sturen", "Om een inloglink en reclame te sturen"),
        ("Om de leering te begroeten", "Om de leerling te begroeten"),  # a typo corrected counts
        ("Bewaard 30 dagen", "Bewaard 300 dagen"),
        ("Bewaard 12,5 dagen", "Bewaard 125 dagen"),
        # The same words, the clause break moved: the opposite purpose.
        ("Voor inloggen, niet voor reclame", "Voor inloggen niet, voor reclame"),
        ("Voor inloggen niet voor reclame", "Voor inloggen - niet voor reclame"),
        # A bracket moved, added or removed: a clause break like a comma.
        ("Voor inloggen (niet voor reclame)", "Voor inloggen niet (voor reclame)"),
        ("Om de leerling (en de ouder) te begroeten", "Om de leerling en de ouder te begroeten"),
        ("Voor inloggen, niet voor reclame", "Voor inloggen (niet) voor reclame"),
        # A word quoted says something else (irony, a term defined elsewhere), and a quote is
        # not a comma.
        ('Voor inloggen, "niet" voor reclame', "Voor inloggen, niet voor reclame"),
        ('Voor inloggen, "niet" voor reclame', "Voor inloggen, , niet, voor reclame"),
        ("Voor \u2018inloggen\u2019 en reclame", "Voor inloggen en reclame"),
        # Signs are words of their own.
        ("100% van de partners", "100 van de partners"),
        ("1\u2030 van de leerlingen", "1 van de leerlingen"),
        ("Naam & klas", "Naam klas"),
        ("Naam en/of klas", "Naam en of klas"),
        ("Volgens \u00a7 3", "Volgens 3"),
        # A mark between digits is part of the number.
        ("Bewaard 1.000 dagen", "Bewaard 1,000 dagen"),
        ("Bewaard 1.000 dagen", "Bewaard 1000 dagen"),
        ("Voor leerlingen van 10-12 jaar", "Voor leerlingen van 1012 jaar"),
        # A dash before a digit, after no letter, is the number's sign, in any dash.
        ("Alleen voor leerlingen van -16 jaar.", "Alleen voor leerlingen van 16 jaar."),
        ("Alleen voor leerlingen van \u221216 jaar.", "Alleen voor leerlingen van 16 jaar."),
        ("Alleen voor leerlingen van \u201316 jaar.", "Alleen voor leerlingen van 16 jaar."),
        ("Alleen voor leerlingen van -16 jaar.", "Alleen voor leerlingen van +16 jaar."),
        ("Voor leerlingen van (-16)", "Voor leerlingen van (16)"),
    ],
)
def test_other_words_or_clause_breaks_are_a_new_purpose(old: str, new: str) -> None:
    assert purpose_of_record(old) != purpose_of_record(new)
    assert not same_purpose(Declaration("email", old), Declaration("email", new))


@pytest.mark.parametrize("minus", ["-", "\u2013", "\u2212"])  # hyphen-minus, en dash, minus
def test_a_sign_added_to_a_number_is_a_new_purpose_not_a_rewording(minus: str) -> None:
    """Under 16 is not 16: the school agreed to the one, not the other (a hyphen-minus once
    counted only between two digits, so the sign passed as a rewording)."""
    old = Declaration("given_name", "Alleen voor leerlingen van 16 jaar.")
    new = replace(old, purpose=f"Alleen voor leerlingen van {minus}16 jaar.")
    diff = compare_declarations((old,), (new,))
    assert (diff.purpose_changed, diff.reworded) == (("given_name",), ())
    back = compare_declarations((new,), (old,))
    assert (back.purpose_changed, back.reworded) == (("given_name",), ())
    # Another dash for the same sign is a rewording.
    other = replace(new, purpose="Alleen voor leerlingen van \u221216 jaar.")
    diff = compare_declarations((new,), (other,))
    assert (diff.purpose_changed, diff.reworded) == (
        (),
        () if minus == "\u2212" else ("given_name",),
    )


def test_the_english_text_alone_never_changes_the_purpose_of_record() -> None:
    """Dutch is the purpose of record (core/purposes.py): an English translation added,
    changed or removed keeps every choice."""
    dutch = Declaration("email", "Om een inloglink te sturen")
    for english in ("To send a login link", "For marketing", ""):
        assert same_purpose(dutch, replace(dutch, purpose_en=english))
        assert same_purpose(
            replace(dutch, purpose_en="To send a login link"), replace(dutch, purpose_en=english)
        )


def test_a_choice_narrowed_for_a_new_purpose_names_the_declaration_version() -> None:
    assert purpose_change_author(7) == "purpose-change:7"
    assert purpose_change_version("purpose-change:7") == 7
    for other in ("admin:7", "import:beheer", "purpose-change:", "purpose-change:\u00b2"):
        assert purpose_change_version(other) is None


@pytest.mark.parametrize(
    ("lang", "shown", "hidden"),
    [
        ("nl", "Waarom het platform dit nodig heeft: Om te begroeten", "To greet"),
        ("en", "Why the platform needs it: To greet", "Om te begroeten"),
    ],
)
def test_the_notice_names_the_purpose_in_one_sentence_in_the_pages_language(
    app: Flask,  # noqa: F811
    lang: str,
    shown: str,
    hidden: str,
) -> None:
    with app.test_request_context(f"/notice/N-1?lang={lang}"):
        page = _notice([("Voornaam" if lang == "nl" else "First name", declared_purpose(NAME))])
    text = " ".join(page.split())
    assert shown in text and hidden not in text
    assert "nodig voor:" not in text and ": Waarom" not in text


def test_a_dutch_purpose_on_an_english_page_is_marked_as_dutch(app: Flask) -> None:  # noqa: F811
    """The Dutch fallback on an English page says it is Dutch (`lang="nl"`), so a screen
    reader does not read it as English words (WCAG 3.1.2); the publisher's text stays text."""
    odd = Declaration("groups", "Om de <klas> te vinden & te tonen", required=True)
    with app.test_request_context("/notice/N-1?lang=en"):
        assert declared_purpose(NAME) == "To greet"
        page = _notice([("Groups", declared_purpose(odd))])
    assert (
        'Why the platform needs it: <span lang="nl">Om de &lt;klas&gt; te vinden &amp; te tonen'
        "</span>" in page
    )
    with app.test_request_context("/notice/N-1?lang=nl"):
        assert declared_purpose(odd) == odd.purpose  # a Dutch page: no mark needed
        assert "<span" not in declared_purpose(odd)


def _notice(released: list[tuple[str, str]]) -> str:
    """The information notice of Rekenwereld naming `released` (label, purpose)."""
    return render_template(
        "notice.html",
        notice_id="N-1",
        address="/notice/N-1",
        service_name="Rekenwereld",
        school=SCHOOLS[0],
        released=released,
        continue_field="go",
        lang_switch={},
    )
