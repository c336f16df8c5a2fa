"""A demo school's OpenID provider: authlib's authorization server with the demo school's people.

It stands in for a school whose identity provider speaks OpenID Connect (an Entra ID or a
Keycloak, say): code flow with PKCE S256 and nonce, RS256 ID tokens, discovery, JWKS, userinfo and
the RFC 9207 `iss` parameter. It knows one client, the broker, whose secret the demo writes to a
file. The people are the SAML demo school's (school_idp.DEMO_USERS); their `sub` follows the same
rule as that school's persistent NameID, with the issuer in place of the entity id.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error, rfc9207
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, abort, jsonify, redirect, render_template, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from broker.demo.school_idp import DEMO_USERS, DemoUser

__all__ = ["SchoolOpSettings", "create_school_op_app", "school_op_subject"]

_TEMPLATES = Path(__file__).parent / "templates"
CODE_LIFETIME = 60
TOKEN_LIFETIME = 600
REFEDS_SFA = "https://refeds.org/profile/sfa"
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# The scopes this provider knows and the claims each one releases (OIDC Core §5.4 and the
# education scopes of attributes.md).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "given_name", "family_name", "preferred_username"),
    "email": ("email", "email_verified"),
    "school": ("eduperson_affiliation", "school_id", "school_name", "student_number", "eck_id"),
    "groups": ("groups",),
}


@dataclass(frozen=True)
class SchoolOpSettings:
    base_url: str  # also the issuer
    key_file: Path  # RSA private key (PEM) that signs ID tokens
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    school_name: str
    brin: str
    realm: str  # the school's scope for `x@realm` identifiers
    users: tuple[DemoUser, ...] = DEMO_USERS
    # Where end_session may send the browser back to (the broker's logout callback), exact.
    post_logout_redirect_uri: str = ""
    # The broker's back-channel logout URI for this school (Back-Channel Logout 1.0).
    backchannel_logout_uri: str = ""
    # As a Google Workspace does: `hd` = this domain for the people whose e-mail address is in
    # it, none for the others (as for a personal account); empty: no `hd` at all.
    hosted_domain: str = ""
    # A school board's provider: the broker's one client there for several schools, with a
    # redirect URI per school (these besides `redirect_uri`), and each person's own school in
    # `school_id` by uid ("": no `school_id` claim); a person not named gets `brin`.
    more_redirect_uris: tuple[str, ...] = ()
    school_of: tuple[tuple[str, str], ...] = ()

    @property
    def issuer(self) -> str:
        return self.base_url


def school_op_subject(issuer: str, uid: str) -> str:
    """The `sub` the demo provider gives a person: stable across runs, different per school."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}#user={uid}"))


def _rescoped(value: str, realm: str) -> str:
    # The SAML demo school's student numbers carry its realm; this school has its own.
    return f"{value.rpartition('@')[0]}@{realm}"


def user_claims(settings: SchoolOpSettings, user: DemoUser, scope: str) -> dict[str, Any]:
    everything: dict[str, Any] = {
        "sub": school_op_subject(settings.issuer, user.uid),
        "name": user.display_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "preferred_username": f"{user.uid}@{settings.realm}",
        "email": user.email,
        "email_verified": True,
        "eduperson_affiliation": [user.affiliation],
        "school_id": dict(settings.school_of).get(user.uid, settings.brin),
        "school_name": settings.school_name,
        "groups": list(user.groups),
    }
    if user.student_number:
        everything["student_number"] = _rescoped(user.student_number, settings.realm)
    if user.eck_id:
        everything["eck_id"] = user.eck_id
    allowed = {claim for s in scope.split() for claim in SCOPE_CLAIMS.get(s, ())}
    if not everything["school_id"]:
        del everything["school_id"]  # a board's provider that knows no school for the person
    claims = {name: value for name, value in everything.items() if name in allowed}
    if settings.hosted_domain and user.email.endswith("@" + settings.hosted_domain):
        claims["hd"] = settings.hosted_domain  # with any scope, as Google sends it
    return claims


