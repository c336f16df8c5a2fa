"""Finding a school on the discovery page (broker/core/school_search.py)."""

from __future__ import annotations

from broker.core.model import School
from broker.core.school_search import (
    ABBREVIATIONS,
    LIST_ALL_UP_TO,
    SHOWN_AT_MOST,
    SchoolDirectory,
    fold,
    one_typo_pattern,
)

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
    # discovery.js: NFKD, combining marks off, lower case, non-letters and digits to one space.
    assert fold("St.-Bonifatiuscollege") == "st bonifatiuscollege"
    assert fold("  École   Européenne ") == "ecole europeenne"
    assert fold("O.B.S. 't Ruimteschip_2") == "o b s t ruimteschip 2"
    # The Dutch ligature (allowed in names) is found by the two letters a student types, and
    # both are the one letter "y" (discovery.js: `.replaceAll("ij", "y")`).
    assert fold("Ĳsselcollege") == fold("IJsselcollege") == "ysselcollege"


def test_ij_finds_a_name_written_with_the_ligature() -> None:
    schools = [*SMALL, School("04DD", "Ĳsselcollege", "https://idp.ijssel")]
    found = SchoolDirectory(schools).find("ijssel")
    assert [school.id for school in found.schools] == ["04DD"]


def test_y_and_ij_find_each_other_in_names_towns_and_abbreviations() -> None:
    schools = [
        *SMALL,
        School("05EE", "Stedelijk Gymnasium", "https://idp.sg", town="Nijmegen"),
        School("06FF", "Christelijk Lyceum Ysselstein", "https://idp.cl"),
    ]
    directory = SchoolDirectory(schools)
    assert [s.id for s in directory.find("stedelyk").schools] == ["05EE"]
    assert [s.id for s in directory.find("gymnasium nymegen").schools] == ["05EE"]
    assert [s.id for s in directory.find("chr lyceum ijsselstein").schools] == ["06FF"]
    assert [s.id for s in directory.find("christelyk").schools] == ["06FF"]
    assert not directory.find("stedelyk").approximate


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
    # Not cut short, yet one search's schools: the page's next search is the server's too.
    assert found.large and narrow.large and directory.find("").large


def test_a_small_federation_shows_every_match() -> None:
    directory = SchoolDirectory(many(LIST_ALL_UP_TO))
    found = directory.find("linde")
    assert len(found.schools) == LIST_ALL_UP_TO and not found.partial and not found.large


def test_find_all_gives_every_match_of_a_large_federation_for_a_paged_list() -> None:
    # The operator's list (web/portal/operator_lists.py) pages the matches itself.
    directory = SchoolDirectory(many(1000))
    everything = directory.find_all("")
    assert len(everything.schools) == everything.total == 1000 and everything.searched
    assert everything.schools == directory.find_all("  ").schools
    found = directory.find_all("linde")
    assert len(found.schools) == found.total == 1000 and not found.partial
    assert [s.id for s in directory.find_all("S00012").schools] == ["S00012"]
    near = directory.find_all("basisscool")
    assert near.approximate and len(near.schools) == 1000
    # The same rule as the discovery page's: the same schools first.
    assert found.schools[:SHOWN_AT_MOST] == directory.find("linde").schools


def test_the_remembered_school_is_found_by_id_only_if_listed() -> None:
    directory = SchoolDirectory(SMALL)
    assert directory.get("01BB") == SMALL[1]
    assert directory.get("nope") is None


def test_hyphens_are_spaces_and_a_names_words_also_count_joined() -> None:
    directory = SchoolDirectory([School("01BB", "Sint-Bonifatiuscollege", "https://idp")])
    for typed in ("sint bonifatius", "sint-bonifatius", "sintbonifatius", "SINT\u2013Bonifatius"):
        assert [s.id for s in directory.find(typed).schools] == ["01BB"], typed


