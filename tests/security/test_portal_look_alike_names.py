"""Look-alike letters in the names the portals take (core/display_text.py): a word that mixes
Latin letters with Cyrillic, Greek or other look-alike ones is refused next to its field, in
the page's language and naming the script, and nothing is written, in every form that takes a
name or a town: the operator's chain, publisher and school forms and the publisher's SAML and
OIDC registrations (a school administrator names nothing). A name or town the registry already
holds is not judged again when the operator saves the school's other field.

Look-alikes are written as escapes: U+0430 a Cyrillic a, U+0435 a Cyrillic e, U+043E a
Cyrillic o, U+0421 a Cyrillic es (a C), U+03BF a Greek omicron, U+0585 an Armenian oh; U+FF21
and on are fullwidth Latin letters, U+1D400 and on mathematical bold ones.

The same holds for a word in a compatibility form of Latin letters (fullwidth, mathematical, a
phonetic script g) and for a word only of Cyrillic, Greek, Armenian or Coptic letters that all
pass for Latin ones ("Coco" in Cyrillic, "Logo" in Armenian): each refused with its own words,
the word shown, and the ordinary or Latin letters it reads as.

Every such refusal names the characters at fault, in the page's language: each by its code point
and Unicode name ("U+212A KELVIN SIGN"), its places in the word and the plain letter to type
instead, a few at most and the count of the rest; the word alone looks like the plain one.

A hidden or control character (a zero-width space, a soft hyphen, a byte-order mark or a tab
pasted from a PDF or a document) is refused in the same way: the word it stands in, shown with
it as "?", and each such character by its code point and Unicode name (a control with none by
what it is), its places in the word and what to do: delete it, or type an ordinary space."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping
from io import BytesIO

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.catalogue import CATALOGUE
from broker.core.display_text import LOOK_ALIKE_SCRIPTS, UNNAMED
from broker.core.latin_look_alikes import LATIN_LOOK_ALIKES
from broker.web.portal.field_checks import SCRIPT_LETTERS, UNNAMED_CHARACTERS
from tests.security.test_portal_declarations import sp_metadata
from tests.security.test_portal_self_service import field_error
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, csrf_token

NOT_NEEDED = {f"need_{name}": "" for name in CATALOGUE}
SCHOOL = f"/portal/operator/schools/{DEMO_SCHOOL_ID}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-look-alikes"), port=8740)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return site.sign_in("operator")


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    return site.sign_in("publisher")


def _post(
    client: FlaskClient, url: str, form_url: str, data: Mapping[str, object], lang: str = "nl"
) -> tuple[int, str]:
    token = csrf_token(client.get(f"{form_url}?lang={lang}", base_url=HTTPS).get_data(True))
    response = client.post(
        url,
        base_url=HTTPS,
        data={"csrf_token": token, **data},
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_data(as_text=True)


def _chain_refusal(site: PortalSite, operator: FlaskClient, name: str, lang: str) -> str:
    """The refusal next to the name of a new chain called `name`, on a page in `lang`; nothing
    is written."""
    url, generation = "/portal/operator/chains", site.registry.generation()
    status, page = _post(operator, url, url, {"chain_id": "toetsen-west", "name": name}, lang)
    assert status == 400, page
    assert site.registry.chain("toetsen-west") is None
    assert site.registry.generation() == generation
    return field_error(page, "name")


def _idp_metadata(site: PortalSite, school_id: str) -> BytesIO:
    """The demo school's IdP metadata under another entity id: an IdP of the new school's own."""
    demo = site.registry.school(DEMO_SCHOOL_ID)
    assert demo is not None
    xml = site.registry.school_metadata()[demo.idp_entity_id]
    xml = xml.replace(demo.idp_entity_id, f"https://idp.{school_id.lower()}.example/saml")
    return BytesIO(xml.encode())


# Each form: who posts it where, the fields with a look-alike name, and whether it wrote
# anything (checked after the refusal).
Written = Callable[[PortalSite], bool]
FORMS: dict[str, tuple[str, str, str, Callable[[PortalSite], dict[str, object]], Written]] = {
    "chain": (
        "operator",
        "/portal/operator/chains",
        "/portal/operator/chains",
        lambda site: {"chain_id": "examens", "name": "Ex\u0430mens"},
        lambda site: site.registry.chain("examens") is not None,
    ),
    "publisher": (
        "operator",
        "/portal/operator/admins/publishers",
        "/portal/operator/admins",
        lambda site: {"publisher_id": "uitgeverij-west", "name": "Uitgeverij W\u0435st"},
        lambda site: any(p.id == "uitgeverij-west" for p in site.registry.accounts.publishers()),
    ),
    "school": (
        "operator",
        "/portal/operator/schools",
        "/portal/operator/schools",
        lambda site: {
            "school_id": "40LE00",
            "name": "Stedelijk Gymnasium L\u0435iden",
            "metadata_file": (_idp_metadata(site, "40LE00"), "idp.xml"),
        },
        lambda site: site.registry.school("40LE00") is not None,
    ),
    "saml service": (
        "publisher",
        f"/portal/publisher/{PUBLISHER_ID}/services/new",
        f"/portal/publisher/{PUBLISHER_ID}/services/new",
        lambda site: {
            **NOT_NEEDED,
            "service_id": "leesplein",
            "name": "L\u0585esplein",
            "naming": "oid",
            "metadata_xml": sp_metadata("https://sp.leesplein.example", "https://w.example/acs"),
        },
        lambda site: site.registry.any_service("leesplein") is not None,
    ),
    "oidc client": (
        "publisher",
        f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc",
        f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc",
        lambda site: {
            **NOT_NEEDED,
            "service_id": "woordwijs-oidc",
            "name": "W\u03bfordwijs",
            "redirect_uris": "https://app.woordwijs.example/cb",
            "auth_method": "client_secret_basic",
            "id_token_alg": "ES256",
        },
        lambda site: site.registry.any_service("woordwijs-oidc") is not None,
    ),
}
SCRIPTS = {"chain": "Cyrillische", "publisher": "Cyrillische", "school": "Cyrillische"}
SCRIPTS |= {"saml service": "Armeense", "oidc client": "Griekse"}


@pytest.mark.parametrize("form", FORMS)
def test_a_look_alike_name_is_refused_next_to_its_field_and_nothing_is_written(
    site: PortalSite, operator: FlaskClient, publisher: FlaskClient, form: str
) -> None:
    role, url, form_url, data, written = FORMS[form]
    generation = site.registry.generation()
    fields = data(site)
    status, page = _post(operator if role == "operator" else publisher, url, form_url, fields)
    assert status == 400, page
    word = str(fields["name"]).split()[-1]
    # The one look-alike letter, named with its place and the Latin letter to type instead.
    letter = next(c for c in word if not c.isascii())
    named = f"U+{ord(letter):04X} {unicodedata.name(letter)}"
    assert field_error(page, "name") == (
        f"„{word}” mengt Latijnse letters met {SCRIPTS[form]} letters die erop lijken. Het bevat "
        f"{named} op plaats {word.index(letter) + 1} (typ in plaats daarvan "
        f"„{LATIN_LOOK_ALIKES[letter]}”). Gebruik één schrift per woord."
    )
    assert not written(site)
    assert site.registry.generation() == generation


def test_the_refusal_is_english_on_an_english_page(site: PortalSite, operator: FlaskClient) -> None:
    fields = {"chain_id": "examens", "name": "Ex\u0430mens"}
    url = "/portal/operator/chains"
    status, page = _post(operator, url, url, fields, lang="en")
    assert status == 400
    assert field_error(page, "name") == (
        "“Ex\u0430mens” mixes Latin letters with Cyrillic letters that look like them. It has "
        "U+0430 CYRILLIC SMALL LETTER A as character 3 (type “a” instead). Use one script per "
        "word."
    )
    # A name in one script per word passes: Cyrillic beside Latin, accents, a ligature.
    fields["name"] = "\u0422\u0435\u0441\u0442\u044b Ĳssel-Éloi 2.0"
    status, _page = _post(operator, url, url, fields, lang="en")
    assert status == 303
    chain = site.registry.chain("examens")
    assert chain is not None and chain.name == fields["name"]


@pytest.fixture
def old_look_alikes(site: PortalSite) -> Iterator[tuple[str, str]]:
    """The demo school as a registry written before the rule may hold it; restored after."""
    old = ("Demo Lyc\u0435um", "Utr\u0435cht")
    site.registry.set_school_details(DEMO_SCHOOL_ID, *old)
    yield old
    site.registry.set_school_details(DEMO_SCHOOL_ID, "Demo Lyceum", DEMO_SCHOOL_TOWN)


def test_a_name_or_town_the_registry_holds_is_not_judged_again(
    site: PortalSite, operator: FlaskClient, old_look_alikes: tuple[str, str]
) -> None:
    old_name, old_town = old_look_alikes
    # The town alone changes: the old name stays as it is.
    status, page = _post(operator, SCHOOL, SCHOOL, {"name": old_name, "town": "Utrecht"})
    assert status == 303, page
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None and (school.name, school.town) == (old_name, "Utrecht")
    # A new look-alike, in the name or the town, is judged.
    status, page = _post(operator, SCHOOL, SCHOOL, {"name": "Dem\u043e Lyceum", "town": old_town})
    assert status == 400
    assert "Cyrillische letters" in field_error(page, "name")
    assert "Cyrillische letters" in field_error(page, "town")
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None and (school.name, school.town) == (old_name, "Utrecht")


def test_every_look_alike_script_has_a_name_in_the_portal() -> None:
    assert {script.upper() for script in SCRIPT_LETTERS} == LOOK_ALIKE_SCRIPTS


FULLWIDTH_EXAMENS = "\uff25\uff58\uff41\uff4d\uff45\uff4e\uff53"
CYRILLIC_COCO = "\u0421\u043e\u0441\u043e"
ARMENIAN_LOGO = "\u053c\u0585\u0581\u0585"  # capital liwn, small oh, co, oh
SCRIPT_G = "Lee\u0261plank"  # U+0261 the script g of phonetics
KELVIN_KENNISNET = "\u212aennisnet"  # U+212A the Kelvin sign, as a PDF may give a K
FULLWIDTH_NAMED = {
    "nl": "U+FF25 FULLWIDTH LATIN CAPITAL LETTER E op plaats 1 (typ in plaats daarvan „E”); "
    "U+FF58 FULLWIDTH LATIN SMALL LETTER X op plaats 2 (typ in plaats daarvan „x”); U+FF41 "
    "FULLWIDTH LATIN SMALL LETTER A op plaats 3 (typ in plaats daarvan „a”); en nog 4 zulke "
    "tekens",
    "en": "U+FF25 FULLWIDTH LATIN CAPITAL LETTER E as character 1 (type “E” instead); U+FF58 "
    "FULLWIDTH LATIN SMALL LETTER X as character 2 (type “x” instead); U+FF41 FULLWIDTH LATIN "
    "SMALL LETTER A as character 3 (type “a” instead); and 4 other such characters",
}


@pytest.mark.parametrize(
    ("name", "lang", "message"),
    [
        (
            f"{FULLWIDTH_EXAMENS} West",
            "nl",
            f"„{FULLWIDTH_EXAMENS}” bevat bijzondere vormen van letters of cijfers (brede, "
            f"wiskundige of samengevoegde): {FULLWIDTH_NAMED['nl']}. Typ het woord opnieuw met "
            "gewone letters en cijfers.",
        ),
        (
            f"{FULLWIDTH_EXAMENS} West",
            "en",
            f"“{FULLWIDTH_EXAMENS}” uses special forms of letters or digits (wide, mathematical or "
            f"joined ones). It has {FULLWIDTH_NAMED['en']}. Type the word again in ordinary "
            "letters and digits.",
        ),
        (
            f"{CYRILLIC_COCO} Toetsen",
            "nl",
            f"„{CYRILLIC_COCO}” bestaat alleen uit Cyrillische letters die op Latijnse lijken: het "
            "leest als „Coco”. Het bevat U+0421 CYRILLIC CAPITAL LETTER ES op plaats 1 (typ in "
            "plaats daarvan „C”); U+043E CYRILLIC SMALL LETTER O op plaatsen 2, 4 (typ in plaats "
            "daarvan „o”); U+0441 CYRILLIC SMALL LETTER ES op plaats 3 (typ in plaats daarvan "
            "„c”). Schrijf het in Latijnse letters.",
        ),
        (
            f"{CYRILLIC_COCO} Toetsen",
            "en",
            f"“{CYRILLIC_COCO}” is written only in Cyrillic letters that look like Latin ones: it "
            "reads as “Coco”. It has U+0421 CYRILLIC CAPITAL LETTER ES as character 1 (type “C” "
            "instead); U+043E CYRILLIC SMALL LETTER O as characters 2, 4 (type “o” instead); "
            "U+0441 CYRILLIC SMALL LETTER ES as character 3 (type “c” instead). Write it in Latin "
            "letters.",
        ),
        (
            f"{ARMENIAN_LOGO} Toetsen",
            "nl",
            f"„{ARMENIAN_LOGO}” bestaat alleen uit Armeense letters die op Latijnse lijken: het "
            "leest als „Logo”. Het bevat U+053C ARMENIAN CAPITAL LETTER LIWN op plaats 1 (typ in "
            "plaats daarvan „L”); U+0585 ARMENIAN SMALL LETTER OH op plaatsen 2, 4 (typ in plaats "
            "daarvan „o”); U+0581 ARMENIAN SMALL LETTER CO op plaats 3 (typ in plaats daarvan "
            "„g”). Schrijf het in Latijnse letters.",
        ),
        (
            f"{SCRIPT_G} West",
            "nl",
            f"„{SCRIPT_G}” bevat bijzondere vormen van letters of cijfers (brede, wiskundige of "
            "samengevoegde): U+0261 LATIN SMALL LETTER SCRIPT G op plaats 4 (typ in plaats daarvan "
            "„g”). Typ het woord opnieuw met gewone letters en cijfers.",
        ),
        (
            f"{KELVIN_KENNISNET} West",
            "nl",
            f"„{KELVIN_KENNISNET}” bevat bijzondere vormen van letters of cijfers (brede, "
            "wiskundige of samengevoegde): U+212A KELVIN SIGN op plaats 1 (typ in plaats daarvan "
            "„K”). Typ het woord opnieuw met gewone letters en cijfers.",
        ),
        (
            f"{KELVIN_KENNISNET} West",
            "en",
            f"“{KELVIN_KENNISNET}” uses special forms of letters or digits (wide, mathematical or "
            "joined ones). It has U+212A KELVIN SIGN as character 1 (type “K” instead). Type the "
            "word again in ordinary letters and digits.",
        ),
    ],
)
def test_compatibility_forms_and_whole_look_alike_words_are_refused_in_the_pages_language(
    site: PortalSite, operator: FlaskClient, name: str, lang: str, message: str
) -> None:
    assert _chain_refusal(site, operator, name, lang) == message


def test_a_town_in_special_letters_is_refused_and_ordinary_european_names_pass(
    site: PortalSite, operator: FlaskClient
) -> None:
    bold_utrecht = "".join(chr(0x1D400 + ord(c) - ord("A")) for c in "UTRECHT")
    status, page = _post(operator, SCHOOL, SCHOOL, {"name": "Demo Lyceum", "town": bold_utrecht})
    assert status == 400
    assert field_error(page, "town") == (
        f"„{bold_utrecht}” bevat bijzondere vormen van letters of cijfers (brede, wiskundige of "
        "samengevoegde): U+1D414 MATHEMATICAL BOLD CAPITAL U op plaats 1 (typ in plaats daarvan "
        "„U”); U+1D413 MATHEMATICAL BOLD CAPITAL T op plaatsen 2, 7 (typ in plaats daarvan „T”); "
        "U+1D411 MATHEMATICAL BOLD CAPITAL R op plaats 3 (typ in plaats daarvan „R”); en nog 3 "
        "zulke tekens. Typ het woord opnieuw met gewone letters en cijfers."
    )
    # Accents, the Dutch IJ as one letter, a typographic apostrophe: all as they are.
    fields = {"name": "\u0132sselcollege Ca\u00f1ada", "town": "\u2019s-Hertogenbosch"}
    try:
        status, page = _post(operator, SCHOOL, SCHOOL, fields)
        assert status == 303, page
        school = site.registry.school(DEMO_SCHOOL_ID)
        assert school is not None and (school.name, school.town) == tuple(fields.values())
    finally:
        site.registry.set_school_details(DEMO_SCHOOL_ID, "Demo Lyceum", DEMO_SCHOOL_TOWN)


# A Russian "school" (U+0428 U+043A U+043E U+043B) with a Latin a typed last, and a word of
# Latin letters with two Cyrillic o (U+043E) in it.
RUSSIAN_WITH_LATIN_A = "\u0428\u043a\u043e\u043ba"
TWO_CYRILLIC_O = "W\u043e\u043erdwijs"


@pytest.mark.parametrize(
    ("name", "lang", "message"),
    [
        (
            RUSSIAN_WITH_LATIN_A,
            "nl",
            f"„{RUSSIAN_WITH_LATIN_A}” mengt Latijnse letters met Cyrillische letters die erop "
            "lijken. Het bevat U+0061 LATIN SMALL LETTER A op plaats 5. Gebruik één schrift per "
            "woord.",
        ),
        (
            RUSSIAN_WITH_LATIN_A,
            "en",
            f"“{RUSSIAN_WITH_LATIN_A}” mixes Latin letters with Cyrillic letters that look like "
            "them. It has U+0061 LATIN SMALL LETTER A as character 5. Use one script per word.",
        ),
        (
            TWO_CYRILLIC_O,
            "nl",
            f"„{TWO_CYRILLIC_O}” mengt Latijnse letters met Cyrillische letters die erop lijken. "
            "Het bevat U+043E CYRILLIC SMALL LETTER O op plaatsen 2, 3 (typ in plaats daarvan "
            "„o”). Gebruik één schrift per woord.",
        ),
        (
            TWO_CYRILLIC_O,
            "en",
            f"“{TWO_CYRILLIC_O}” mixes Latin letters with Cyrillic letters that look like them. It "
            "has U+043E CYRILLIC SMALL LETTER O as characters 2, 3 (type “o” instead). Use one "
            "script per word.",
        ),
    ],
)
def test_a_mixed_word_names_the_odd_letters_out_with_their_places(
    site: PortalSite, operator: FlaskClient, name: str, lang: str, message: str
) -> None:
    """The letters of the side with fewer letters: in a Russian word the Latin a, which has no
    Latin letter to type instead; a letter at two places names both."""
    assert _chain_refusal(site, operator, name, lang) == message


HIDDEN_NL = (
    "bevat verborgen tekens of stuurtekens (hier getoond als „?”), vaak meegekopieerd uit een pdf "
    "of document:"
)
HIDDEN_EN = (
    "contains hidden or control characters (shown here as “?”), often copied along from a PDF or "
    "a document. It has"
)


@pytest.mark.parametrize(
    ("name", "lang", "message"),
    [
        (
            "Woord\u200bwijs Toetsen",
            "nl",
            f"„Woord?wijs” {HIDDEN_NL} U+200B ZERO WIDTH SPACE op plaats 6 (verwijder het).",
        ),
        (
            "Woord\u200bwijs Toetsen",
            "en",
            f"“Woord?wijs” {HIDDEN_EN} U+200B ZERO WIDTH SPACE as character 6 (delete it).",
        ),
        # A tab between two words (from a spreadsheet): an ordinary space instead.
        (
            "Het\tBaken",
            "nl",
            f"„Het?Baken” {HIDDEN_NL} U+0009 CHARACTER TABULATION op plaats 4 (typ in plaats "
            "daarvan een gewone spatie).",
        ),
        (
            "Het\tBaken",
            "en",
            f"“Het?Baken” {HIDDEN_EN} U+0009 CHARACTER TABULATION as character 4 (type an "
            "ordinary space instead).",
        ),
        # A byte-order mark and soft hyphens from a Word document.
        (
            "\ufeffLeer\u00adlingen\u00adbank",
            "nl",
            f"„?Leer?lingen?bank” {HIDDEN_NL} U+FEFF ZERO WIDTH NO-BREAK SPACE op plaats 1 "
            "(verwijder het); U+00AD SOFT HYPHEN op plaatsen 6, 13 (verwijder ze).",
        ),
        (
            "\ufeffLeer\u00adlingen\u00adbank",
            "en",
            f"“?Leer?lingen?bank” {HIDDEN_EN} U+FEFF ZERO WIDTH NO-BREAK SPACE as character 1 "
            "(delete it); U+00AD SOFT HYPHEN as characters 6, 13 (delete them).",
        ),
        # A control with no Unicode name, by what it is, in the page's language.
        (
            "Lees\x01plank",
            "nl",
            f"„Lees?plank” {HIDDEN_NL} U+0001 (een stuurteken) op plaats 5 (verwijder het).",
        ),
        (
            "Lees\x01plank",
            "en",
            f"“Lees?plank” {HIDDEN_EN} U+0001 (a control character) as character 5 (delete it).",
        ),
        # A left-to-right mark at the end of a word, and five different ones: three named.
        (
            "Demo\u200e Lyceum",
            "en",
            f"“Demo?” {HIDDEN_EN} U+200E LEFT-TO-RIGHT MARK as character 5 (delete it).",
        ),
        (
            "Lees\u200b\u200c\u200d\u2060\ufeffplank",
            "nl",
            f"„Lees?????plank” {HIDDEN_NL} U+200B ZERO WIDTH SPACE op plaats 5 (verwijder het); "
            "U+200C ZERO WIDTH NON-JOINER op plaats 6 (verwijder het); U+200D ZERO WIDTH JOINER "
            "op plaats 7 (verwijder het); en nog 2 zulke tekens.",
        ),
    ],
)
def test_a_hidden_character_is_named_with_its_place_and_what_to_do_in_the_pages_language(
    site: PortalSite, operator: FlaskClient, name: str, lang: str, message: str
) -> None:
    assert _chain_refusal(site, operator, name, lang) == message


def test_a_no_break_space_in_a_name_is_kept_as_it_was(
    site: PortalSite, operator: FlaskClient
) -> None:
    """A no-break space is a space (a name keeps it, core/display_text.py): only the refusal of
    hidden characters changed its words, not what is refused."""
    url = "/portal/operator/chains"
    fields = {"chain_id": "toetsen-zuid", "name": "Het\u00a0Baken"}
    status, page = _post(operator, url, url, fields, lang="en")
    assert status == 303, page
    chain = site.registry.chain("toetsen-zuid")
    assert chain is not None and chain.name == "Het\u00a0Baken"


def test_every_character_without_a_name_has_words_in_the_portal() -> None:
    assert UNNAMED_CHARACTERS.keys() == UNNAMED.keys()
