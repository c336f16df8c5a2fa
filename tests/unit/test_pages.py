"""The broker's pages: rendered in Dutch and English, accessible, and free of inline code.

Every template is rendered in a tiny Flask app with only `init_i18n` and `static_url`, so these
tests pin the presentation contract (context names, markup the CSP allows, the catalogue)
independently of the routes that will fill it.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask, render_template
from flask_babel import gettext

import broker
from broker.config import Organization
from broker.core import errors, model
from broker.core.school_search import Found
from broker.registry.errors import ServiceSwitchedOff
from broker.web import labels
from broker.web.i18n import LANGUAGE_COOKIE, current_language, lang_switch_url
from broker.web.portal.student_lookup import identifier_wording
from tests.support.pages import pages_app

WEB_DIR = Path(__file__).resolve().parents[2] / "broker" / "web"
PROJECT_DIR = WEB_DIR.parents[1]
TRANSLATIONS = WEB_DIR / "translations"
LANGUAGES = ("nl", "en")


# --- a small DOM, enough to ask questions about the markup -------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        own = "".join(self.text_parts)
        inner = "".join(child.text for child in self.children)
        return " ".join((own + " " + inner).split())

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            el
            for el in self.iter()
            if el.tag == tag and all(el.attrs.get(k) == v for k, v in attrs.items())
        ]

    def find(self, tag: str, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def ancestors(self) -> Iterator[Element]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "area", "base", "col", "wbr"}


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: (v or "") for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text_parts.append(data)


def parse(html: str) -> Element:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# --- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class School:
    id: str
    name: str


SCHOOLS = [
    School("00AA", "Het Baken"),
    School("01BB", "Sint-Bonifatiuscollege"),
    School("02CC", "Christelijk Lyceum Zeist"),
]


@pytest.fixture
def app() -> Flask:
    app = pages_app()

    @app.get("/probe")
    def probe() -> str:
        return current_language()

    return app


def render(app: Flask, template: str, lang: str, url: str = "/", **context: Any) -> Element:
    sep = "&" if "?" in url else "?"
    with app.test_request_context(f"{url}{sep}lang={lang}"):
        return parse(render_template(template, **context))


def discovery_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "service_name": "Rekenwereld",
        "schools": SCHOOLS,
        "remembered": None,
        "action": "/discovery/choose",
        "login": "L-123",
        "query": "",
    }
    context.update(overrides)
    return context


def error_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "status": 403,
        "title": "Title",
        "message": "Message",
        "error_id": "E-7f3a9c",
    }
    context.update(overrides)
    return context


PAGES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # template: (context, {language: expected h1})
    "discovery.html": (discovery_context(), {"nl": "Kies je school", "en": "Choose your school"}),
    "autopost.html": (
        {
            "action": "https://sp.example/acs",
            "fields": {"SAMLResponse": "PHg+"},
            "destination_name": "Rekenwereld",
        },
        {"nl": "Verder naar Rekenwereld", "en": "Continue to Rekenwereld"},
    ),
    "error.html": (error_context(title="Oeps"), {"nl": "Oeps", "en": "Oeps"}),
    "home.html": (
        {},
        {"nl": "Inloggen met je schoolaccount", "en": "Sign in with your school account"},
    ),
    "notice.html": (
        {
            "notice_id": "N-1",
            "address": "/notice/N-1",
            "service_name": "Rekenwereld",
            "school": SCHOOLS[0],
            "released": [("Klas", "to place you in your class")],
        },
        {"nl": "Wat Rekenwereld ontvangt", "en": "What Rekenwereld receives"},
    ),
    "my_data_start.html": ({}, {"nl": "Mijn gegevens", "en": "My data"}),
    "notice_done.html": (
        {"service_name": "Rekenwereld", "site": "https://rw.example/"},
        {
            "nl": "Je bent al ingelogd bij Rekenwereld",
            "en": "You are already signed in to Rekenwereld",
        },
    ),
    "my_data.html": (
        {
            "school": SCHOOLS[0],
            "receipts": [],
            "current": [],
        },
        {"nl": "Mijn gegevens", "en": "My data"},
    ),
}


# --- every page --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_speaks_the_chosen_language(app: Flask, template: str, lang: str) -> None:
    context, headings = PAGES[template]
    doc = render(app, template, lang, **context)
    assert doc.find("html").attrs["lang"] == lang
    assert doc.find("h1").text == headings[lang]
    nav = doc.find("nav")
    assert nav.attrs["aria-label"] == {"nl": "Taal", "en": "Language"}[lang]
    current = [a for a in nav.find_all("a") if a.attrs.get("aria-current") == "true"]
    assert [a.attrs["lang"] for a in current] == [lang]


@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_has_no_inline_code_and_loads_nothing_external(app: Flask, template: str) -> None:
    doc = render(app, template, "nl", **PAGES[template][0])
    assert not doc.find_all("style")
    for el in doc.iter():
        assert "style" not in el.attrs, el.tag
        assert not [name for name in el.attrs if name.startswith("on")], el.tag
        if el.tag == "script":
            assert el.attrs.get("src", "").startswith("/static/")
            assert not el.text.strip()
        if el.tag == "link":
            assert el.attrs["href"].startswith("/static/")
        if el.tag == "a":
            assert not el.attrs.get("href", "").lower().startswith("javascript:")
    stylesheets = [el.attrs["href"] for el in doc.find_all("link", rel="stylesheet")]
    assert stylesheets == ["/static/style.css"]


@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_sends_its_forms_once(app: Flask, template: str) -> None:
    """The guard loads first, and every POST form on the page takes it: a second press while the
    first is on its way would be answered with the login already taken (submit-once.js)."""
    doc = render(app, template, "nl", **PAGES[template][0])
    scripts = [el.attrs["src"] for el in doc.find_all("script")]
    assert scripts[0] == "/static/submit-once.js", scripts
    for form in doc.find_all("form"):
        if form.attrs.get("method") == "post":
            assert "data-submit-once" in form.attrs, form.attrs


def test_every_post_form_a_student_sends_is_sent_once() -> None:
    """In the source, so that forms a page shows only sometimes (the refusal's way back, the
    logout button, the end_session confirmation, the logout answer) are counted too. The
    portal's staff forms are not the student's pages."""
    unmarked = []
    for template in sorted((WEB_DIR / "templates").glob("*.html")):
        for form in re.findall(r"<form\b[^>]*>", template.read_text(encoding="utf-8")):
            if 'method="post"' in form and "data-submit-once" not in form:
                unmarked.append(f"{template.name}: {form}")
    assert not unmarked


@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_has_landmarks_skip_link_and_ordered_headings(app: Flask, template: str) -> None:
    doc = render(app, template, "en", **PAGES[template][0])
    main = doc.find("main")
    skip = doc.find("a", **{"class": "skip-link"})
    assert skip.attrs["href"] == f"#{main.attrs['id']}"
    assert doc.find_all("header") and doc.find_all("footer")
    levels = [int(el.tag[1]) for el in doc.iter() if el.tag in {"h1", "h2", "h3", "h4"}]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))


@pytest.mark.parametrize("template", sorted(PAGES))
def test_every_form_field_has_a_label(app: Flask, template: str) -> None:
    doc = render(app, template, "nl", **PAGES[template][0])
    label_targets = {el.attrs.get("for") for el in doc.find_all("label")}
    for el in doc.iter():
        if el.tag in {"select", "textarea"} or (
            el.tag == "input" and el.attrs.get("type") not in {"hidden", "submit", "button"}
        ):
            labelled = (
                el.attrs.get("id") in label_targets
                or "aria-label" in el.attrs
                or any(a.tag == "label" for a in el.ancestors())
            )
            assert labelled, el.attrs
        if el.tag == "button":
            assert el.text, el.attrs


@pytest.mark.parametrize("template", sorted(PAGES))
def test_language_switch_keeps_the_other_query_parameters(app: Flask, template: str) -> None:
    url = "/discovery?login=L-123&q=zeist&q=lyceum&lang=en"
    with app.test_request_context(url):
        doc = parse(render_template(template, **PAGES[template][0]))
    links = {a.attrs["hreflang"]: a.attrs["href"] for a in doc.find("nav").find_all("a")}
    assert set(links) == {"nl", "en"}
    for lang, href in links.items():
        parts = urlsplit(href)
        assert parts.path == "/discovery" and not parts.netloc
        assert sorted(parse_qsl(parts.query)) == sorted(
            [("login", "L-123"), ("q", "zeist"), ("q", "lyceum"), ("lang", lang)]
        )


def test_a_page_can_name_its_own_language_switch(app: Flask) -> None:
    """The discovery page shown at a login's start: its switch must lead to /discovery, not
    to the start's address (which would start another login)."""
    switch = {
        lang: lang_switch_url(lang, "/discovery", [("login", "L-1"), ("lang", "nl")])
        for lang in ("nl", "en")
    }
    with app.test_request_context("/saml/idp/sso?SAMLRequest=x&lang=nl"):
        assert switch == {
            "nl": "/discovery?login=L-1&lang=nl",
            "en": "/discovery?login=L-1&lang=en",
        }
        doc = parse(render_template("discovery.html", **discovery_context(), lang_switch=switch))
    links = {a.attrs["hreflang"]: a.attrs["href"] for a in doc.find("nav").find_all("a")}
    assert links == switch


