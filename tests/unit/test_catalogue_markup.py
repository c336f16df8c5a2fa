"""Translated text with `<`, `>` or `&` in it is text, never HTML. Jinja takes a lazy
translation (Flask-Babel's LazyString has `__html__`) and a template's `_()` for markup, so such
a string is only safe where the portal's field macros make it text (`|string`,
templates/portal/fields.html): a form field's hint or error. Every such string in the catalogue
is listed here, and rendered: "<issuer>" in a hint once vanished as an unknown HTML tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask import render_template_string
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

import broker
from broker.web.portal.oidc_forms import OidcProviderForm
from tests.support.pages import pages_app

TRANSLATIONS = Path(broker.__file__).parent / "web" / "translations"
MARKUP_SIGNS = ("<", ">", "&")
# Hints of portal form fields (rendered by fields.html, which makes them text).
AS_TEXT_IN_HINTS = frozenset(
    {"The broker reads <issuer>/.well-known/openid-configuration from it."}
)


def _texts_with_signs() -> dict[str, set[str]]:
    """Every msgid with a markup sign, with the translations that have one, in any catalogue."""
    found: dict[str, set[str]] = {}
    catalogues = [TRANSLATIONS / "messages.pot", *TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")]
    for path in catalogues:
        with path.open("rb") as file:
            for message in read_po(file):
                ids = message.id if isinstance(message.id, tuple) else (message.id,)
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                key = str(ids[0])
                if not key:
                    continue  # the header (Last-Translator: NAME <EMAIL>)
                for text in (*ids, *strings):
                    if text and any(sign in text for sign in MARKUP_SIGNS):
                        found.setdefault(key, set()).add(text)
    return found


def test_every_translated_text_with_a_markup_sign_is_one_made_text_where_it_is_shown() -> None:
    assert set(_texts_with_signs()) <= AS_TEXT_IN_HINTS


@pytest.mark.parametrize("language", ["nl", "en"])
@pytest.mark.parametrize("msgid", sorted(AS_TEXT_IN_HINTS))
def test_a_hint_with_a_markup_sign_shows_as_text(msgid: str, language: str) -> None:
    app = pages_app()
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="test")

    with app.test_request_context("/"), force_locale(language):
        form = OidcProviderForm()  # its issuer's hint is the one such text
        assert str(form.issuer.description) == str(_l(msgid))
        form.issuer.errors = [_l(msgid)]  # an error is rendered as text as well
        html = render_template_string(
            '{% from "portal/fields.html" import field, error_summary %}'
            "{{ error_summary(form) }}{{ field(form.issuer) }}",
            form=form,
        )
    assert "<issuer>" not in html
    assert html.count("&lt;issuer&gt;/.well-known/openid-configuration") == 3, html
