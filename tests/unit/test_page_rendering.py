"""What the pages' cheaper rendering must keep: the same strings, escaping and language choice
as Jinja's and Flask-Babel's own paths, and the same URLs as `url_for` (docs/performance.md,
"Login pages: rendering cost")."""

from __future__ import annotations

import pytest
from flask import Flask, render_template_string, url_for
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from broker.web import i18n
from broker.web.i18n import SUPPORTED_LANGUAGES, page_translations, speak
from broker.web.static_urls import page_url
from tests.support.pages import pages_app

# Each is rendered twice: with the page's own callables (render_template_string runs the
# context processor) and with the environment's globals, i.e. Jinja's newstyle gettext over
# Flask-Babel's catalogue (a template rendered without Flask's context).
TEMPLATES = [
    '{{ _("Language") }}',
    '{{ _("Skip to main content") }}|{{ gettext("Search") }}',
    '{{ _("Continue to %(destination)s", destination=name) }}',
    '{{ _("Continue to %(destination)s", destination="<b>&</b>") }}',
    '{{ _("100%% of %(destination)s", destination=name) }}|{{ _("50%% done") }}',
    '{{ _("the platform needs this for: %(purpose)s", purpose=name) }}',
    '{{ ngettext("%(num)d school found", "%(num)d schools found", 1) }}',
    '{{ ngettext("%(num)d school found", "%(num)d schools found", 7) }}',
    '{% autoescape false %}{{ _("Continue to %(destination)s", destination=name) }}'
    "{% endautoescape %}",
    "{{ current_language() }}",
    '{% set s = _("Search") %}{{ s }}{{ s|length }}',
]


@pytest.fixture
def app() -> Flask:
    return pages_app()


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
@pytest.mark.parametrize("source", TEMPLATES)
def test_page_callables_answer_what_jinja_and_flask_babel_answer(
    app: Flask, source: str, language: str
) -> None:
    name = '"Reken & <Wereld>"'
    with app.test_request_context(f"/?lang={language}"):
        page = render_template_string(source, name=name)
    with app.test_request_context(f"/?lang={language}"):
        plain = app.jinja_env.from_string(source).render(name=name)
    assert page == plain


def test_variables_are_escaped_and_translations_are_not(app: Flask) -> None:
    with app.test_request_context("/?lang=nl"):
        html = render_template_string(
            '{{ _("Continue to %(destination)s", destination=name) }}', name="<script>x</script>"
        )
    assert html == "Verder naar &lt;script&gt;x&lt;/script&gt;"


def test_one_app_alternates_languages_request_by_request(app: Flask) -> None:
    # The catalogue is kept per app and language: it must never answer in the other one.
    for language in ("en", "nl", "en", "nl", "nl", "en"):
        with app.test_request_context(f"/?lang={language}"):
            assert (
                render_template_string('{{ _("Language") }}')
                == {
                    "nl": "Taal",
                    "en": "Language",
                }[language]
            )


def test_speak_changes_the_catalogue_of_the_request(app: Flask) -> None:
    with app.test_request_context("/?lang=nl"):
        assert page_translations().ugettext("Language") == "Taal"
        speak("en")
        assert page_translations().ugettext("Language") == "Language"
        assert render_template_string("{{ current_language() }} {{ _('Language') }}") == (
            "en Language"
        )


HEADERS = [
    "",
    "nl",
    "en",
    "en-GB,en;q=0.9",
    "nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7",
    "de-DE,fr;q=0.8",
    "de, en;q=0.1, nl;q=0",
    "en-US;q=0.5, nl-BE;q=0.6",
    "*",
    "x" * 300 + ",en",
    ";;;,,,q=",
]


@pytest.mark.parametrize("header", HEADERS)
def test_accept_language_answer_is_werkzeugs(app: Flask, header: str) -> None:
    expected = parse_accept_header(header, LanguageAccept).best_match(SUPPORTED_LANGUAGES) or "nl"
    for _ in range(2):  # the second time from the cache (unless too long to keep)
        with app.test_request_context("/", headers={"Accept-Language": header}):
            assert i18n.current_language() == expected


def test_accept_language_cache_is_bounded_and_skips_long_headers(app: Flask) -> None:
    i18n._browser_language.cache_clear()
    with app.test_request_context("/", headers={"Accept-Language": "x" * 300}):
        i18n.current_language()
    assert i18n._browser_language.cache_info().currsize == 0
    for n in range(400):
        with app.test_request_context("/", headers={"Accept-Language": f"x{n}, en"}):
            assert i18n.current_language() == "en"
    info = i18n._browser_language.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize


@pytest.mark.parametrize("script_name", ["", "/broker", "/other/mount"])
def test_fixed_urls_are_url_fors_answers_per_mount_point(app: Flask, script_name: str) -> None:
    version = app.extensions["ketenbroker_fixed_urls"].version("style.css")
    for _ in range(2):  # built, then kept
        with app.test_request_context("/", base_url=f"http://localhost{script_name}/"):
            assert page_url("my_data.start") == url_for("my_data.start")
            assert page_url("my_data.start").startswith(f"{script_name}/")
            assert (
                render_template_string(
                    "{{ static_url('style.css') }} {{ page_url('my_data.start') }}"
                )
                == f"{url_for('static', filename='style.css', v=version)} {url_for('my_data.start')}"
            )


def test_page_url_refuses_a_blueprint_relative_name(app: Flask) -> None:
    with (
        app.test_request_context("/"),
        pytest.raises(ValueError, match="full endpoint name"),
    ):
        page_url(".start")


def test_a_template_rendered_without_a_request_keeps_the_globals(app: Flask) -> None:
    # No language to choose outside a request: the page callables stay out of the way.
    with app.app_context():
        assert render_template_string("{{ 1 + 1 }}") == "2"