# --- discovery ---------------------------------------------------------------------------------


def test_discovery_renders_the_given_schools_as_submit_buttons(app: Flask) -> None:
    doc = render(app, "discovery.html", "en", **discovery_context())
    post = [f for f in doc.find_all("form") if f.attrs.get("method") == "post"]
    assert len(post) == 1 and post[0].attrs["action"] == "/discovery/choose"
    assert post[0].find("input", name="login").attrs["value"] == "L-123"
    buttons = post[0].find_all("button", name="school")
    assert [(b.attrs["value"], b.text) for b in buttons] == [(s.id, s.name) for s in SCHOOLS]
    assert all(b.attrs["type"] == "submit" for b in buttons)
    assert doc.find("p", id="school-count").text == "3 schools found"
    assert "hidden" in doc.find("div", id="no-schools").attrs


def test_discovery_offers_the_remembered_school_first(app: Flask) -> None:
    doc = render(app, "discovery.html", "nl", **discovery_context(remembered=SCHOOLS[1]))
    first = doc.find_all("button", name="school")[0]
    assert first.attrs["value"] == "01BB"
    assert first.text == "Verder met Sint-Bonifatiuscollege"
    form = next(a for a in first.ancestors() if a.tag == "form")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/discovery/choose"
    assert form.find("input", name="login").attrs["value"] == "L-123"
    assert doc.find("h2").text == "Of kies een andere school"


