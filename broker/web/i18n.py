"""Which language a page speaks: Dutch by default, English on request.

The choice, strongest first: a `?lang=` query parameter (which is then remembered in the
`kb_lang` cookie), the cookie, the browser's Accept-Language, Dutch. Templates get
`current_language()` for `<html lang>` and `lang_switch_url(lang)` for the language switch.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from flask import Flask, Response, request
from flask_babel import Babel, get_locale

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
    app.after_request(_remember_language)
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["lang_switch_url"] = lang_switch_url


def current_language() -> str:
    """The language of the current request ("nl" or "en"); Dutch outside a request."""
    locale = get_locale()
    if locale is None:
        return DEFAULT_LANGUAGE
    language = str(locale.language)
    return language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


def lang_switch_url(lang: str) -> str:
    """The current URL with only `lang` replaced, so a switch never loses `q` or `login`.

    Relative (path and query), so it cannot point the browser at another host whatever the
    Host header said.
    """
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k != LANGUAGE_PARAM]
    pairs.append((LANGUAGE_PARAM, lang))
    return f"{quote(request.script_root + request.path)}?{urlencode(pairs)}"


def _requested_language() -> str | None:
    """The `?lang=` value if it names a supported language; anything else is ignored."""
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
