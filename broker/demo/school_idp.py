"""A demo school's SAML identity provider: a real pysaml2 IdP with made-up people.

It stands in for an outside party (the school), so it talks to the broker only through SAML
messages and metadata, exactly as a real school IdP would.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, render_template, request
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.s_utils import SamlException, UnravelError
from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from broker.demo.attribute_profile import OidProfileConverter
from broker.demo.school_slo import IssuedSessions, install_school_slo
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto

__all__ = [
    "DEMO_USERS",
    "DemoUser",
    "SchoolIdpSettings",
    "create_school_idp_app",
    "school_idp_metadata",
]

_TEMPLATES = Path(__file__).parent / "templates"
# A demo keeps unfinished logins in memory; the cap keeps a stuck browser loop from growing it.
_MAX_PENDING = 1000
# What a malformed or unacceptable AuthnRequest makes pysaml2 raise while parsing it.
_BAD_REQUEST_ERRORS = (
    SAMLError,
    SamlException,
    UnravelError,
    ValueError,
    SyntaxError,
    zlib.error,
    KeyError,
)


@dataclass(frozen=True)
class DemoUser:
    """A made-up person at the demo school."""

    uid: str
    given_name: str
    family_name: str
    email: str
    affiliation: str
    groups: tuple[str, ...]
    student_number: str | None = None
    eck_id: str | None = None

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


def _demo_eck_id(seed: str) -> str:
    # Shaped like an ECK iD (issuer URL + 128 hex characters) but derived from a seed, so it is
    # obviously not issued by the Nummervoorziening and stays the same between demo runs.
    return "https://ketenid.nl/201703/" + hashlib.sha512(seed.encode()).hexdigest()


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        uid="sanne.jansen",
        given_name="Sanne",
        family_name="Jansen",
        email="sanne.jansen@leerling.demoschool.example",
        affiliation="student",
        groups=("klas-3a",),
        student_number="300101@demoschool.example",
        eck_id=_demo_eck_id("sanne.jansen"),
    ),
    DemoUser(
        uid="daan.devries",
        given_name="Daan",
        family_name="de Vries",
        email="daan.devries@leerling.demoschool.example",
        affiliation="student",
        groups=("klas-3a",),
        student_number="300102@demoschool.example",
        eck_id=_demo_eck_id("daan.devries"),
    ),
    DemoUser(
        uid="fatima.elamrani",
        given_name="Fatima",
        family_name="El Amrani",
        email="fatima.elamrani@leerling.demoschool.example",
        affiliation="student",
        groups=("klas-4b",),
        student_number="400207@demoschool.example",
    ),
    DemoUser(
        uid="marieke.bakker",
        given_name="Marieke",
        family_name="Bakker",
        email="m.bakker@demoschool.example",
        affiliation="employee",
        groups=("klas-3a", "sectie-nederlands"),
    ),
)


@dataclass(frozen=True)
class SchoolIdpSettings:
    """Where the demo school IdP lives, its keys, whom it trusts and whom it knows."""

    base_url: str
    entity_id: str
    key_file: Path
    cert_file: Path
    sp_metadata: tuple[str, ...]
    school_name: str
    brin: str
    users: tuple[DemoUser, ...] = DEMO_USERS

    @property
    def sso_url(self) -> str:
        return self.base_url.rstrip("/") + "/sso"


@dataclass(frozen=True)
class _PendingLogin:
    """An accepted AuthnRequest waiting for the person to be picked."""

    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str | None


class _PendingLogins:
    """Accepted requests by a random key that travels in the pick form (no cookie needed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, _PendingLogin] = OrderedDict()

    def put(self, login: _PendingLogin) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._items[key] = login
            while len(self._items) > _MAX_PENDING:
                self._items.popitem(last=False)
        return key

    def take(self, key: str) -> _PendingLogin | None:
        # Taken once: a replayed pick form cannot mint a second response.
        with self._lock:
            return self._items.pop(key, None)


def _idp_config(settings: SchoolIdpSettings) -> Any:
    # Loading the config already builds a pysaml2 security context (for the metadata store).
    enable_inprocess_crypto()
    sso = settings.sso_url
    slo_url = settings.base_url.rstrip("/") + "/slo"
    config = IdPConfig()
    config.load(
        {
            "entityid": settings.entity_id,
            "name": settings.school_name,
            "key_file": str(settings.key_file),
            "cert_file": str(settings.cert_file),
            "crypto_backend": CRYPTO_BACKEND_NAME,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "metadata": {"inline": list(settings.sp_metadata)},
            "service": {
                "idp": {
                    "name": settings.school_name,
                    "endpoints": {
                        # Both bindings: pysaml2 peers warn on every login without HTTP-POST.
                        "single_sign_on_service": [
                            (sso, BINDING_HTTP_REDIRECT),
                            (sso, BINDING_HTTP_POST),
                        ],
                        "single_logout_service": [
                            (slo_url, BINDING_HTTP_REDIRECT),
                            (slo_url, BINDING_HTTP_POST),
                        ],
                    },
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": False,
                    "sign_response": True,
                    "sign_assertion": True,
                },
            },
        }
    )
    return config