def test_a_prepared_remembered_school_is_a_link_in_a_form_for_the_fallback(app: Flask) -> None:
    url = "https://idp.example/sso?SAMLRequest=x&RelayState=L-123"
    doc = render(
        app,
        "discovery.html",
        "nl",
        **discovery_context(remembered=SCHOOLS[1], prepared=url, prepared_for=120),
    )
    link = doc.find("a", **{"data-prepared-for": "120"})
    assert link.attrs["href"] == url and link.attrs["rel"] == "noreferrer"
    assert link.text == "Verder met Sint-Bonifatiuscollege"
    assert "button--primary" in link.attrs["class"].split()
    # discovery.js posts the form around it when the link is old or was followed already.
    form = next(a for a in link.ancestors() if a.tag == "form")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/discovery/choose"
    assert form.find("input", name="school").attrs["value"] == "01BB"
    assert form.find("input", name="login").attrs["value"] == "L-123"
    assert form.find_all("button") == []
    # The list still offers every school by the POST form.
    assert [b.attrs["value"] for b in doc.find_all("button", name="school")] == [
        s.id for s in SCHOOLS
    ]


def test_discovery_search_falls_back_to_a_get_form(app: Flask) -> None:
    doc = render(
        app, "discovery.html", "nl", **discovery_context(query="zeist", schools=SCHOOLS[2:])
    )
    search = doc.find("form", role="search")
    assert search.attrs["method"] == "get"
    field = search.find("input", name="q")
    assert field.attrs["value"] == "zeist"
    assert doc.find("label", **{"for": field.attrs["id"]}).text == "Zoek je school"
    assert search.find("input", name="login").attrs["value"] == "L-123"
    assert search.find("button").attrs["type"] == "submit"
    assert doc.find("p", id="school-count").text == "1 school gevonden"
    scripts = [s.attrs["src"] for s in doc.find_all("script")]
    # The shared guard first (a second press sends nothing), then the page's own script.
    assert scripts == ["/static/submit-once.js", "/static/discovery.js"]


def test_discovery_says_what_to_do_when_nothing_matches(app: Flask) -> None:
    doc = render(app, "discovery.html", "nl", **discovery_context(query="xyz", schools=[]))
    notice = doc.find("div", id="no-schools")
    assert "hidden" not in notice.attrs
    assert "Controleer de spelling" in notice.text
    assert not doc.find_all("button", name="school")


def test_discovery_in_a_large_federation_asks_for_part_of_the_name_first(app: Flask) -> None:
    nothing_yet = Found((), 0, searched=False)
    doc = render(app, "discovery.html", "en", **discovery_context(schools=(), found=nothing_yet))
    assert not doc.find_all("button", name="school")
    assert not doc.find_all("ul", id="school-list")
    # Nothing was searched, so "no school matches" would be wrong.
    assert "hidden" in doc.find("div", id="no-schools").attrs
    assert doc.find("p", id="school-count").text == ""
    assert doc.find("form", role="search").find("input", name="q")


