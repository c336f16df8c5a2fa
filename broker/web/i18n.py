"""Which language a page speaks: Dutch by default, English on request.

The choice, strongest first: a language the page was told to speak (`speak`: a login's own
`ui_locales`), a `?lang=` query parameter (either is then remembered in the `kb_lang` cookie),
the cookie, the browser's Accept-Language, Dutch. Templates get `current_language()` for
`<html lang>` and `lang_switch_url(lang)` for the language switch (or a page's own
`lang_switch` links, when its address must not be fetched again).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlencode

from babel.support import NullTranslations
from flask import Flask, Response, g, request
from flask_babel import Babel, get_locale, get_translations, refresh

DEFAULT_LANGUAGE = "nl"
SUPPORTED_LANGUAGES: tuple[str, ...] = ("nl", "en")
LANGUAGE_PARAM = "lang"
LANGUAGE_COOKIE = "kb_lang"
# A student who picked English once should not have to pick it again every school day.
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60

# Inside the package, so an installed wheel finds its catalogue wherever the app's root is.
TRANSLATIONS_DIR = Path(__file__).parent / "translations"


def init_i18n(app: Flask) -> None:
    """Install Flask-Babel with the broker's catalogue and locale rule on `app`."""
    Babel(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS_DIR),
        locale_selector=_select_language,
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
    app.after_request(_remember_language)
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["lang_switch_url"] = lang_switch_url


def page_translations() -> NullTranslations:
    """The current request's catalogue, looked up once per request and kept on `g`.

    The language is chosen once per request (`_select_language`, which Flask-Babel also calls
    once per request); the broker never uses `force_locale`, and the one way to change it,
    `speak`, forgets what was kept here.
    """
    try:
        return g.kb_translations  # type: ignore[no-any-return]
    except AttributeError:
        translations: NullTranslations = get_translations()
        g.kb_translations = translations
        return translations
    except RuntimeError:  # no application context: Flask-Babel's answer (no translation)
        outside: NullTranslations = get_translations()
        return outside


def current_language() -> str:
    """The language of the current request ("nl" or "en"); Dutch outside a request. Kept on
    `g` like the catalogue: a page asks three times."""
    try:
        return g.kb_language  # type: ignore[no-any-return]
    except AttributeError:
        language = _language_of_locale()
        g.kb_language = language
        return language
    except RuntimeError:  # no application context
        return _language_of_locale()


def _language_of_locale() -> str:
    locale = get_locale()
    if locale is None:
        return DEFAULT_LANGUAGE
    language = str(locale.language)
    return language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


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


def speak(language: str) -> None:
    """Answer this request in `language`, as if it had come with `?lang=` (and remember it so):
    for a page shown at a login's start that asked for a language (OIDC `ui_locales`) in its
    own terms. Call before anything on the page is translated."""
    if language not in SUPPORTED_LANGUAGES:
        return
    g.kb_spoken = language
    # Forget what this request may have looked up already, here and in Flask-Babel.
    g.pop("kb_translations", None)
    g.pop("kb_language", None)
    refresh()


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
    requested = _requested_language()
    if requested is not None:
        return requested
    remembered = request.cookies.get(LANGUAGE_COOKIE, "")
    if remembered in SUPPORTED_LANGUAGES:
        return remembered
    best = request.accept_languages.best_match(SUPPORTED_LANGUAGES)
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
