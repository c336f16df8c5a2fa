"""A demo publisher's SAML service provider: a real pysaml2 SP that shows what it received.

It stands in for an outside party (a publisher), so it trusts the broker only through the
broker's IdP metadata and checks responses the way a strict SP library does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, session, url_for
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.md import AttributeConsumingService, EncryptionMethod, ServiceName
from saml2.metadata import entity_descriptor
from saml2.response import StatusError
from saml2.s_utils import SamlException, UnravelError
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.samlp import IDPEntry, IDPList, Scoping, response_from_string
from saml2.validate import NotValid, ResponseLifetimeExceed, ToEarly
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from broker.demo.attribute_profile import requested_attribute
from broker.demo.publisher_slo import install_publisher_slo, slo_endpoints
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto

__all__ = ["PublisherSpSettings", "create_publisher_sp_app", "publisher_sp_metadata"]

_TEMPLATES = Path(__file__).parent / "templates"
_BANNER = "This is a demo publisher. It only shows what it received; it sells nothing."
_MAX_RECEIVED = 1000
# Everything pysaml2 raises for a response it will not accept (bad signature, wrong audience,
# unsolicited, expired, malformed); a broad `except Exception` would hide our own bugs.
_REFUSED_RESPONSE_ERRORS = (
    SAMLError,
    SamlException,
    UnravelError,
    NotValid,
    ToEarly,
    ResponseLifetimeExceed,
    ValueError,
    SyntaxError,
    zlib.error,
)
_SESSION_OUTSTANDING = "outstanding"
_SESSION_RECEIVED = "received"


@dataclass(frozen=True)
class PublisherSpSettings:
    """Where the demo publisher SP lives, its keys and the broker it trusts."""

    base_url: str
    entity_id: str
    name: str
    key_file: Path
    cert_file: Path
    idp_metadata: tuple[str, ...]
    # FriendlyNames (or Names) of the oid profile, published as RequestedAttribute.
    requested_attributes: tuple[str, ...] = ()
    # SameSite=None; Secure session cookie, for a broker on another site than this SP (a real
    # browser then only sends such a cookie with the POST to the ACS). Plain HTTP clients such as
    # `requests` do not send Secure cookies over http, hence off by default.
    cross_site_cookie: bool = False
    # Single Logout: "answer", "post" (an HTTP-POST SLO endpoint only), "unframeable" (its
    # answer page refuses to be framed), "silent" (never answers), "partial" (answers
    # Responder/PartialLogout) or "none" (no SLO endpoint); publisher_slo.py.
    slo: str = "answer"
    # Tests only: a key pair of its own for encrypted assertions, published as a KeyDescriptor
    # use="encryption" listing `encryption_methods` (none: no EncryptionMethod). The demo's
    # publishers publish no encryption key, so what the benchmark measures stays the same.
    encryption_key_file: Path | None = None
    encryption_cert_file: Path | None = None
    encryption_methods: tuple[str, ...] = ()

    @property
    def acs_url(self) -> str:
        return self.base_url.rstrip("/") + "/acs"


def _sp_config(settings: PublisherSpSettings) -> Any:
    # Loading the config already builds a pysaml2 security context (for the metadata store).
    enable_inprocess_crypto()
    config = SPConfig()
    config.load(
        _encryption_keypairs(settings)
        | {
            "entityid": settings.entity_id,
            "name": settings.name,
            "key_file": str(settings.key_file),
            "cert_file": str(settings.cert_file),
            "crypto_backend": CRYPTO_BACKEND_NAME,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "metadata": {"inline": list(settings.idp_metadata)},
            # Show every attribute that arrives, also names pysaml2's maps do not know.
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "name": settings.name,
                    "endpoints": {
                        "assertion_consumer_service": [(settings.acs_url, BINDING_HTTP_POST)],
                        "single_logout_service": slo_endpoints(settings.base_url, settings.slo),
                    },
                    "authn_requests_signed": False,
                    "want_response_signed": True,
                    "want_assertions_signed": True,
                    "allow_unsolicited": False,
                    "name_id_format": NAMEID_FORMAT_PERSISTENT,
                },
            },
        }
    )
    return config


def _encryption_keypairs(settings: PublisherSpSettings) -> dict[str, Any]:
    """Published as a KeyDescriptor use="encryption", and the key pysaml2 decrypts with."""
    if settings.encryption_key_file is None or settings.encryption_cert_file is None:
        return {}
    pair = {
        "key_file": str(settings.encryption_key_file),
        "cert_file": str(settings.encryption_cert_file),
    }
    return {"encryption_keypairs": [pair]}


def publisher_sp_metadata(settings: PublisherSpSettings) -> str:
    """The SP's SAML metadata: ACS (HTTP-POST), signing certificate, requested attributes."""
    descriptor = entity_descriptor(_sp_config(settings))
    sp_descriptors = descriptor.spsso_descriptor
    if not isinstance(sp_descriptors, list):
        sp_descriptors = [sp_descriptors]
    for sp_descriptor in sp_descriptors:
        for key_descriptor in sp_descriptor.key_descriptor or []:
            if key_descriptor.use == "encryption" and settings.encryption_methods:
                key_descriptor.encryption_method = [
                    EncryptionMethod(algorithm=algorithm)
                    for algorithm in settings.encryption_methods
                ]
    if settings.requested_attributes:
        for sp_descriptor in sp_descriptors:
            sp_descriptor.attribute_consuming_service = [
                AttributeConsumingService(
                    index="1",
                    is_default="true",
                    service_name=[ServiceName(text=settings.name, lang="en")],
                    requested_attribute=[
                        requested_attribute(name) for name in settings.requested_attributes
                    ],
                )
            ]
    return str(descriptor)