def school_idp_metadata(settings: SchoolIdpSettings) -> str:
    """The IdP's SAML metadata: SSO endpoints (Redirect and POST) and the signing certificate."""
    return str(entity_descriptor(_idp_config(settings)))


def _persistent_subject(settings: SchoolIdpSettings, user: DemoUser) -> str:
    # Opaque but stable across demo runs, and different per school, as a real IdP's would be.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{settings.entity_id}#user={user.uid}"))


def _identity(settings: SchoolIdpSettings, user: DemoUser) -> dict[str, list[str]]:
    """The user's attributes keyed by FriendlyName (see attribute_profile.OID_PROFILE)."""
    identity = {
        "givenName": [user.given_name],
        "sn": [user.family_name],
        "displayName": [user.display_name],
        "mail": [user.email],
        "eduPersonAffiliation": [user.affiliation],
        "nlEduPersonHomeOrganizationId": [settings.brin],
        "nlEduPersonHomeOrganization": [settings.school_name],
        "isMemberOf": list(user.groups),
    }
    if user.student_number:
        identity["nlEduPersonProfileId"] = [user.student_number]
    if user.eck_id:
        identity["eckId"] = [user.eck_id]
    return identity


def _signed_response(
    server: Any, settings: SchoolIdpSettings, login: _PendingLogin, user: DemoUser
) -> str:
    name_id = NameID(
        format=NAMEID_FORMAT_PERSISTENT,
        text=_persistent_subject(settings, user),
        name_qualifier=settings.entity_id,
        sp_name_qualifier=login.sp_entity_id,
    )
    response = server.create_authn_response(
        _identity(settings, user),
        in_response_to=login.request_id,
        destination=login.acs_url,
        sp_entity_id=login.sp_entity_id,
        name_id=name_id,
        authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": settings.entity_id},
        sign_response=True,
        sign_assertion=True,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
        # No metadata store in the policy: a school releases by its own rules, not by the
        # RequestedAttributes in the broker's metadata (the broker filters downstream).
        release_policy=Policy(restrictions=None, mds=None),
    )
    return str(response)


def _error_page(message: str, status: int) -> tuple[str, int]:
    return (
        render_template(
            "demo_error.html",
            heading="Demo school: this login request cannot be handled",
            banner="This is a demo school's login service. Not a real school; no real people.",
            message=message,
        ),
        status,
    )


def create_school_idp_app(settings: SchoolIdpSettings) -> Flask:
    """The demo school IdP as a Flask app: /, /metadata, /sso (GET and POST), /sso/pick."""
    config = _idp_config(settings)
    # Emit the oid profile (URN or plain name, FriendlyName always) instead of pysaml2's maps.
    config.attribute_converters.insert(0, OidProfileConverter())
    server = Server(config=config)
    pending = _PendingLogins()
    users = {user.uid: user for user in settings.users}
    sessions = IssuedSessions()

    app = Flask(__name__, template_folder=str(_TEMPLATES))
    install_school_slo(app, server, settings.school_name, sessions)

    @app.get("/")
    def home() -> str:
        return render_template(
            "school_home.html", school_name=settings.school_name, brin=settings.brin
        )

    @app.get("/metadata")
    def metadata() -> Response:
        return Response(school_idp_metadata(settings), mimetype="application/samlmetadata+xml")

    @app.route("/sso", methods=["GET", "POST"])
    def sso() -> str | tuple[str, int]:
        if request.method == "POST":
            saml_request = request.form.get("SAMLRequest")
            relay_state = request.form.get("RelayState")
            binding = BINDING_HTTP_POST
        else:
            saml_request = request.args.get("SAMLRequest")
            relay_state = request.args.get("RelayState")
            binding = BINDING_HTTP_REDIRECT
        if not saml_request:
            return _error_page("No SAMLRequest was sent.", 400)
        try:
            parsed = server.parse_authn_request(saml_request, binding)
            if parsed is None:
                return _error_page("The AuthnRequest could not be read.", 400)
            reply = server.response_args(parsed.message, [BINDING_HTTP_POST])
        except _BAD_REQUEST_ERRORS as exc:
            return _error_page(f"The AuthnRequest was refused: {type(exc).__name__}.", 400)
        key = pending.put(
            _PendingLogin(
                request_id=reply["in_response_to"],
                sp_entity_id=reply["sp_entity_id"],
                acs_url=reply["destination"],
                relay_state=relay_state,
            )
        )
        return render_template(
            "school_pick.html",
            school_name=settings.school_name,
            brin=settings.brin,
            users=settings.users,
            pending=key,
        )

    @app.post("/sso/pick")
    def pick() -> str | tuple[str, int]:
        user = users.get(request.form.get("uid", ""))
        if user is None:
            abort(400)
        login = pending.take(request.form.get("pending", ""))
        if login is None:
            return _error_page(
                "This login has expired or was already used. Start again at the publisher.", 400
            )
        saml_response = _signed_response(server, settings, login, user)
        sessions.note(user.uid, saml_response)
        return render_template(
            "auto_post.html",
            action=login.acs_url,
            saml_response=base64.b64encode(saml_response.encode()).decode("ascii"),
            relay_state=login.relay_state,
        )

    return app
