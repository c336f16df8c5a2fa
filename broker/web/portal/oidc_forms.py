"""Forms for OpenID Connect in the portals: a publisher's client registration, and a school's
identity provider (SAML metadata or an OpenID provider) with its subject attribute.

Problems with redirect URIs are found by the same functions `new_client` uses
(broker/core/endpoints.py, broker/oidc/registration.py); here they get a line number and a
translation, and land next to their field. An approved client's addresses on a new host are
refused beside them too (broker/core/client_hosts.py): the federation operator registers those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import ValidationError

from broker.core.endpoints import (
    MAX_REDIRECT_URI,
    Refusal,
    UrlRefusal,
    host_refusal,
    is_acceptable_endpoint,
    redirect_uri_refusal,
)
from broker.core.hosted_domain import MAX_DOMAIN
from broker.core.model import ClientAuthMethod
from broker.core.origins import origin_of_address
from broker.core.subjects import OIDC_SUBJECT_CHOICES, SAML_SUBJECTS
from broker.oidc.registration import ID_TOKEN_ALGORITHMS
from broker.web.portal.field_checks import PrefilledForm, at_most, required
from broker.web.portal.service_forms import ServiceForm

MAX_REDIRECT_URIS = 20
# The refusals of core/endpoints.py, translated (the core module has no translations).
URI_PROBLEMS = {
    Refusal.LENGTH: _l("is empty or too long"),
    Refusal.SPACES: _l("must not contain spaces"),
    Refusal.NOT_A_URL: _l("is not a URL"),
    Refusal.FRAGMENT: _l("must not have a fragment (#…)"),
    Refusal.WILDCARD: _l("must not contain wildcards"),
    Refusal.CREDENTIALS: _l("must not carry a user name or password"),
    Refusal.NOT_HTTPS: _l("must be https (plain http only to localhost or 127.0.0.1)"),
    Refusal.NOT_A_DOMAIN_NAME: _l("has a host that is not a valid internationalised domain name"),
}


def uri_problem_words(refused: UrlRefusal) -> str:
    """A refused URL's reason in the reader's language; a host not in ASCII names the xn-- form
    to register instead (core/endpoints.py says why)."""
    if refused.ascii_form is not None:
        return str(
            _l("must write its host in ASCII (its xn-- form): use %(url)s", url=refused.ascii_form)
        )
    return str(URI_PROBLEMS[refused.kind])


SUBJECT_LABELS = {
    "name_id": _l("The persistent NameID (name_id)"),
    "sub": _l("The provider's subject (sub)"),
    "oid": _l("Entra ID object id (oid)"),
    "username": _l("User name (username)"),
    "student_number": _l("Student number (student_number)"),
}
SUBJECT_HINT = _l(
    "Changing it, or the identity provider, gives every student a new pseudonym at every "
    "platform: their accounts there start afresh."
)
# The client secret's hint, by what the school has (school_idp.py `secret_hint`): a secret that
# is kept when the field is left empty, none (a school on SAML), or one the broker cannot read.
SECRET_KEPT_HINT = _l(
    "Never shown again. Leave empty to keep the current secret (with the same issuer only)."
)
SECRET_NEEDED_HINT = _l("Required to switch to an OpenID provider. Never shown again.")
SECRET_UNREADABLE_HINT = _l(
    "Required: the broker cannot read the stored secret, so give it again. Never shown again."
)
# The algorithms a school's provider commonly signs ID tokens with (rp_discovery allows these).
PROVIDER_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


def redirect_uri_lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


@dataclass(frozen=True)
class SettledHosts:
    """An approved client's origins now (core/client_hosts.py), and what a refusal of an
    address on another one names: the client, for the operator's command."""

    origins: frozenset[str]
    service_id: str

    def problems(self, lines: list[tuple[int | None, str]], option: str) -> list[str]:
        """One problem per address (its line, or None for a one-address field) on a new
        origin, then once what to do instead."""
        problems = []
        for line, uri in lines:
            origin = origin_of_address(uri)
            if origin in self.origins:
                continue
            if line is None:
                said = _l("This address is on a new host, %(origin)s.", origin=origin)
            else:
                said = _l("Line %(line)d is on a new host, %(origin)s.", line=line, origin=origin)
            problems.append(str(said))
        if problems:
            command = f"ketenbroker publisher update --id {self.service_id} {option} …"
            problems.append(
                str(
                    _l(
                        "An approved client's addresses on a new host go through the federation "
                        "operator: send them the new addresses, and they register them with "
                        "%(command)s. Addresses on the hosts the client has now you change here.",
                        command=command,
                    )
                )
            )
        return problems


