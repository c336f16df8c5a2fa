"""A school OpenID provider whose answers the test controls: the forge for the RP refusal tests.

By default it answers correctly (discovery, JWKS, an authorization code at once, a signed ID
token, userinfo), so each test changes exactly one thing through `Forgery` and the refusal it
sees is caused by that one thing. It checks what the broker sends it as a strict provider would
(client authentication, redirect URI, PKCE S256), so a broker that skipped those fails here too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Response as BaseResponse

DELETE = object()  # a claim value meaning "leave this claim out"
OMIT = "<omit>"  # an `iss_parameter` meaning "send no iss in the callback"
FORGE_SUBJECT = "forge-subject-0001"


@dataclass
class Forgery:
    """What the provider gets wrong in its next answers; the defaults are a correct answer."""

    claims: dict[str, Any] = field(default_factory=dict)  # ID token claims to set (or DELETE)
    header: dict[str, Any] = field(default_factory=dict)
    # good | stranger (an unpublished key, same kid) | none | hs256_public (HMAC, public key)
    signing: str = "good"
    userinfo: dict[str, Any] = field(default_factory=dict)  # userinfo claims to set
    iss_parameter: str | None = None  # the callback's `iss`: None = the right one, OMIT = none
    error: str | None = None  # answer the authorization request with this error
    answer_at: str | None = None  # send the answer to this URL instead of the registered one
    # The token endpoint's whole answer (JSON text, status 200) instead of a token response.
    token_body: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


class ForgeProvider:
    def __init__(self, base_url: str, client_id: str, client_secret: str, redirect_uri: str):
        self.issuer = base_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.key = RSAKey.generate_key(2048, parameters={"kid": "forge-1"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "forge-1"})
        self.forgery = Forgery()
        self.jwks_fetches = 0
        self.token_requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, str]] = {}  # code → (nonce, code_challenge)
        self.last_nonce = ""  # the nonce of the last authorization request
        self.last_authorize: dict[str, str] = {}  # the last authorization request's parameters

    # -- what the provider signs ---------------------------------------------------------------
    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": FORGE_SUBJECT,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": nonce,
        }
        for name, value in self.forgery.claims.items():
            if value is DELETE:
                claims.pop(name, None)
            else:
                claims[name] = value
        header = {"alg": "RS256", "kid": "forge-1", **self.forgery.header}
        signing = self.forgery.signing
        if signing == "none":
            return _compact({**header, "alg": "none"}, claims) + "."
        if signing == "hs256_public":
            # The classic key-confusion forgery: the provider's *public* key as an HMAC secret.
            secret = self.key.as_pem(private=False)
            signing_input = _compact({**header, "alg": "HS256"}, claims)
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return signing_input + "." + _b64(mac)
        key = self.stranger if signing == "stranger" else self.key
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])

    # -- the provider's endpoints --------------------------------------------------------------
    def app(self) -> Flask:
        app = Flask(__name__)

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Response:
            return jsonify(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "userinfo_endpoint": f"{self.issuer}/userinfo",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                    "authorization_response_iss_parameter_supported": True,
                }
            )

        @app.get("/jwks")
        def jwks() -> Response:
            with self._lock:
                self.jwks_fetches += 1
            return jsonify({"keys": [self.key.as_dict(private=False)]})

        @app.get("/authorize")
        def authorize() -> BaseResponse:  # redirect() makes a Werkzeug response
            args = request.args
            self.last_authorize = args.to_dict()
            if args.get("client_id") != self.client_id or args.get("redirect_uri") != (
                self.redirect_uri
            ):
                abort(400)
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                abort(400)
            answer: dict[str, str] = {"state": args.get("state", "")}
            if self.forgery.error:
                answer["error"] = self.forgery.error
            else:
                code = secrets.token_urlsafe(16)
                with self._lock:
                    self._codes[code] = (args.get("nonce", ""), args["code_challenge"])
                    self.last_nonce = args.get("nonce", "")
                answer["code"] = code
            iss = self.forgery.iss_parameter
            if iss != OMIT:
                answer["iss"] = iss or self.issuer
            target = self.forgery.answer_at or self.redirect_uri
            return redirect(f"{target}?{urlencode(answer)}", 302)

        @app.post("/token")
        def token() -> Response | tuple[Response, int]:
            auth = request.authorization
            if auth is None or (auth.username, auth.password) != (
                self.client_id,
                self.client_secret,
            ):
                return jsonify({"error": "invalid_client"}), 401
            form = request.form.to_dict()
            self.token_requests.append(form)
            with self._lock:
                found = self._codes.pop(form.get("code", ""), None)
            if found is None or form.get("redirect_uri") != self.redirect_uri:
                return jsonify({"error": "invalid_grant"}), 400
            nonce, challenge = found
            verifier = form.get("code_verifier", "").encode()
            if _b64(hashlib.sha256(verifier).digest()) != challenge:
                return jsonify({"error": "invalid_grant"}), 400
            if self.forgery.token_body is not None:
                return Response(self.forgery.token_body, 200, mimetype="application/json")
            return jsonify(
                {
                    "access_token": "forge-access-" + secrets.token_urlsafe(8),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self.id_token(nonce),
                }
            )

        @app.get("/userinfo")
        def userinfo() -> Response:
            if not request.headers.get("Authorization", "").startswith("Bearer forge-access-"):
                abort(401)
            return jsonify(
                {
                    "sub": FORGE_SUBJECT,
                    "given_name": "Sanne",
                    "eduperson_affiliation": ["student"],
                    **self.forgery.userinfo,
                }
            )

        return app
