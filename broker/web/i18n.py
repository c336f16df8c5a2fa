"""Which language a page speaks: Dutch by default, English on request.

The choice, strongest first: a language the page was told to speak (`speak`: a login's own
`ui_locales`), a `?lang=` query parameter (either is then remembered in the `kb_lang` cookie),
the cookie, the browser's Accept-Language, Dutch. Templates get `current_language()` for
`<html lang>` and `lang_switch_url(lang)` for the language switch (or a page's own
`lang_switch` links, when its address must not be fetched again). A page answering a POST that
no address shows again (an error at the ACS, say) carries its content in every language
instead (`other_language_copies`), and its switch shows the one chosen without a request.

The cookie is `SameSite=Lax`: the school's answer, a cross-site POST to the ACS, comes without
it. So a login carries its language itself: the login record keeps `chosen_language()` when the
student leaves for the school (`LoginRecord.language`), and the ACS and the OIDC callback (a GET,
which has the cookie; it answers alike) `speak` it before anything is translated.

Every page rendered in a request gets `_`, `gettext`, `ngettext` and `current_language` bound to
that request's catalogue and language (`page_i18n`, a context processor): a `_()` in a template
is then one call, not Jinja's three (its `_` alias, its newstyle wrapper, the catalogue lookup).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

from babel.support import NullTranslations
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, format_number, get_locale, get_translations, refresh
from jinja2.nodes import EvalContext
from jinja2.utils import pass_eval_context
from markupsafe import Markup
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

DEFAULT_LANGUAGE = "nl"
SUPPORTED_LANGUAGES: tuple[str, ...] = ("nl", "en")
LANGUAGE_PARAM = "lang"
LANGUAGE_COOKIE = "kb_lang"
# A student who picked English once should not have to pick it again every school day.
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60

# Inside the package, so an installed wheel finds its catalogue wherever the app's root is.
TRANSLATIONS_DIR = Path(__file__).parent / "translations"
# app.extensions key: the app's catalogue per language (`_catalogue`).
_CATALOGUES = "ketenbroker_catalogues"


def init_i18n(app: Flask) -> None:
    """Install Flask-Babel with the broker's catalogue and locale rule on `app`."""
    Babel(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS_DIR),
        # One choice per request, kept on `g`, for Flask-Babel's own functions too.
        locale_selector=current_language,
    )
    # Flask-Babel's own template callables look the catalogue up anew for every string (its
    # context on `g`, the domain, the locale, the cache key): a fifth of a page's CPU. These
    # look it up once per request; what they return is the same.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: page_translations().ugettext(s),
        ngettext=lambda s, p, n: page_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: page_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: page_translations().unpgettext(c, s, p, n),
    )
    app.extensions[_CATALOGUES] = {}
    app.after_request(_remember_language)
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["lang_switch_url"] = lang_switch_url
    # Counts as the page's language writes them: 5,000 in English, 5.000 in Dutch.
    app.jinja_env.filters["number"] = format_number
    app.context_processor(page_i18n)


def page_i18n() -> dict[str, Any]:
    """The translation callables of a page rendered in this request, bound to its catalogue and
    language: what the environment's globals answer (kept for templates rendered without a
    request, and for macros imported without context), without a lookup per string.

    Jinja's newstyle gettext, written out: the translation is markup (it comes from the
    broker's own catalogue, not from the request), the variables are escaped by `Markup.__mod__`
    when the template autoescapes, and the string is always %-formatted (so `%%` reads `%`)."""
    if not has_request_context():
        return {}  # no language to choose: the globals answer, as they always did
    translations = page_translations()
    language = current_language()
    return {
        "_": (gettext := _newstyle_gettext(translations.ugettext)),
        "gettext": gettext,
        "ngettext": _newstyle_ngettext(translations.ungettext),
        "current_language": lambda: language,
    }


def _newstyle_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    @pass_eval_context
    def gettext(eval_ctx: EvalContext, string: str, /, **variables: Any) -> str:
        translated = translate(string)
        if eval_ctx.autoescape:
            # The broker's own catalogue (as in Jinja's newstyle gettext); variables are escaped.
            translated = Markup(translated)  # noqa: S704
        if not variables and "%" not in translated:
            return translated  # what `% {}` would give: most strings of a page
        return translated % variables

    return gettext