def _uri_line_problems(uris: tuple[str, ...], *, required: bool) -> list[str]:
    """Every problem of a list of URIs, one per line, translated (redirect URIs and
    post-logout redirect URIs follow the same rule)."""
    problems = []
    if required and not uris:
        problems.append(str(_l("Give at least one redirect URI.")))
    if len(uris) > MAX_REDIRECT_URIS:
        problems.append(str(_l("At most %(count)d redirect URIs.", count=MAX_REDIRECT_URIS)))
    if len(set(uris)) != len(uris):
        problems.append(str(_l("A redirect URI is listed twice.")))
    for line, uri in enumerate(uris, start=1):
        refused = redirect_uri_refusal(uri)
        if refused is not None:
            said = uri_problem_words(refused)
            problems.append(str(_l("Line %(line)d %(problem)s.", line=line, problem=said)))
    return problems


def _all_next_to(field: Field, problems: list[str]) -> None:
    if problems:
        # Every problem next to the field, not only the first: WTForms appends the raised one.
        field.errors.extend(problems[:-1])
        raise ValidationError(problems[-1])


class OidcClientFields(PrefilledForm):
    redirect_uris = TextAreaField(
        _l("Redirect URIs"),
        [at_most(MAX_REDIRECT_URIS * (MAX_REDIRECT_URI + 2))],
        description=_l(
            "One per line, exactly as your application sends them: https (plain http only to "
            "localhost), no fragment, no wildcard."
        ),
    )
    post_logout_redirect_uris = TextAreaField(
        _l("Post-logout redirect URIs"),
        [at_most(MAX_REDIRECT_URIS * (MAX_REDIRECT_URI + 2))],
        description=_l(
            "Where the broker may send the student back after a logout your application asked "
            "for (end_session). One per line, exact; may be empty."
        ),
    )
    backchannel_logout_uri = URLField(
        _l("Back-channel logout URI"),
        [at_most(MAX_REDIRECT_URI)],
        description=_l(
            "Where the broker sends a logout token when the student logs out elsewhere. "
            "Empty: your application is not told."
        ),
    )
    backchannel_logout_session_required = BooleanField(
        _l("Logout tokens must name the session (sid)")
    )

    # An approved client's origins (set by the edit page), and the fields refused for an
    # address on a new one (for the log line).
    settled: SettledHosts | None = None
    new_host_fields: tuple[str, ...] = ()

    def validate_redirect_uris(self, field: Field) -> None:
        self._check_lines(field, required=True, option="--oidc-redirect-uri")

    def validate_post_logout_redirect_uris(self, field: Field) -> None:
        self._check_lines(field, required=False, option="--oidc-post-logout-uri")

    def validate_backchannel_logout_uri(self, field: Field) -> None:
        refused = redirect_uri_refusal(field.data) if field.data else None
        if refused is not None:
            raise ValidationError(uri_problem_words(refused))
        lines: list[tuple[int | None, str]] = [(None, field.data)] if field.data else []
        self._refuse_with(field, [], lines, "--oidc-backchannel-logout-uri")

    def _check_lines(self, field: Field, *, required: bool, option: str) -> None:
        uris = redirect_uri_lines(field.data)
        lines: list[tuple[int | None, str]] = [
            (line, uri)
            for line, uri in enumerate(uris, start=1)
            if redirect_uri_refusal(uri) is None
        ]
        self._refuse_with(field, _uri_line_problems(uris, required=required), lines, option)

    def _refuse_with(
        self, field: Field, problems: list[str], lines: list[tuple[int | None, str]], option: str
    ) -> None:
        """`problems` and, for an approved client, the well-formed `lines` on a new host."""
        on_new_host = self.settled.problems(lines, option) if self.settled is not None else []
        if on_new_host:
            self.new_host_fields = (*self.new_host_fields, field.name)
        _all_next_to(field, problems + on_new_host)

    def logout_registration(self) -> dict[str, Any]:
        """The logout fields as `new_client` and `OidcClient` name them."""
        return {
            "post_logout_redirect_uris": redirect_uri_lines(self.post_logout_redirect_uris.data),
            "backchannel_logout_uri": self.backchannel_logout_uri.data or None,
            "backchannel_logout_session_required": bool(
                self.backchannel_logout_session_required.data
            ),
        }


