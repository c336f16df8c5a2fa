"""The portals' Dutch: one form of address for school staff, publishers' engineers and the
operator (u/uw, as official Dutch does; students' own pages keep "je"), the school's login called
"inlogdienst" and its records "verstrekkingen"; and lists of attributes read as names in the
catalogue's order, never as codes."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from broker.core.model import Declaration, Service
from broker.web import labels
from tests.support.pages import pages_app

WEB = Path(labels.__file__).parent
DUTCH = WEB / "translations" / "nl" / "LC_MESSAGES" / "messages.po"
# What a school's administrator reads: the school pages, the portal frame, signing in and
# setting up an account (shared with other administrators, who are addressed the same way).
SCHOOL_PORTAL = [
    *sorted((WEB / "templates" / "portal").glob("school_*.html")),
    *(WEB / "templates" / "portal" / name for name in ("layout.html", "fields.html")),
    WEB / "templates" / "portal" / "logins.html",
    *(WEB / "templates" / "portal" / name for name in ("sign_in.html", "invitation.html")),
    *(WEB / "templates" / "portal" / name for name in ("forbidden.html", "csrf.html")),
    *sorted((WEB / "portal").glob("school_*.py")),
    WEB / "portal" / "sign_in.py",
    WEB / "portal" / "authors.py",
    WEB / "portal" / "student_lookup.py",
]
# What the checks of a school's metadata and OpenID provider say (marked `N_`, core/errors.py):
# the identity provider page shows it translated.
BROKER = WEB.parent
# What a publisher's engineer and the operator read: their pages, the forms they fill in (every
# portal's forms: the *_forms.py modules and field_checks.py; school staff are addressed alike)
# and the declarations and pseudonym windows shown on them.
PUBLISHER_AND_OPERATOR_PORTAL = [
    *sorted((WEB / "templates" / "portal").glob("publisher_*.html")),
    *sorted((WEB / "templates" / "portal").glob("operator_*.html")),
    *(WEB / "templates" / "portal" / n for n in ("declarations.html", "pseudonym_windows.html")),
    *sorted((WEB / "portal").glob("publisher_*.py")),
    WEB / "portal" / "operator_pages.py",
    WEB / "attention_words.py",  # the operator's "Needs attention" page
    *sorted((WEB / "portal").glob("*_forms.py")),
    WEB / "portal" / "field_checks.py",
]
SCHOOL_CHECKS = [
    BROKER / "saml" / "metadata_check.py",
    BROKER / "saml" / "metadata_fetch.py",
    BROKER / "oidc" / "rp_discovery.py",
    BROKER / "oidc" / "rp_http.py",
]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
INFORMAL = re.compile(r"\b(je|jij|jou|jouw|jullie)\b", re.IGNORECASE)
# A quoted example of what students read ("Om je te begroeten.", the declaration form's hint) is
# written to them, not to the reader of the portal.
QUOTED = re.compile(r'"[^"]*"|“[^”]*”|„[^”]*”')


def _addresses_informally(dutch: str) -> bool:
    return INFORMAL.search(QUOTED.sub("", dutch)) is not None


def _portal_messages(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        method = "jinja2" if path.suffix == ".html" else "python"
        for _, message, _, _ in extract_from_file(method, str(path), keywords=KEYWORDS):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _school_checks() -> set[str]:
    found: set[str] = set()
    for path in SCHOOL_CHECKS:
        for _, message, _, _ in extract_from_file("python", str(path), keywords={"N_": None}):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _dutch(messages: set[str]) -> dict[str, str]:
    with DUTCH.open("rb") as file:
        catalogue = read_po(file)
    found: dict[str, str] = {}
    for message in sorted(messages):
        entry = catalogue.get(message)
        assert entry is not None and entry.string, f"no Dutch for {message!r}"
        found[message] = entry.string if isinstance(entry.string, str) else " ".join(entry.string)
    return found


def test_school_staff_are_addressed_with_u_and_the_terms_are_dutch() -> None:
    dutch = _dutch(_portal_messages(SCHOOL_PORTAL) | _school_checks())
    assert len(dutch) > 80  # the extraction found the pages
    assert {m: d for m, d in dutch.items() if _addresses_informally(d)} == {}
    for text in dutch.values():
        assert "identity provider" not in text.lower().replace("(identity provider)", ""), text
        assert not re.search(r"\bbon(nen)?\b", text, re.IGNORECASE), text


def test_publishers_and_the_operator_are_addressed_with_u() -> None:
    dutch = _dutch(_portal_messages(PUBLISHER_AND_OPERATOR_PORTAL))
    assert len(dutch) > 80  # the extraction found the pages
    assert {m: d for m, d in dutch.items() if _addresses_informally(d)} == {}


def test_attribute_lists_are_names_in_the_catalogues_order() -> None:
    app = pages_app()
    with app.test_request_context("/?lang=nl"):
        shown = labels.attribute_labels({"groups", "given_name", "affiliation", "new_thing"})
        assert shown == ["Voornaam", "Rol op school", "Klassen en groepen", "new_thing"]
    with app.test_request_context("/?lang=en"):
        assert labels.attribute_labels(["affiliation", "given_name"]) == [
            "First name",
            "Role at school",
        ]
        assert labels.attribute_labels(()) == []


def test_the_notice_and_the_data_page_list_what_a_platform_gets_in_one_order() -> None:
    """The information notice and the my-data page list released attributes with their
    purposes in the catalogue's order, whatever order the publisher declared them in."""
    service = Service(
        "leesplank",
        "Leesplank",
        "https://l.example",
        None,
        declarations=(
            Declaration("groups", "Om je klas te tonen."),
            Declaration("given_name", "Om je te begroeten."),
        ),
    )
    app = pages_app()
    with app.test_request_context("/?lang=nl"):
        assert labels.labelled_purposes(service, ["groups", "given_name", "affiliation"]) == [
            ("Voornaam", "Om je te begroeten."),
            ("Rol op school", ""),  # not declared (any more): no purpose to show
            ("Klassen en groepen", "Om je klas te tonen."),
        ]
        # A platform that left the registry: its receipts' names, no purposes.
        assert labels.labelled_purposes(None, ["groups", "given_name"]) == [
            ("Voornaam", ""),
            ("Klassen en groepen", ""),
        ]


# What a student (a child, perhaps with a parent) reads of their data and of logging out.
STUDENTS_DATA_PAGES = [
    WEB / "templates" / name
    for name in (
        "my_data.html",
        "my_data_start.html",
        "notice.html",
        "logout.html",
        "logout_done.html",
        "logout_confirm.html",
        "logout_button.html",
    )
]
JARGON = re.compile(r"broker|pseudonie?m|attribu|SAML", re.IGNORECASE)


def test_students_data_and_logout_pages_name_no_product_and_no_jargon() -> None:
    """No "broker", product name, "pseudonym", "attribute" or "SAML" where a 10-year-old reads
    what was shared, or that they are logged out: "your secret number", "You are logged out."
    And "je", never "u"."""
    dutch = _dutch(_portal_messages(STUDENTS_DATA_PAGES))
    assert len(dutch) > 40  # the extraction found the pages
    assert {m: d for m, d in dutch.items() if JARGON.search(m) or JARGON.search(d)} == {}
    assert {m: d for m, d in dutch.items() if re.search(r"\b(u|uw)\b", d)} == {}