def test_discovery_says_when_more_schools_matched_than_it_shows(app: Flask) -> None:
    found = Found(tuple(SCHOOLS[:2]), 312)  # type: ignore[arg-type]  # the page reads id and name
    doc = render(app, "discovery.html", "nl", **discovery_context(schools=SCHOOLS[:2], found=found))
    assert len(doc.find_all("button", name="school")) == 2
    assert doc.find("p", id="school-count").text == (
        "2 van de 312 scholen getoond. Typ meer van de naam om de jouwe te vinden."
    )
    # discovery.js leaves a list cut short alone: every search goes to the server.
    assert "data-partial" in doc.find("ul", id="school-list").attrs


def test_discovery_live_count_messages_are_localised(app: Flask) -> None:
    count = render(app, "discovery.html", "nl", **discovery_context()).find("p", id="school-count")
    assert count.attrs["role"] == "status"
    assert count.attrs["data-one"] == "1 school gevonden"
    assert count.attrs["data-many"] == "{n} scholen gevonden"
    assert count.attrs["data-none"] == "Geen scholen gevonden"


def test_discovery_escapes_what_the_student_typed(app: Flask) -> None:
    with app.test_request_context("/?lang=en"):
        html = render_template("discovery.html", **discovery_context(query='"><script>x</script>'))
    assert "<script>x" not in html


# --- autopost ----------------------------------------------------------------------------------


def test_autopost_posts_the_fields_and_offers_a_button(app: Flask) -> None:
    fields = {"SAMLResponse": "PHNhbWw+", "RelayState": 'a&b="c"'}
    # Even where Flask-WTF's csrf_token() exists, no token may travel to another site.
    app.jinja_env.globals["csrf_token"] = lambda: "SECRET-TOKEN"
    doc = render(
        app,
        "autopost.html",
        "en",
        action="https://sp.example/acs",
        fields=fields,
        destination_name="Rekenwereld",
    )
    form = doc.find("form")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "https://sp.example/acs"
    assert "data-autosubmit" in form.attrs
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input", type="hidden")}
    assert hidden == fields
    assert form.find("button").text == "Continue to Rekenwereld"
    assert "data-submit-once" in form.attrs
    scripts = [s.attrs["src"] for s in doc.find_all("script")]
    assert scripts == ["/static/submit-once.js", "/static/autopost.js"]


# --- error -------------------------------------------------------------------------------------


def test_error_page_names_what_the_school_did_not_release(app: Flask) -> None:
    with app.test_request_context("/?lang=nl"):
        missing = [labels.attribute_label("given_name"), labels.attribute_label("email")]
        html = render_template(
            "error.html",
            **error_context(
                title=labels.error_title(403),
                message=gettext(errors.PolicyRefusal.public_message),
                missing=missing,
                service_name="Rekenwereld",
            ),
        )
    doc = parse(html)
    alert = doc.find("div", role="alert")
    assert "Je school deelt niet wat dit platform nodig heeft." in alert.text
    assert "Je school deelt het volgende niet met Rekenwereld:" in alert.text
    assert [li.text for li in alert.find("ul").find_all("li")] == ["Voornaam", "E-mailadres"]
    assert doc.find("h1").text == "Je school deelt niet genoeg"
    assert "Foutcode: E-7f3a9c" in doc.find("p", **{"class": "error-code"}).text


def test_error_page_offers_to_try_again_at_the_school_when_given(app: Flask) -> None:
    @dataclass(frozen=True)
    class PostMessage:
        action: str
        fields: dict[str, str]

    retry = PostMessage("/discovery", {"login": "L-1", "school": "99XX00"})
    doc = render(
        app,
        "error.html",
        "nl",
        **error_context(status=502, retry_form=retry, choose_again="/discovery?login=L-1"),
    )
    form = doc.find("form", action="/discovery")
    assert form.attrs["method"] == "post"
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input", type="hidden")}
    assert hidden == retry.fields
    assert form.find("button").text == "Opnieuw proberen"
    steps = doc.find("ul", **{"class": "steps"}).text
    assert "met de knop hieronder ga je terug naar de inlogpagina van je school" in steps
    assert doc.find("a", href="/discovery?login=L-1").text == "Kies je school opnieuw."
    # Not "try again in a few minutes": the school answered, the way on is the button.
    assert "paar minuten" not in steps
    without = render(app, "error.html", "en", **error_context(status=502))
    assert not without.find_all("form")
    assert "Try again in a few minutes." in without.find("ul", **{"class": "steps"}).text
    assert "Error code: E-7f3a9c" in without.text