class OidcRedirectUrisForm(OidcClientFields):
    """A registered client's redirect and logout URIs, edited by its publisher."""


class OidcClientForm(ServiceForm, OidcClientFields):
    auth_method = SelectField(
        _l("Token endpoint authentication"),
        default=ClientAuthMethod.SECRET_BASIC.value,
        choices=[
            SelectChoice("client_secret_basic", _l("Client secret, HTTP Basic (usual)")),
            SelectChoice("client_secret_post", _l("Client secret in the request body")),
            SelectChoice("private_key_jwt", _l("Signed JWT with your own key (private_key_jwt)")),
            SelectChoice("none", _l("None: a public app, with PKCE")),
        ],
    )
    jwks_uri = URLField(
        _l("JWKS URL"),
        # No Optional(): it would stop the chain before validate_jwks_uri sees an empty field.
        [at_most(1024)],
        description=_l("Only for private_key_jwt: the address of your public keys."),
    )
    id_token_alg = SelectField(
        _l("ID token signature algorithm"),
        default="RS256",
        choices=[SelectChoice(alg, alg) for alg in ID_TOKEN_ALGORITHMS],
    )
    refresh_tokens = BooleanField(_l("Issue refresh tokens"))

    def validate_jwks_uri(self, field: Field) -> None:
        if self.auth_method.data == ClientAuthMethod.PRIVATE_KEY_JWT.value:
            if field.data and (refused := host_refusal(field.data)) is not None:
                raise ValidationError(
                    str(_l("The JWKS URL %(problem)s.", problem=uri_problem_words(refused)))
                )
            if not field.data or not is_acceptable_endpoint(field.data):
                raise ValidationError(
                    str(_l("private_key_jwt needs a JWKS URL (https; http only on localhost)."))
                )
        elif field.data:
            raise ValidationError(str(_l("A JWKS URL is only used with private_key_jwt.")))


def _subjects(names: tuple[str, ...]) -> list[SelectChoice]:
    return [SelectChoice(name, SUBJECT_LABELS[name]) for name in names]


class SamlIdpForm(FlaskForm):
    # The settings' version the page showed (core/provider_version.py): a save from a page a
    # colleague's save has overtaken is refused, not applied over theirs (school_idp.py).
    provider_seen = HiddenField()
    metadata_file = FileField(
        _l("SAML metadata file of your identity provider"),
        description=_l("Upload a file, or give the address below."),
    )
    # No Optional(): it would stop the chain before validate_metadata_url sees an empty field.
    metadata_url = URLField(_l("Or: address of the metadata"), [at_most(1000)])
    saml_subject = SelectField(
        _l("Attribute that identifies a student"),
        choices=_subjects(SAML_SUBJECTS),
        default="name_id",
        description=SUBJECT_HINT,
    )

    def validate_metadata_url(self, field: Field) -> None:
        if not (field.data or "").strip() and not self.metadata_file.data:
            raise ValidationError(str(_l("Upload the metadata or give its address.")))


class OidcProviderForm(FlaskForm):
    provider_seen = HiddenField()  # as SamlIdpForm's
    issuer = URLField(
        _l("Issuer URL of your OpenID provider"),
        [required(), at_most(1024)],
        description=_l("The broker reads <issuer>/.well-known/openid-configuration from it."),
    )
    client_id = StringField(_l("Client id of the broker there"), [required(), at_most(1024)])
    client_secret = PasswordField(
        _l("Client secret of the broker there"),
        [at_most(4096)],
        description=SECRET_NEEDED_HINT,  # the page says what fits the school (`secret_hint`)
    )
    algorithm = SelectField(
        _l("ID token signature algorithm"),
        default="RS256",
        choices=[SelectChoice(alg, alg) for alg in PROVIDER_ALGORITHMS],
    )
    oidc_subject = SelectField(
        _l("Claim that identifies a student"),
        choices=_subjects(OIDC_SUBJECT_CHOICES),
        default="sub",
        description=SUBJECT_HINT,
    )
    # Checked in the view, with the issuer it goes with (core/hosted_domain.py).
    hosted_domain = StringField(
        _l("Google Workspace domain (hosted domain)"),
        [at_most(MAX_DOMAIN)],
        description=_l(
            "Required for Google (https://accounts.google.com), which signs in every Google "
            "account: only accounts of this domain then sign in. Leave empty for any other "
            "provider."
        ),
    )