def _newstyle_ngettext(translate: Callable[[str, str, int], str]) -> Callable[..., str]:
    @pass_eval_context
    def ngettext(
        eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any
    ) -> str:
        variables.setdefault("num", num)
        translated = translate(singular, plural, num)
        if eval_ctx.autoescape:
            translated = Markup(translated)  # noqa: S704 (as above)
        return translated % variables

    return ngettext


def page_translations() -> NullTranslations:
    """The current request's catalogue, looked up once per request and kept on `g`.

    The language is chosen once per request (`current_language`); the broker never uses
    `force_locale`, and the one way to change it, `speak`, forgets what was kept here.
    """
    try:
        return g.kb_translations  # type: ignore[no-any-return]
    except AttributeError:
        translations = _catalogue(current_language())
        g.kb_translations = translations
        return translations
    except RuntimeError:  # no application context: Flask-Babel's answer (no translation)
        outside: NullTranslations = get_translations()
        return outside


def _catalogue(language: str) -> NullTranslations:
    """The app's catalogue for `language`: Flask-Babel's, asked once per language and worker,
    then kept here. Flask-Babel keeps it for the app's life as well (by locale and domain), but
    finds it anew in every request: it parses the locale into a `babel.Locale` and makes the
    cache key, about 25 µs a request."""
    catalogues: dict[str, NullTranslations] = current_app.extensions[_CATALOGUES]
    translations = catalogues.get(language)
    if translations is None:
        translations = get_translations()
        locale = get_locale()
        # Flask-Babel asks `current_language` too; kept only when it agrees, so a catalogue is
        # never filed under another language.
        if locale is not None and str(locale.language) == language:
            catalogues[language] = translations
    return translations


def ui_language(ui_locales: str) -> str | None:
    """OIDC `ui_locales` (BCP 47 tags, preferred first): the first the broker speaks."""
    for tag in ui_locales[:64].split():
        language = tag.split("-")[0].lower()
        if language in SUPPORTED_LANGUAGES:
            return language
    return None


def current_language() -> str:
    """The language of the current request ("nl" or "en"); Dutch outside a request. Chosen once
    per request (`_select_language`) and kept on `g`: a page asks three times, its catalogue
    once, and Flask-Babel (its locale selector) once."""
    try:
        return g.kb_language  # type: ignore[no-any-return]
    except AttributeError:
        language = _select_language()
        g.kb_language = language
        return language
    except RuntimeError:  # no application context (Flask-Babel has no locale there either)
        return DEFAULT_LANGUAGE


def lang_switch_url(
    lang: str, path: str | None = None, params: Iterable[tuple[str, str]] | None = None
) -> str:
    """The current URL with only `lang` replaced, so a switch never loses `q` or `login`; or
    `path` with `params` and `lang`, for a page whose own address must not be fetched again
    (the discovery page shown at a login's start names `/discovery?login=…` instead).

    Relative (path and query), so it cannot point the browser at another host whatever the
    Host header said.
    """
    if path is None:
        path = request.script_root + request.path
        params = request.args.items(multi=True)
    pairs = [(k, v) for k, v in params or () if k != LANGUAGE_PARAM]
    pairs.append((LANGUAGE_PARAM, lang))
    return f"{quote(path)}?{urlencode(pairs)}"


def speak(language: str | None) -> None:
    """Answer this request in `language`, as if it had come with `?lang=` (and remember it so):
    for a page shown at a login's start that asked for a language (OIDC `ui_locales`) in its
    own terms, and for the school's answer to a login (the language its record kept). Call
    before anything on the page is translated. None, or a language the broker does not
    speak: nothing changes."""
    if language is None or language not in SUPPORTED_LANGUAGES:
        return
    g.kb_spoken = language
    # Forget what this request may have looked up already, here and in Flask-Babel.
    g.pop("kb_translations", None)
    g.pop("kb_language", None)
    refresh()


