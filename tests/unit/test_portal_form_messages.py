"""Every portal form says an empty or too long (or too short) field in the portal's own words
(web/portal/field_checks.py `required`, `at_most`): WTForms' stock texts ("This field is
required.", "Field must be between 12 and 256 characters long.", in Dutch "Veld moet tussen 12
en 256 karakters lang zijn.") are not the portal's, and do not match the hint beside a field."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from flask_wtf import FlaskForm
from wtforms.validators import DataRequired, InputRequired, Length

import broker.web.portal as portal
from broker.core.endpoints import Refusal
from broker.web.portal.oidc_forms import URI_PROBLEMS, OidcClientForm
from broker.web.portal.service_forms import ServiceForm, service_form_class
from tests.support.pages import pages_app

STOCK_WORDED = (DataRequired, InputRequired, Length)


def _portal_forms() -> list[type[FlaskForm]]:
    """Every form class of the portals' modules, and the declarations forms they build."""
    forms: list[type[FlaskForm]] = [
        service_form_class(registering=registering, base=base)
        for registering in (True, False)
        for base in (ServiceForm, OidcClientForm)
    ]
    for path in sorted(Path(portal.__file__).parent.glob("*.py")):
        module = importlib.import_module(f"broker.web.portal.{path.stem}")
        forms += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, FlaskForm) and cls.__module__ == module.__name__
        ]
    return forms


def test_no_portal_form_shows_wtforms_stock_texts() -> None:
    forms = _portal_forms()
    assert len(forms) > 15  # the portals' forms were found
    with pages_app().test_request_context():
        stock = [
            f"{form.__name__}.{field.name}: {type(check).__name__}"
            for form in forms
            for field in form(meta={"csrf": False})
            for check in field.validators
            if isinstance(check, STOCK_WORDED) and check.message is None
        ]
    assert stock == []


def test_every_url_refusal_has_the_portals_words() -> None:
    """The portal translates core/endpoints.py's verdict by its kind; a host not in ASCII is
    said with its xn-- form, every other kind from the table."""
    assert set(URI_PROBLEMS) == set(Refusal) - {Refusal.NON_ASCII_HOST}
