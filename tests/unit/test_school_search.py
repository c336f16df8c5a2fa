"""Finding a school on the discovery page (broker/core/school_search.py)."""

from __future__ import annotations

from broker.core.model import School
from broker.core.school_search import LIST_ALL_UP_TO, SHOWN_AT_MOST, SchoolDirectory, fold

SMALL = [
    School("03CC", "Zeister Lyceum", "https://idp.zeist"),
    School("01BB", "St.-Bonifatiuscollege", "https://idp.bonifatius"),
    School("02AA", "École Européenne", "https://idp.ecole"),
]


def many(count: int) -> list[School]:
    return [
        School(f"S{n:05d}", f"Basisschool De Linde {n}", f"https://idp{n}") for n in range(count)
    ]


def test_folding_is_the_same_as_the_pages_script() -> None:
    # discovery.js: NFD, combining marks off, lower case, non-letters and digits to one space.
    assert fold("St.-Bonifatiuscollege") == "st bonifatiuscollege"
    assert fold("  École   Européenne ") == "ecole europeenne"
    assert fold("O.B.S. 't Ruimteschip_2") == "o b s t ruimteschip 2"


def test_a_small_federation_lists_every_school_in_name_order() -> None:
    found = SchoolDirectory(SMALL).find("")
    assert [s.id for s in found.schools] == ["02AA", "01BB", "03CC"]
    assert found.total == 3 and found.searched and not found.partial


def test_every_word_must_match_the_name_or_the_id_without_accents_or_punctuation() -> None:
    directory = SchoolDirectory(SMALL)
    assert [s.id for s in directory.find("st bonifatius").schools] == ["01BB"]
    assert [s.id for s in directory.find("ecole EUROP").schools] == ["02AA"]
    assert [s.id for s in directory.find("03cc").schools] == ["03CC"]
    assert directory.find("bonifatius zeist").schools == ()
    assert directory.find("bonifatius zeist").total == 0


def test_a_large_federation_asks_for_part_of_the_name_first() -> None:
    directory = SchoolDirectory(many(LIST_ALL_UP_TO + 1))
    found = directory.find("")
    assert found.schools == () and found.total == 0 and not found.searched
    # Punctuation alone is no search either.
    assert not directory.find(" .- ").searched


def test_a_search_in_a_large_federation_shows_at_most_the_limit_and_says_how_many() -> None:
    directory = SchoolDirectory(many(1000))
    found = directory.find("linde")
    assert len(found.schools) == SHOWN_AT_MOST and found.total == 1000 and found.partial
    narrow = directory.find("de linde 999")
    assert [s.id for s in narrow.schools] == ["S00999"] and not narrow.partial


def test_a_small_federation_shows_every_match() -> None:
    directory = SchoolDirectory(many(LIST_ALL_UP_TO))
    found = directory.find("linde")
    assert len(found.schools) == LIST_ALL_UP_TO and not found.partial


def test_the_remembered_school_is_found_by_id_only_if_listed() -> None:
    directory = SchoolDirectory(SMALL)
    assert directory.get("01BB") == SMALL[1]
    assert directory.get("nope") is None
