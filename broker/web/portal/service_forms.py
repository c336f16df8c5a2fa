"""A service's forms: registering or re-declaring it (its attributes' needs and purposes, SAML
metadata), built per catalogue attribute by `service_form_class` (oidc_forms.py adds the OpenID
Connect fields); and `EmptyForm`, the bare form of the buttons on service pages.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    Field,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import ValidationError

from broker.core.catalogue import CATALOGUE
from broker.core.display_text import MAX_NAME
from broker.saml.metadata_check import MAX_METADATA_BYTES
from broker.web.labels import attribute_label
from broker.web.portal.field_checks import IDENTIFIER, at_most, plain_name, required

# Characters, not bytes: the byte limit is checked again on the text (registration.py).
MAX_METADATA_CHARS = MAX_METADATA_BYTES
NEED_CHOICES = [
    SelectChoice("", _l("Not needed")),
    SelectChoice("optional", _l("Optional")),
    SelectChoice("required", _l("Required")),
]


class EmptyForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class ServiceForm(FlaskForm):
    """Registering or re-declaring a SAML service. One need and one purpose per catalogue
    attribute, built in `service_form_class` (so every field has its own label)."""

    naming = SelectField(
        _l("Attribute names"),
        default="oid",
        choices=[
            SelectChoice("oid", _l("OID (urn:oid:…)")),
            SelectChoice("plain", _l("Plain (givenName, …)")),
        ],
    )


def _purpose_needed(need_field: str) -> object:
    def check(form: FlaskForm, field: Field) -> None:
        if form[need_field].data and not (field.data or "").strip():
            raise ValidationError(str(_l("Say in Dutch why the platform needs this.")))

    return check


SERVICE_ID_HINT = _l(
    "Lower-case letters, digits and hyphens, at most 63, such as educo-lezen. It cannot be "
    "changed later."
)


def service_form_class(
    *, registering: bool, base: type[ServiceForm] = ServiceForm
) -> type[ServiceForm]:
    """The declarations form; `registering` adds id and name, and SAML metadata unless `base`
    brings the fields of another protocol (oidc_forms.OidcClientForm)."""
    attributes: dict[str, object] = {}
    if registering:
        attributes["service_id"] = StringField(
            _l("Service id"), [required(), IDENTIFIER], description=SERVICE_ID_HINT
        )
        attributes["name"] = StringField(_l("Name"), [required(), at_most(MAX_NAME), plain_name])
    if registering and base is ServiceForm:
        # Either a file or pasted text (registration.py checks that one is there): the text
        # field also carries an uploaded file's content back into the form when another field
        # needs correcting, as a browser never refills a file input. Metadata holds no
        # personal data.
        attributes["metadata_file"] = FileField(
            _l("SAML metadata file of the service"),
            description=_l("Upload the file, or paste the metadata or give its address below."),
        )
        attributes["metadata_xml"] = TextAreaField(
            _l("Or: the SAML metadata as text"),
            [at_most(MAX_METADATA_CHARS)],
            render_kw={"rows": 6, "spellcheck": "false"},
        )
        # Given by its address, the copy is fetched again by `metadata refresh`
        # (cli/url_refresh.py): the platform's next key reaches the broker by itself.
        attributes["metadata_url"] = URLField(
            _l("Or: address of the metadata"),
            [at_most(1000)],
            description=_l(
                "Best: the broker fetches the metadata from this address again every day, so "
                "a new key of your service reaches it by itself."
            ),
        )
    if not registering:
        # Set by the page that said how many schools must confirm again (publisher_pages.py).
        attributes["confirmed"] = HiddenField()
    for name in CATALOGUE:
        attributes[f"need_{name}"] = SelectField(
            _l("Need for %(attribute)s", attribute=attribute_label(name)), choices=NEED_CHOICES
        )
        attributes[f"purpose_{name}"] = StringField(
            _l("Purpose of %(attribute)s, in Dutch", attribute=attribute_label(name)),
            [at_most(500), _purpose_needed(f"need_{name}")],
        )
        attributes[f"purpose_en_{name}"] = StringField(
            _l("Purpose of %(attribute)s, in English (optional)", attribute=attribute_label(name)),
            [at_most(500)],
        )
    return type("DeclarationsForm", (base,), attributes)