def chosen_language() -> str | None:
    """The language this request speaks by choice: `speak`'s, a `?lang=`, or the cookie's; None
    when it is only the browser's (Accept-Language), which comes along with every request."""
    requested = _requested_language()
    if requested is not None:
        return requested
    remembered = request.cookies.get(LANGUAGE_COOKIE, "")
    return remembered if remembered in SUPPORTED_LANGUAGES else None


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Translate in `language` for a while, within this request: a page's copy in another
    language. Nothing is remembered (unlike `speak`), and the request's own language is back
    afterwards."""
    kept = {key: g.pop(key) for key in ("kb_language", "kb_translations") if key in g}
    g.kb_language = language
    refresh()
    try:
        yield
    finally:
        g.pop("kb_language", None)
        g.pop("kb_translations", None)
        for key, value in kept.items():
            setattr(g, key, value)
        refresh()


# The element id of a page's content in one language (base.html, `in_other_languages`).
IN_LANGUAGE_ID = "in-{language}"


def other_language_copies(
    template: str, context_for: Callable[[], Mapping[str, Any]]
) -> dict[str, Any]:
    """What a page answering a POST needs for a language switch that works: the page's address
    only takes that POST (the school's answer, a form), so a link cannot fetch the page again in
    another language. The page carries its `content` block in every other language
    (`in_other_languages`, each made from `context_for()` in that language), its footer and
    the header's site name too (`footer_in_other_languages`, `site_name_in_other_languages`),
    and its switch links to those copies in the page (`lang_switch`, fragments shown by CSS
    `:target`): the student reads the other language without a request and without
    JavaScript (only the `<title>` stays in the page's own language). For
    `render_template(template, **context_for(), **other_language_copies(...))`."""
    app = current_app
    own = current_language()
    copies: dict[str, Markup] = {}
    footers: dict[str, Markup] = {}
    site_names: dict[str, str] = {}
    # The site's name as base.html says it (labels.install_site_name).
    site_name = cast(Callable[[], str], app.jinja_env.globals["site_name"])
    compiled = app.jinja_env.get_template(template)
    # The footer, as the page's own (base.html's unless the template words its own).
    footer = (
        compiled.blocks.get("footer") or app.jinja_env.get_template("base.html").blocks["footer"]
    )
    for language in SUPPORTED_LANGUAGES:
        if language == own:
            continue
        with speaking(language):
            context = dict(context_for())
            app.update_template_context(context)  # page_i18n: this language's `_`
            block = compiled.blocks["content"](compiled.new_context(context))
            # The template's own output, escaped as it rendered it.
            copies[language] = Markup("".join(block))  # noqa: S704
            footers[language] = Markup("".join(footer(compiled.new_context(context))))  # noqa: S704
            site_names[language] = site_name()
    return {
        "in_other_languages": copies,
        "footer_in_other_languages": footers,
        "site_name_in_other_languages": site_names,
        "lang_switch": {
            code: "#" + IN_LANGUAGE_ID.format(language=code) for code in SUPPORTED_LANGUAGES
        },
    }


def _requested_language() -> str | None:
    """The language asked for explicitly: `speak`'s, else a `?lang=` naming a supported
    language; anything else is ignored."""
    spoken: str | None = g.get("kb_spoken")
    if spoken is not None:
        return spoken
    if not request.query_string:
        return None  # most requests: no query to parse (request.args would build a MultiDict)
    value = request.args.get(LANGUAGE_PARAM, "")
    return value if value in SUPPORTED_LANGUAGES else None


def _select_language() -> str:
    chosen = chosen_language()
    if chosen is not None:
        return chosen
    header = request.headers.get("Accept-Language")
    if header is None:
        return DEFAULT_LANGUAGE
    if len(header) > _MAX_CACHED_HEADER:
        return _browser_language.__wrapped__(header)
    return _browser_language(header)


# A browser's Accept-Language is one of few strings (a school's browsers are set alike), and
# parsing it took 25-40 µs of every page. Bounded: any client can send a new one. A longer
# header than browsers send is answered without keeping it.
_MAX_CACHED_HEADER = 200


@functools.lru_cache(maxsize=256)
def _browser_language(header: str) -> str:
    """Werkzeug's `request.accept_languages.best_match`, for the header's value."""
    best = parse_accept_header(header, LanguageAccept).best_match(SUPPORTED_LANGUAGES)
    return best or DEFAULT_LANGUAGE


def _remember_language(response: Response) -> Response:
    # Only an explicit choice is remembered: a guess from Accept-Language must not stick, and
    # rewriting the cookie on every response would be noise.
    requested = _requested_language()
    if requested is not None:
        response.set_cookie(
            LANGUAGE_COOKIE,
            requested,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            path="/",
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response