def test_error_page_can_carry_the_refusal_back_to_the_platform(app: Flask) -> None:
    @dataclass(frozen=True)
    class PostMessage:
        action: str
        fields: dict[str, str]

    app.jinja_env.globals["csrf_token"] = lambda: "SECRET-TOKEN"
    back = PostMessage("https://sp.example/acs", {"SAMLResponse": "PHI+", "RelayState": "r"})
    doc = render(
        app, "error.html", "nl", **error_context(return_form=back, service_name="Rekenwereld")
    )
    form = doc.find("form", action="https://sp.example/acs")
    assert form.attrs["method"] == "post" and "data-autosubmit" not in form.attrs
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input", type="hidden")}
    assert hidden == back.fields
    assert form.find("button").text == "Terug naar Rekenwereld"


# --- home --------------------------------------------------------------------------------------


def test_home_links_both_metadata_documents(app: Flask) -> None:
    doc = render(app, "home.html", "en")
    hrefs = {a.attrs["href"] for a in doc.find("main").find_all("a")}
    assert {"/saml/idp/metadata", "/saml/sp/metadata"} <= hrefs
    nl = render(app, "home.html", "nl")
    assert [h.text for h in nl.find_all("h2")] == ["Voor technische beheerders"]


# The home page is titled for students ("Sign in with your school account") and links to their
# data: the pseudonym is "a secret number" that is theirs there too, in words a ten-year-old
# knows (no "pseudoniem"), and it speaks to the student ("je"), not about students.
def test_the_home_page_explains_the_secret_number_to_the_student(app: Flask) -> None:
    context, _ = PAGES["home.html"]
    for lang, explained, spoken_to, jargon in (
        ("nl", "een geheim nummer dat bij jou hoort", "Hier log je in", "pseudoniem"),
        ("en", "a secret number that stands for you", "Here you sign in", "pseudonym"),
    ):
        text = render(app, "home.html", lang, **context).find("main").text
        assert explained in text and spoken_to in text and jargon not in text.lower(), text


STUDENT_SECRET_NUMBER = {
    "notice.html": ("een geheim nummer dat bij jou hoort", "a secret number that stands for you"),
    "my_data.html": ("je geheime nummer (niet je naam)", "your secret number (not your name)"),
}


@pytest.mark.parametrize("template", sorted(STUDENT_SECRET_NUMBER))
def test_a_student_page_calls_the_pseudonym_a_secret_number(app: Flask, template: str) -> None:
    context, _ = PAGES[template]
    for lang, said in zip(LANGUAGES, STUDENT_SECRET_NUMBER[template], strict=True):
        text = render(app, template, lang, **context).find("main").text
        assert said in text, text
        assert "pseudon" not in text.lower()


def test_my_data_start_says_no_name_is_kept_and_names_no_broker(app: Flask) -> None:
    # "De broker" (or the product's name) means nothing to a student: the page says what it does.
    for lang, said in (("nl", "Je naam wordt hier niet bewaard"), ("en", "Your name is not kept")):
        text = render(app, "my_data_start.html", lang).find("main").text
        assert said in text and "broker" not in text.lower()


def test_student_pages_name_the_operators_site_never_the_product(app: Flask) -> None:
    """The header and every title of a student's page: the operator's display name, else a
    neutral "Sign in with your school"; never "Ketenbroker" (no "broker" in students' texts)."""
    for lang, neutral in (("nl", "Inloggen met je school"), ("en", "Sign in with your school")):
        page = render(app, "my_data_start.html", lang)
        assert page.find("title").text.endswith(f"· {neutral}")
        assert page.find("header").text.startswith(neutral)
        assert "broker" not in (page.find("title").text + page.find("header").text).lower()
    named = Organization(display_name_nl="Schoolinlog Voorbeeld", display_name_en="School Sign-in")
    labels.install_site_name(app, named)
    for lang, name in (("nl", "Schoolinlog Voorbeeld"), ("en", "School Sign-in")):
        page = render(app, "my_data_start.html", lang)
        assert page.find("title").text.endswith(f"· {name}")
        assert page.find("header").text.startswith(name)
    # One language named: that name in both.
    labels.install_site_name(app, Organization(display_name_nl="Schoolinlog Voorbeeld"))
    assert (
        render(app, "error.html", "en", **error_context())
        .find("title")
        .text.endswith("· Schoolinlog Voorbeeld")
    )


