"""Which declaration changes make schools confirm again (core/declarations.py), bilingual
purposes with their Dutch fallback, and how the notice and the my-data page word a purpose."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask, render_template

from broker.core.declarations import compare_declarations, reconfirm_version_after
from broker.core.model import Declaration
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
        ((replace(NAME, purpose="Om te begroeten."), GROUPS), False, "purpose_changed"),
        ((replace(NAME, purpose_en=""), GROUPS), False, "purpose_changed"),
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
    expected = 5 if confirm else 3
    assert reconfirm_version_after((NAME, GROUPS), new, current=3, new_version=5) == expected


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