class ReceivedLogins:
    """What arrived per login, kept server-side: a Flask cookie session holds only ~4 KB."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def put(self, received: dict[str, Any]) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._items[key] = received
            while len(self._items) > _MAX_RECEIVED:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)


def _received_summary(authn_response: Any, relay_state: str | None) -> dict[str, Any]:
    """The verified assertion as plain data: NameID and every attribute as sent."""
    assertion = authn_response.assertion
    name_id = assertion.subject.name_id
    attributes = [
        {
            "name": attribute.name,
            "friendly_name": attribute.friendly_name,
            "name_format": attribute.name_format,
            "values": [value.text or "" for value in attribute.attribute_value],
        }
        for statement in assertion.attribute_statement
        for attribute in statement.attribute
    ]
    return {
        "issuer": authn_response.issuer(),
        "in_response_to": authn_response.in_response_to,
        "relay_state": relay_state,
        "name_id": {
            "format": name_id.format,
            "value": name_id.text,
            "name_qualifier": name_id.name_qualifier,
            "sp_name_qualifier": name_id.sp_name_qualifier,
        },
        "attributes": attributes,
        "session_index": next(
            (s.session_index for s in assertion.authn_statement if s.session_index), None
        ),
    }


def _status_of(saml_response: str) -> tuple[str | None, str | None, str | None]:
    """(status code, second-level code, message) of a Response pysaml2 refused by its status."""
    try:
        xml = base64.b64decode(saml_response, validate=True).decode("utf-8")
        parsed = response_from_string(xml)
    except (binascii.Error, UnicodeDecodeError, ValueError, SyntaxError):
        return None, None, None
    status = parsed.status if parsed is not None else None
    if status is None or status.status_code is None:
        return None, None, None
    inner = status.status_code.status_code
    message = status.status_message.text if status.status_message is not None else None
    return status.status_code.value, inner.value if inner is not None else None, message


def _error_page(message: str, status: int, **status_fields: str | None) -> tuple[str, int]:
    return (
        render_template(
            "demo_error.html",
            heading="The login did not succeed",
            banner=_BANNER,
            message=message,
            home=url_for("home"),
            **status_fields,
        ),
        status,
    )


def create_publisher_sp_app(settings: PublisherSpSettings) -> Flask:
    """The demo publisher SP as a Flask app: /, /login, /acs, /metadata, /received.json."""
    client = Saml2Client(config=_sp_config(settings))
    received_logins = ReceivedLogins()

    app = Flask(__name__, template_folder=str(_TEMPLATES))
    app.secret_key = secrets.token_bytes(32)
    # Cookies are per host, not per port: with the broker and other demo apps on 127.0.0.1 a
    # plain "session" cookie would be overwritten by theirs.
    digest = hashlib.sha256(settings.entity_id.encode()).hexdigest()[:10]
    app.config["SESSION_COOKIE_NAME"] = f"demo_publisher_{digest}"
    app.config["SESSION_COOKIE_SAMESITE"] = "None" if settings.cross_site_cookie else "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.cross_site_cookie

    @app.get("/")
    def home() -> str:
        return render_template(
            "publisher_home.html",
            name=settings.name,
            school=request.args.get("school", ""),
        )

    @app.get("/metadata")
    def metadata() -> Response:
        return Response(publisher_sp_metadata(settings), mimetype="application/samlmetadata+xml")

    @app.get("/login")
    def login() -> Any:
        idps = sorted(client.metadata.identity_providers())
        if not idps:
            return _error_page("No broker metadata is configured for this publisher.", 500)
        school = request.args.get("school", "").strip()
        scoping = (
            Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=school)])) if school else None
        )
        relay_state = secrets.token_urlsafe(16)
        request_id, info = client.prepare_for_authenticate(
            entityid=idps[0],
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            scoping=scoping,
        )
        outstanding = dict(session.get(_SESSION_OUTSTANDING, {}))
        outstanding[request_id] = relay_state
        session[_SESSION_OUTSTANDING] = outstanding
        location = dict(info["headers"])["Location"]
        return redirect(location, code=303)

    @app.post("/acs")
    def acs() -> Any:
        saml_response = request.form.get("SAMLResponse", "")
        relay_state = request.form.get("RelayState")
        if not saml_response:
            return _error_page("No SAMLResponse was posted.", 400)
        outstanding: dict[str, str] = dict(session.get(_SESSION_OUTSTANDING, {}))
        try:
            authn_response = client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
        except StatusError:
            code, sub_code, message = _status_of(saml_response)
            return _error_page(
                "The broker answered with an error status.",
                403,
                status_code=code,
                sub_status_code=sub_code,
                status_message=message,
            )
        except _REFUSED_RESPONSE_ERRORS as exc:
            return _error_page(
                f"This publisher refused the response: {type(exc).__name__}. "
                "A login started in another browser session, or a changed or expired response, "
                "ends here.",
                403,
            )
        if authn_response is None or authn_response.assertion is None:
            return _error_page("This publisher refused the response: no valid assertion.", 403)
        outstanding.pop(authn_response.in_response_to, None)
        session[_SESSION_OUTSTANDING] = outstanding
        received = _received_summary(authn_response, relay_state)
        session[_SESSION_RECEIVED] = received_logins.put(received)
        return render_template("publisher_received.html", name=settings.name, received=received)

    install_publisher_slo(
        app, client, settings.name, settings.slo, received_logins, _SESSION_RECEIVED
    )

    @app.get("/received.json")
    def received_json() -> Any:
        received = received_logins.get(session.get(_SESSION_RECEIVED, ""))
        if received is None:
            return jsonify({"error": "no login in this browser session yet"}), 404
        return jsonify(received)

    return app