# --- language selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("", None, None, "nl"),
        ("", None, "en-GB,en;q=0.9", "en"),
        ("", None, "de-DE,fr;q=0.8", "nl"),
        ("", "en", "nl", "en"),
        ("", "fr", "en", "en"),
        ("?lang=en", "nl", "nl", "en"),
        ("?lang=nl", "en", "en", "nl"),
        ("?lang=de", None, "en", "en"),
    ],
)
def test_language_choice_order(
    app: Flask, query: str, cookie: str | None, accept: str | None, expected: str
) -> None:
    client = app.test_client()
    if cookie is not None:
        client.set_cookie(LANGUAGE_COOKIE, cookie)
    headers = {"Accept-Language": accept} if accept else {}
    assert client.get(f"/probe{query}", headers=headers).text == expected


def test_explicit_choice_is_remembered_in_a_cookie(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/probe?lang=en")
    header = response.headers["Set-Cookie"]
    assert header.startswith(f"{LANGUAGE_COOKIE}=en;")
    assert "SameSite=Lax" in header and "Max-Age=31536000" in header and "Path=/" in header
    assert client.get("/probe").text == "en"
    assert "Set-Cookie" not in client.get("/probe").headers
    assert "Set-Cookie" not in client.get("/probe?lang=xx").headers


# --- labels and the catalogue ------------------------------------------------------------------

CANONICAL_ATTRIBUTES = (
    "given_name",
    "family_name",
    "display_name",
    "email",
    "username",
    "student_number",
    "affiliation",
    "school_id",
    "school_name",
    "groups",
    "eck_id",
    "pseudonym",
)


def test_attribute_labels_are_localised(app: Flask) -> None:
    with app.test_request_context("/?lang=nl"):
        assert labels.attribute_label("given_name") == "Voornaam"
        assert labels.attribute_label("family_name") == "Achternaam"
        assert labels.attribute_label("not_yet_known") == "not_yet_known"
        dutch = [labels.attribute_label(name) for name in CANONICAL_ATTRIBUTES]
    with app.test_request_context("/?lang=en"):
        assert labels.attribute_label("given_name") == "First name"
        english = [labels.attribute_label(name) for name in CANONICAL_ATTRIBUTES]
    assert all(label not in CANONICAL_ATTRIBUTES for label in english)
    assert len(set(english)) == len(english)
    assert sum(a != b for a, b in zip(dutch, english, strict=True)) >= len(english) - 1


def _all_error_classes() -> list[type[errors.BrokerError]]:
    # Errors may be defined beside the adapter that raises them, so every broker module is
    # imported first; one that cannot be imported here is some other test's failure.
    for module in pkgutil.walk_packages(broker.__path__, "broker."):
        # gunicorn's configuration sets PROMETHEUS_MULTIPROC_DIR at import (for gunicorn's
        # master); imported here, it would switch this test process's metrics into multiprocess
        # mode for every later test. It defines no errors.
        if "migrations" in module.name or module.name == "broker.cli.gunicorn_conf":
            continue
        try:
            importlib.import_module(module.name)
        except Exception:
            continue
    found: list[type[errors.BrokerError]] = []
    pending: list[type[errors.BrokerError]] = [errors.BrokerError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _compiled(lang: str) -> Any:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        return read_mo(f)


def _source(lang: str) -> Any:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def test_every_error_message_is_translated(app: Flask) -> None:
    compiled = _compiled("nl")
    untranslated = []
    for cls in _all_error_classes():
        message = compiled.get(cls.public_message)
        if message is None or not message.string or message.string == cls.public_message:
            untranslated.append(f"{cls.__module__}.{cls.__qualname__}: {cls.public_message!r}")
    assert not untranslated, "add to labels.ERROR_MESSAGES and translate:\n" + "\n".join(
        untranslated
    )
    with app.test_request_context("/?lang=nl"):
        assert labels.public_message(errors.StateExpired()) == (
            "Het inloggen duurde te lang of is al gebruikt. Begin opnieuw."
        )


def test_dutch_catalogue_is_complete_and_compiled() -> None:
    source, compiled = _source("nl"), _compiled("nl")
    for message in source:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
        built = compiled.get(message.id)
        assert built is not None and tuple(strings) == (
            tuple(built.string) if isinstance(built.string, (list, tuple)) else (built.string,)
        ), f"stale .mo, run pybabel compile: {message.id!r}"


def test_dutch_says_leerplatform_for_a_learning_platform() -> None:
    """One Dutch term for one English one: "leermiddelen" (teaching materials) is something
    else, and a student told they may still be logged in "bij leermiddelen" would not know
    where to look."""
    wrong = []
    for message in _source("nl"):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if any("learning platform" in i for i in ids):
            wrong += [s for s in strings if "leerplatform" not in s.lower()]
    assert wrong == []


def test_catalogue_holds_every_string_in_the_code() -> None:
    with (PROJECT_DIR / "babel.cfg").open() as f:
        # Babel leaves parse_mapping_cfg unannotated.
        method_map, options_map = parse_mapping_cfg(f)  # type: ignore[no-untyped-call]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "lazy_gettext": None}
    in_code = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(PROJECT_DIR), method_map, options_map, keywords=keywords
        )
    }
    catalogued = {message.id for message in _source("nl") if message.id}
    missing = {m for m in in_code if m not in catalogued}
    assert not missing, "run pybabel extract/update (see babel.cfg) and translate:\n" + "\n".join(
        map(repr, missing)
    )