def test_common_abbreviations_count_as_the_full_word_both_ways() -> None:
    directory = SchoolDirectory(
        [
            School("01BB", "Sint-Bonifatiuscollege", "https://idp1"),
            School("02CC", "Chr. Lyceum Zeist", "https://idp2"),
            School("03DD", "St. Jozefschool", "https://idp3"),
            School("04EE", "Stedelijk Gymnasium", "https://idp4"),
        ]
    )
    assert [s.id for s in directory.find("st bonifatius").schools] == ["01BB"]
    assert [s.id for s in directory.find("st. bonifatius").schools] == ["01BB"]
    assert [s.id for s in directory.find("christelijk lyceum").schools] == ["02CC"]
    assert [s.id for s in directory.find("chr lyceum").schools] == ["02CC"]
    assert [s.id for s in directory.find("sint jozef").schools] == ["03DD"]
    # "st" still finds what it always found as typed ("Stedelijk"), besides the saints.
    assert {s.id for s in directory.find("st").schools} >= {"01BB", "03DD", "04EE"}
    assert all(full == fold(full) for full in ABBREVIATIONS.values())


def test_only_when_nothing_matches_one_typo_per_word_is_allowed() -> None:
    directory = SchoolDirectory(
        [
            School("01AA", "Demo Lyceum", "https://idp1"),
            School("02BB", "Het Baken", "https://idp2"),
            School("03CC", "Lyceum Oost", "https://idp3"),
        ]
    )
    found = directory.find("lyceym")  # a letter wrong
    assert [s.id for s in found.schools] == ["01AA", "03CC"] and found.approximate
    assert [s.id for s in directory.find("demo lycuem").schools] == ["01AA"]  # two swapped
    assert [s.id for s in directory.find("baaken").schools] == ["02BB"]  # one extra
    assert [s.id for s in directory.find("lyceum oot").schools] == []  # too short to guess
    assert [s.id for s in directory.find("bakn").schools] == []  # too short to guess
    assert [s.id for s in directory.find("lycyym").schools] == []  # two typos in one word
    exact = directory.find("lyceum")
    assert not exact.approximate and [s.id for s in exact.schools] == ["01AA", "03CC"]
    # A code is never guessed: a typo in it finds no other school.
    assert directory.find("01ab").schools == ()
    assert directory.find("nothing here").total == 0 and not directory.find("nothing").approximate


def test_the_typo_rule_is_one_edit_of_a_part_of_a_word() -> None:
    pattern = one_typo_pattern("lyceum")
    for text in ("lyceum", "lyceym", "lycem", "lycceum", "lyecum", "xlyceumx"):
        assert pattern.search(text), text
    for text in ("lyc", "lycxxm", "muecyl"):
        assert not pattern.search(text), text


def test_a_typo_search_in_a_large_federation_shows_at_most_the_limit() -> None:
    directory = SchoolDirectory(many(1000))
    found = directory.find("lindr")
    assert found.approximate and found.total == 1000 and len(found.schools) == SHOWN_AT_MOST


NAMESAKES = [
    School("01UT", "Stedelijk Gymnasium", "https://idp.sgu", town="Utrecht"),
    School("02LE", "Stedelijk Gymnasium", "https://idp.sgl", town="Leiden"),
    School("03LE", "Het College", "https://idp.hcl", town="Leiden"),
    School("04BO", "Christelijk Lyceum", "https://idp.clb", town="St. Michielsgestel"),
    School("05NT", "Stedelijk Gymnasium", "https://idp.sgx"),
    School("06DH", "Het Lyceum", "https://idp.hld", town="Den Haag"),
]


def _ids(directory: SchoolDirectory, typed: str) -> list[str]:
    return [s.id for s in directory.find(typed).schools]


def test_schools_of_one_name_are_told_apart_by_their_town() -> None:
    directory = SchoolDirectory(NAMESAKES)
    assert _ids(directory, "gymnasium leiden") == ["02LE"]
    assert _ids(directory, "Leiden gymnasium") == ["02LE"]
    assert _ids(directory, "utrecht") == ["01UT"]
    assert _ids(directory, "leiden") == ["03LE", "02LE"]  # name order
    # Name order, then town order (a school without a town first): the list reads as a list.
    assert _ids(directory, "stedelijk gymnasium") == ["05NT", "02LE", "01UT"]
    # A word must be in the name, the town or the code: a town is no wildcard.
    assert _ids(directory, "college utrecht") == []