@dataclass(frozen=True)
class _Client:
    """The broker's registration at this provider (authlib's ClientMixin methods)."""

    client_id: str
    secret: str = field(repr=False)
    redirect_uri: str
    client_metadata: dict[str, str] = field(default_factory=dict)
    more_redirect_uris: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPE_CLAIMS)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact match, nothing else.
        return redirect_uri == self.redirect_uri or redirect_uri in self.more_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class _Code:
    """An issued authorization code (authlib's AuthorizationCodeMixin methods)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    uid: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return REFEDS_SFA

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass(frozen=True)
class _Token:
    """An issued access token (authlib's TokenMixin methods)."""

    client: _Client
    uid: str
    scope: str
    expires_at: float

    def check_client(self, client: _Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return TOKEN_LIFETIME

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> str:
        return self.uid

    def get_client(self) -> _Client:
        return self.client


class _Memory:
    """Codes, tokens and used nonces in memory: a demo keeps nothing on disk."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, _Token] = {}
        self.nonces: set[str] = set()
        self.logouts: list[str] = []
        # The `sid` of every ID token issued (each login is a session of its own here) → uid;
        # a back-channel logout takes them out, `issued_sids` keeps them all.
        self.sessions: dict[str, str] = {}
        self.issued_sids: list[str] = []

    def take_code(self, code: str, client_id: str) -> _Code | None:
        with self.lock:  # single use: a second redemption finds nothing
            found = self.codes.pop(code, None)
        if found is None or found.client_id != client_id or found.expires_at < time.time():
            return None
        return found


def create_school_op_app(settings: SchoolOpSettings) -> Flask:
    """The demo OpenID provider as a Flask app: discovery, JWKS, authorize, token, userinfo."""
    key = RSAKey.import_key(settings.key_file.read_bytes())
    key.ensure_kid()
    client = _Client(
        settings.client_id,
        settings.client_secret,
        settings.redirect_uri,
        more_redirect_uris=settings.more_redirect_uris,
    )
    users = {user.uid: user for user in settings.users}
    memory = _Memory()

    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            with memory.lock:
                memory.codes[code] = _Code(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    uid=req.user.uid,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    auth_time=int(time.time()),
                    expires_at=time.time() + CODE_LIFETIME,
                )
                if data.get("nonce"):
                    memory.nonces.add(data["nonce"])

        def query_authorization_code(self, code: str, found: _Client) -> _Code | None:
            return memory.take_code(code, found.client_id)

        def delete_authorization_code(self, authorization_code: _Code) -> None:
            return None  # already taken out by query_authorization_code

        def authenticate_user(self, authorization_code: _Code) -> DemoUser | None:
            return users.get(authorization_code.uid)

    class OpenId(OpenIDCode):  # type: ignore[misc]
        def exists_nonce(self, nonce: str, req: Any) -> bool:
            with memory.lock:
                return nonce in memory.nonces

        def resolve_client_private_key(self, found: _Client) -> RSAKey:
            return key

        def get_client_algorithm(self, found: _Client) -> str:
            return "RS256"

        def get_encode_header(self, found: _Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(key.kid)}

        def get_client_claims(self, found: _Client) -> dict[str, Any]:
            return {"iss": settings.issuer, "aud": [found.client_id]}

        def generate_user_info(self, user: DemoUser, scope: str) -> UserInfo:
            # Only in the ID token (userinfo has its own class): this login's session id.
            sid = secrets.token_urlsafe(16)
            with memory.lock:
                memory.sessions[sid] = user.uid
                memory.issued_sids.append(sid)
            return UserInfo({**user_claims(settings, user, scope), "sid": sid})

    class Iss(rfc9207.IssuerParameter):  # type: ignore[misc]
        def get_issuer(self) -> str:
            return settings.issuer

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> _Token | None:
            with memory.lock:
                return memory.tokens.get(token_string)

    class UserInfoAnswer(UserInfoEndpoint):  # type: ignore[misc]
        def generate_user_info(self, user: str, scope: str) -> UserInfo:
            return UserInfo(user_claims(settings, users[user], scope))

        def get_issuer(self) -> str:
            return settings.issuer

    def save_token(token: dict[str, Any], req: Any) -> None:
        with memory.lock:
            memory.tokens[token["access_token"]] = _Token(
                client, req.user.uid, token.get("scope", ""), time.time() + TOKEN_LIFETIME
            )

    app = Flask(__name__, template_folder=str(_TEMPLATES))
    # What the provider issued, for tests that look for it where it must not be (the sids).
    app.extensions["school_op_memory"] = memory
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": TOKEN_LIFETIME}
    server = AuthorizationServer(
        app,
        query_client=lambda cid: client if cid == client.client_id else None,
        save_token=save_token,
    )
    server.register_grant(CodeGrant, [OpenId(require_nonce=True), CodeChallenge(required=True)])
    server.register_extension(Iss())
    protector = ResourceProtector()
    protector.register_token_validator(Validator())
    server.register_endpoint(UserInfoAnswer(resource_protector=protector))

    @app.get("/")
    def home() -> str:
        return _home(settings, None)

    @app.post("/logout-everywhere")
    def logout_everywhere() -> Any:
        """Back-Channel Logout 1.0 towards the broker: a logout token per session of the
        person, POSTed server to server; the broker's answers are shown (and returned as JSON
        to a caller that asks for it, as the tests do)."""
        results = _send_logout_tokens(settings, key, memory, request.form.get("uid", ""))
        if request.accept_mimetypes.best == "application/json":
            return jsonify({"statuses": results})
        return _home(settings, results)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(_discovery_document(settings.issuer))

    @app.get("/jwks")
    def jwks() -> Response:
        return jsonify({"keys": [key.as_dict(private=False, use="sig", alg="RS256")]})

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        user = None
        if request.method == "POST":
            user = users.get(request.form.get("uid", ""))
            if user is None:
                abort(400)
        try:
            # Validates client, redirect_uri (exact), scope, nonce and the PKCE challenge
            # before anything is shown; an invalid request is never redirected anywhere.
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return _error_page(f"The authorization request was refused: {error.error}.")
        if user is None:
            return render_template(
                "school_op_pick.html",
                school_name=settings.school_name,
                brin=settings.brin,
                users=settings.users,
                action=f"{settings.base_url}/authorize?{urlencode(list(request.args.items()))}",
            )
        return server.create_authorization_response(grant=grant, grant_user=user)

    @app.get("/end_session")
    def end_session() -> Any:
        return _end_session(settings, key, memory)

    @app.get("/logouts.json")
    def logouts() -> Response:
        """The logouts this provider saw (like the SAML demo peers' list, demo/slo.py)."""
        with memory.lock:
            return jsonify([{"kind": "end_session", "sub": sub} for sub in memory.logouts])

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> Any:
        return server.create_endpoint_response("userinfo")

    return app


def _home(settings: SchoolOpSettings, results: list[int] | None) -> str:
    return render_template(
        "school_op_home.html",
        school_name=settings.school_name,
        brin=settings.brin,
        users=settings.users,
        results=results,
    )


def logout_token(settings: SchoolOpSettings, key: RSAKey, uid: str, sid: str) -> str:
    """A logout token as Back-Channel Logout 1.0 section 2.4 describes it."""
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": settings.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sub": school_op_subject(settings.issuer, uid),
        "sid": sid,
    }
    header = {"alg": "RS256", "kid": str(key.kid), "typ": "logout+jwt"}
    return jwt.encode(header, claims, key, algorithms=["RS256"])


def _send_logout_tokens(
    settings: SchoolOpSettings, key: RSAKey, memory: _Memory, uid: str
) -> list[int]:
    """One logout token per session of `uid`, each session once; the broker's status codes."""
    if not settings.backchannel_logout_uri:
        abort(404)
    with memory.lock:
        sids = [sid for sid, owner in memory.sessions.items() if owner == uid]
        for sid in sids:
            del memory.sessions[sid]
    statuses = []
    for sid in sids:
        token = logout_token(settings, key, uid, sid)
        try:
            answer = requests.post(
                settings.backchannel_logout_uri, data={"logout_token": token}, timeout=10
            )
            statuses.append(answer.status_code)
        except requests.RequestException:
            statuses.append(0)
    return statuses


def _end_session(settings: SchoolOpSettings, key: RSAKey, memory: _Memory) -> Any:
    """RP-Initiated Logout 1.0: the hint must be one of this provider's ID tokens for the broker
    (expired is fine), the return address the registered one; `state` is echoed. This provider
    keeps no sessions of its own, so the logout is only counted."""
    hint = request.args.get("id_token_hint", "")
    target = request.args.get("post_logout_redirect_uri", "")
    try:
        claims = jwt.decode(hint, key, algorithms=["RS256"]).claims
    except (JoseError, ValueError):
        return _error_page("The logout request carries no ID token of this school.")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud or []
    if claims.get("iss") != settings.issuer or settings.client_id not in audiences:
        return _error_page("The ID token of this logout request is not for the broker.")
    if not target or target != settings.post_logout_redirect_uri:
        return _error_page("The logout request names an address that is not registered.")
    with memory.lock:
        memory.logouts.append(str(claims.get("sub", "")))
    state = request.args.get("state")
    location = f"{target}?{urlencode({'state': state})}" if state is not None else target
    return redirect(location, code=303)


def _discovery_document(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(SCOPE_CLAIMS),
        "claims_supported": sorted({c for claims in SCOPE_CLAIMS.values() for c in claims}),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "acr_values_supported": [REFEDS_SFA],
        "authorization_response_iss_parameter_supported": True,
        "end_session_endpoint": f"{issuer}/end_session",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def _error_page(message: str) -> tuple[str, int]:
    return (
        render_template(
            "demo_error.html",
            heading="Demo school: this login request cannot be handled",
            banner="This is a demo school's login service. Not a real school; no real people.",
            message=message,
        ),
        400,
    )


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)