def test_language_switch_only_on_pages_that_can_be_fetched_again(app: Flask) -> None:
    # A page answering a POST (the school's answer at the ACS) has no GET address to switch on.
    context = {"status": 400, "title": "t", "message": "m", "error_id": "e"}
    with app.test_request_context("/saml/sp/acs", method="POST"):
        assert "lang-switch" not in render_template("error.html", **context)
    with app.test_request_context("/discovery", method="GET"):
        assert "lang-switch" in render_template("error.html", **context)


# --- the login's edges: already signed in, cookies, the portal's errors -------------------------


@pytest.mark.parametrize(
    ("lang", "heading", "link"),
    [
        ("nl", "Je bent al ingelogd bij Rekenwereld", "Naar Rekenwereld"),
        ("en", "You are already signed in to Rekenwereld", "Go to Rekenwereld"),
    ],
)
def test_already_signed_in_links_to_the_platforms_site(
    app: Flask, lang: str, heading: str, link: str
) -> None:
    doc = render(
        app, "notice_done.html", lang, service_name="Rekenwereld", site="https://rw.example/"
    )
    assert doc.find("h1").text == heading
    assert doc.find("a", href="https://rw.example/").text == link
    assert not doc.find_all("div", role="alert")
    assert not doc.find_all("p", **{"class": "error-code"})
    without = render(app, "notice_done.html", lang, service_name="Rekenwereld", site=None)
    assert not without.find_all("a", href="https://rw.example/")


def error_page(app: Flask, url: str, error: errors.BrokerError, **extra: Any) -> Element:
    """The error page as the handler renders `error`: its status, code, title and message."""
    with app.test_request_context(url):
        return parse(
            render_template(
                "error.html",
                **error_context(
                    status=error.status,
                    code=error.code,
                    title=labels.error_title(error.status, error.code),
                    message=labels.public_message(error),
                    **extra,
                ),
            )
        )


@pytest.mark.parametrize(
    ("lang", "title", "advice"),
    [
        ("nl", "Sta cookies toe om in te loggen", "Sta cookies toe voor deze website (localhost)"),
        ("en", "Allow cookies to sign in", "Allow cookies for this website (localhost)"),
    ],
)
def test_the_cookies_error_says_how_to_allow_them(
    app: Flask, lang: str, title: str, advice: str
) -> None:
    doc = error_page(app, f"/discovery?lang={lang}", errors.CookiesBlocked())
    assert doc.find("h1").text == title
    assert doc.find("ul", **{"class": "steps"}).find_all("li")[0].text.startswith(advice)


@pytest.mark.parametrize(
    ("lang", "title", "advice"),
    [
        ("nl", "Dit leerplatform staat uit", "Opnieuw inloggen helpt niet: alleen je school"),
        ("en", "This learning platform is switched off", "Signing in again does not help"),
    ],
)
def test_a_switched_off_platform_is_named_so_and_signing_in_again_is_not_advised(
    app: Flask, lang: str, title: str, advice: str
) -> None:
    error = ServiceSwitchedOff("99XX00", "toetsplein")
    doc = error_page(app, f"/?lang={lang}", error, service_name="Toetsplein")
    assert doc.find("h1").text == title  # not "your school has not shared enough"
    steps = doc.find("ul", **{"class": "steps"}).text
    assert steps.startswith(advice)
    assert "Toetsplein" not in steps  # no "go back to Toetsplein and sign in again"


def test_titles_follow_the_status_unless_the_code_knows_better(app: Flask) -> None:
    with app.test_request_context("/?lang=en"):
        assert labels.error_title(404) == "Page not found"
        assert labels.error_title(400, "state_expired") == "This sign-in cannot continue"
        assert labels.error_title(403, "assurance_not_met") == (
            "Your school's sign-in was not strong enough"
        )
        assert labels.error_title(418) == "Something went wrong"
        assert "learning platform" not in labels.http_error_message(404, portal=True)
        assert "learning platform" in labels.http_error_message(404)