def test_a_town_is_folded_written_out_and_joined_like_a_name() -> None:
    directory = SchoolDirectory(NAMESAKES)
    assert _ids(directory, "sint michielsgestel") == ["04BO"]
    assert _ids(directory, "st-michielsgestel lyceum") == ["04BO"]
    assert _ids(directory, "denhaag") == ["06DH"]
    assert _ids(directory, "DEN HAAG") == ["06DH"]
    # The code still counts, beside the town.
    assert _ids(directory, "02le") == ["02LE"]


def test_a_typo_in_a_town_is_forgiven_when_nothing_matches() -> None:
    directory = SchoolDirectory(NAMESAKES)
    found = directory.find("gymnasium leidn")
    assert [s.id for s in found.schools] == ["02LE"] and found.approximate
    assert _ids(directory, "utrcht") == ["01UT"]
    # The typo rule still wants every word: a near town and a name it does not hold is nothing.
    assert _ids(directory, "college utrcht") == []


MERGED = [
    School(
        "10BL",
        "Baken Lyceum",
        "https://idp.bl",
        town="Zwolle",
        aliases=("Het Baken", "Locatie Zuid"),
    ),
    School("11HC", "Het College", "https://idp.hc", town="Zwolle"),
    School(
        "12CL",
        "Christelijke Scholengemeenschap Liudger",
        "https://idp.cl",
        aliases=("CSG Liudger",),
    ),
    School("13ZU", "Zuiderpark", "https://idp.zp", town="Den Haag"),
]


def test_an_alias_finds_its_school_and_says_so() -> None:
    directory = SchoolDirectory(MERGED)
    found = directory.find("het baken")
    assert [s.id for s in found.schools] == ["10BL"]
    assert found.aliases == {"10BL": "Het Baken"} and not found.approximate
    # With the town and the code, as the name would be.
    assert _ids(directory, "het baken zwolle") == ["10BL"]
    assert _ids(directory, "locatie zuid 10bl") == ["10BL"]
    # Folded, written out and joined like a name.
    assert _ids(directory, "hetbaken") == ["10BL"]
    assert _ids(directory, "liudger csg") == ["12CL"]


def test_a_school_its_name_finds_names_no_alias() -> None:
    directory = SchoolDirectory(MERGED)
    found = directory.find("baken")  # in the name and in an alias
    assert [s.id for s in found.schools] == ["10BL"] and found.aliases == {}
    found = directory.find("zwolle")  # the town: both entries hold it
    assert [s.id for s in found.schools] == ["10BL", "11HC"] and found.aliases == {}
    # "zuid" is in one school's alias and another's name: each once, in name order.
    found = directory.find("zuid")
    assert [s.id for s in found.schools] == ["10BL", "13ZU"]
    assert found.aliases == {"10BL": "Locatie Zuid"}
    # Every school once, and the empty search names no alias.
    assert directory.find("").total == len(MERGED) and directory.find("").aliases == {}


def test_the_words_of_one_search_never_mix_the_name_and_an_alias() -> None:
    directory = SchoolDirectory(MERGED)
    assert _ids(directory, "lyceum zuid") == []
    assert _ids(directory, "baken lyceum locatie") == []
    assert _ids(directory, "het baken locatie zuid") == []


def test_a_typo_in_an_alias_is_forgiven_when_nothing_matches() -> None:
    directory = SchoolDirectory(MERGED)
    found = directory.find("lokatie zuid")
    assert [s.id for s in found.schools] == ["10BL"] and found.approximate
    assert found.aliases == {"10BL": "Locatie Zuid"}
    assert _ids(directory, "liudgr") == ["12CL"]  # in the name and the alias: the name's
    assert directory.find("liudgr").aliases == {}


def test_a_large_federation_counts_a_school_once_however_many_aliases_match() -> None:
    schools = [
        School(f"S{n:05d}", f"Basisschool De Linde {n}", f"https://idp{n}", aliases=(f"Linde {n}",))
        for n in range(1000)
    ]
    directory = SchoolDirectory(schools)
    found = directory.find("linde")
    assert found.total == 1000 and len(found.schools) == SHOWN_AT_MOST and found.aliases == {}
    found = directory.find("linde 999")
    assert [s.id for s in found.schools] == ["S00999"] and found.aliases == {}