def test_a_portal_error_page_points_to_the_portal_not_the_platform(app: Flask) -> None:
    for lang in LANGUAGES:
        doc = render(app, "error.html", lang, **error_context(status=404, portal_home="/portal/"))
        steps = doc.find("ul", **{"class": "steps"})
        assert steps.find("a", href="/portal/")
        assert "platform" not in steps.text and "ICT" not in steps.text
    # Administrators are addressed formally, students informally.
    portal = render(app, "error.html", "nl", **error_context(status=404, portal_home="/portal/"))
    assert [h.text for h in portal.find_all("h2")] == ["Wat u kunt doen"]
    student = render(app, "error.html", "nl", **error_context(status=404))
    assert [h.text for h in student.find_all("h2")] == ["Wat kun je doen?"]


def test_discovery_gives_the_script_each_schools_code_and_the_search_rules(app: Flask) -> None:
    rules = {"abbreviations": '{"st": "sint"}', "typo_min": 5}
    doc = render(app, "discovery.html", "en", **discovery_context(search_rules=rules))
    listing = doc.find("ul", id="school-list")
    assert listing.attrs["data-abbreviations"] == '{"st": "sint"}'
    assert listing.attrs["data-typo-min"] == "5"
    assert [li.attrs["data-code"] for li in listing.find_all("li")] == [s.id for s in SCHOOLS]
    assert "hidden" in doc.find("p", id="close-matches").attrs
    close = Found(tuple(SCHOOLS[:1]), 1, approximate=True)  # type: ignore[arg-type]
    near = render(
        app, "discovery.html", "nl", **discovery_context(schools=SCHOOLS[:1], found=close)
    )
    assert "hidden" not in near.find("p", id="close-matches").attrs
    assert near.find("p", id="close-matches").text.startswith("Geen school heet precies")


GOOGLE = model.OidcUpstream(
    "https://accounts.google.com", "broker", "geheim", hosted_domain="school.nl"
)


@pytest.mark.parametrize(
    ("school", "nl", "en"),
    [
        (
            model.School("99XX00", "Lyceum", "https://idp.example", subject_attribute="name_id"),
            "de vaste code van de leerling in uw inlogdienst (SAML persistent NameID)",
            "the student's fixed code in your sign-in system (SAML persistent NameID)",
        ),
        (
            model.School("99XX00", "Lyceum", "https://idp.example", subject_attribute="username"),
            "de gebruikersnaam van de leerling bij uw school (username, SAML nlEduPersonRealId)",
            "the student's user name at your school (username, SAML nlEduPersonRealId)",
        ),
        (
            model.School(
                "99XX00",
                "Lyceum",
                "https://idp.example",
                subject_attribute="name_id",
                use_eck_id=True,
            ),
            "het ECK iD van de leerling (ECK iD, eck_id)",
            "the student's ECK iD (ECK iD, eck_id)",
        ),
        (
            model.School("99XX00", "Lyceum", GOOGLE.issuer, subject_attribute="sub", oidc=GOOGLE),
            "de code van de leerling bij uw OpenID-provider (OpenID Connect sub)",
            "the student's code at your OpenID provider (OpenID Connect sub)",
        ),
        (
            # An OpenID school's name_id is its `sub` (rp_claims.SUB_SUBJECTS).
            model.School(
                "99XX00", "Lyceum", GOOGLE.issuer, subject_attribute="name_id", oidc=GOOGLE
            ),
            "de code van de leerling bij uw OpenID-provider (OpenID Connect sub)",
            "the student's code at your OpenID provider (OpenID Connect sub)",
        ),
        (
            model.School(
                "99XX00", "Lyceum", GOOGLE.issuer, subject_attribute="student_number", oidc=GOOGLE
            ),
            "het leerlingnummer bij uw school (student_number, OpenID Connect student_number)",
            "the student's number at your school (student_number, OpenID Connect student_number)",
        ),
        (
            model.School(
                "99XX00", "Lyceum", GOOGLE.issuer, subject_attribute="employeeId", oidc=GOOGLE
            ),
            "de waarde die uw OpenID-provider voor de leerling doorgeeft als employeeId",
            "the value your OpenID provider sends for the student as employeeId",
        ),
    ],
)
def test_the_student_lookup_names_each_schools_identifier(
    app: Flask, school: model.School, nl: str, en: str
) -> None:
    """Plain words for the privacy officer, the technical name in brackets for ICT."""
    for lang, said in (("nl", nl), ("en", en)):
        with app.test_request_context(f"/?lang={lang}"):
            assert identifier_wording(school) == said
