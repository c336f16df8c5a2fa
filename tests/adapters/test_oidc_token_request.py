"""The broker's requests to a school's token and userinfo endpoints (oidc/back.py), as a real
provider on 127.0.0.1 receives them, and its refusals of answers that carry no usable token.
The requests are built without authlib's client session: they must say what it said (grant,
redirect URI, code, PKCE verifier; client_secret_basic, or _post when that is all there is)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import pytest

from broker.config import Settings
from broker.core.errors import InvalidMessage, UpstreamFailure
from broker.core.model import OidcUpstream, School
from broker.oidc.back import OidcBack
from broker.oidc.rp_discovery import ProviderMetadata

CALLBACK = "http://127.0.0.1:5000/oidc/rp/callback/99ZZ00"


@dataclass
class Provider:
    """What the fake provider answers next, and what it received."""

    port: int = 0
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length).decode(),
                }
            )
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


class _Settings:
    """What OidcBack reads of the settings."""

    class oidc:  # stands in for the settings' section
        http_timeout_seconds = 2.0

    peers_on_loopback = True

    @staticmethod
    def oidc_callback_url(school_id: str) -> str:
        return CALLBACK


def metadata(provider: Provider, methods: tuple[str, ...]) -> ProviderMetadata:
    return ProviderMetadata(
        issuer=provider.url,
        authorization_endpoint=f"{provider.url}/authorize?tenant=a",
        token_endpoint=f"{provider.url}/token",
        jwks_uri=f"{provider.url}/jwks",
        userinfo_endpoint=f"{provider.url}/userinfo",
        token_auth_methods=methods,
        scopes_supported=("openid",),
        signing_algorithms=("RS256",),
        iss_parameter_supported=True,
    )


class _Directory:
    def __init__(self, found: ProviderMetadata) -> None:
        self.found = found

    def metadata(self, issuer: str) -> ProviderMetadata:
        return self.found


def back_for(provider: Provider, *methods: str) -> tuple[OidcBack, School, OidcUpstream]:
    upstream = OidcUpstream(provider.url, "ketenbroker", "s3cret:é")
    school = cast(School, type("School", (), {"id": "99ZZ00", "oidc": upstream})())
    back = OidcBack(
        cast(Settings, _Settings()),
        directory=cast(Any, _Directory(metadata(provider, methods or ("client_secret_basic",)))),
    )
    return back, school, upstream


def redeem(provider: Provider, *methods: str) -> dict[str, Any]:
    back, school, upstream = back_for(provider, *methods)
    found = back.directory.metadata(upstream.issuer)
    return back._redeem(school, upstream, found, "the-code", "the-verifier")


def test_the_token_request_with_client_secret_basic(provider: Provider) -> None:
    provider.body = json.dumps(
        {"id_token": "x", "access_token": "a", "token_type": "Bearer"}
    ).encode()
    assert redeem(provider)["id_token"] == "x"
    [sent] = provider.received
    assert sent["method"] == "POST"
    assert sent["path"] == "/token"
    assert parse_qsl(sent["body"]) == [
        ("grant_type", "authorization_code"),
        ("redirect_uri", CALLBACK),
        ("code", "the-code"),
        ("code_verifier", "the-verifier"),
    ]
    headers = sent["headers"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded;charset=UTF-8"
    assert headers["Accept"] == "application/json"
    # RFC 6749 2.3.1: id and secret form-urlencoded (UTF-8), then Basic.
    assert headers["Authorization"] == "Basic " + base64.b64encode(
        b"ketenbroker:s3cret%3A%C3%A9"
    ).decode("ascii")
    assert headers["Host"] == f"127.0.0.1:{provider.port}"


def _basic_as_the_rfc_reads_it(header: str) -> tuple[str, str]:
    """What a token endpoint that follows RFC 6749 2.3.1 reads (Keycloak, Spring
    Authorization Server): Basic, split at the first colon, each side form-urldecoded."""
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode("ascii").partition(":")
    return unquote_plus(user), unquote_plus(password)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("ketenbroker", "s3+cr%2Bt/x=="),  # base64-like, as an administrator pastes it
        ("https://broker.example/oidc", "a b:c&d?é€"),  # space, colon, beyond Latin-1
    ],
)
def test_client_secret_basic_is_form_urlencoded_first(
    provider: Provider, client_id: str, secret: str
) -> None:
    """Before review-bcp the id and secret went as they were: `+` read as a space, `%2B` as
    `+`, so a provider that decodes per the RFC refused a right secret; one beyond Latin-1
    could not be sent at all (`client_secret_invalid`)."""
    back, school, _ = back_for(provider)
    upstream = OidcUpstream(provider.url, client_id, secret)
    provider.body = json.dumps({"id_token": "x"}).encode()
    found = back.directory.metadata(upstream.issuer)
    back._redeem(school, upstream, found, "the-code", "the-verifier")
    [sent] = provider.received
    assert _basic_as_the_rfc_reads_it(sent["headers"]["Authorization"]) == (client_id, secret)


def test_the_token_request_with_client_secret_post(provider: Provider) -> None:
    provider.body = json.dumps({"id_token": "x"}).encode()
    redeem(provider, "client_secret_post")
    [sent] = provider.received
    assert "Authorization" not in sent["headers"]
    form = parse_qs(sent["body"])
    assert form["client_id"] == ["ketenbroker"]
    assert form["client_secret"] == ["s3cret:é"]
    assert form["code_verifier"] == ["the-verifier"]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, json.dumps({"error": "invalid_grant"})),
        (200, json.dumps({"error": "invalid_grant"})),
        (400, json.dumps({"id_token": "x"})),  # a token must come with 200 (RFC 6749 5.1)
        (500, json.dumps({"id_token": "x"})),
        (200, "<html>gateway</html>"),
        (200, json.dumps(["id_token"])),
    ],
)
def test_answers_without_a_usable_token_are_refused(
    provider: Provider, status: int, body: str
) -> None:
    provider.status, provider.body = status, body.encode()
    with pytest.raises(UpstreamFailure) as refused:
        redeem(provider)
    assert refused.value.code == "token_refused"


def test_userinfo_is_asked_with_the_bearer_token(provider: Provider) -> None:
    back, _, upstream = back_for(provider)
    found = back.directory.metadata(upstream.issuer)
    provider.body = json.dumps({"sub": "s-1", "given_name": "Sanne"}).encode()
    token = {"access_token": "at-1", "token_type": "bearer"}
    assert back._userinfo(upstream, found, token, "s-1")["given_name"] == "Sanne"
    [sent] = provider.received
    assert sent["method"] == "GET"
    assert sent["path"] == "/userinfo"
    assert sent["headers"]["Authorization"] == "Bearer at-1"
    with pytest.raises(InvalidMessage) as other:
        back._userinfo(upstream, found, token, "s-2")
    assert other.value.code == "userinfo_sub_mismatch"


def test_a_provider_that_named_another_school_is_asked_to_let_the_student_pick_the_account(
    provider: Provider,
) -> None:
    """`select_account` (a board's provider named another school in this login): its own
    session would sign in the same account again. A forced login's prompt=login stays alone
    (it asks for the account anyway)."""
    back, school, _ = back_for(provider)
    prompts = []
    for force_login, select_account in ((False, False), (False, True), (True, True)):
        redirect = back.authorization_redirect(
            school,
            "state-1",
            force_login=force_login,
            max_age=None,
            acr_values=(),
            acr_essential=False,
            select_account=select_account,
        )
        prompts.append(parse_qs(urlsplit(redirect.redirect_url).query).get("prompt"))
    assert prompts == [None, ["select_account"], ["login"]]
    # Each request its own tag: a state of one is never another's.
    again = back.authorization_redirect(
        school, "state-1", force_login=False, max_age=None, acr_values=(), acr_essential=False
    )
    assert again.kept["state_tag"] != redirect.kept["state_tag"]


def test_the_authorization_url_keeps_the_endpoints_own_query(provider: Provider) -> None:
    back, school, _ = back_for(provider)
    redirect = back.authorization_redirect(
        school, "state-1", force_login=True, max_age=300, acr_values=(), acr_essential=False
    )
    parts = urlsplit(redirect.redirect_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.url}/authorize"
    query = parse_qs(parts.query)
    assert query["tenant"] == ["a"]
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["ketenbroker"]
    assert query["redirect_uri"] == [CALLBACK]
    # The login's id with this request's own tag, kept sealed in the record (rp_state.py).
    assert query["state"] == [f"state-1.{redirect.kept['state_tag']}"]
    assert query["prompt"] == ["login"]
    # A forced login says so twice (max_age=0 also obliges the provider to send auth_time); the
    # service's own max_age stays the one its answer is held to, beside the fresh-login mark.
    assert query["max_age"] == ["0"]
    assert (redirect.kept["max_age"], redirect.kept["fresh"]) == ("300", "1")
    assert query["nonce"] == [redirect.kept["nonce"]]
    digest = hashlib.sha256(redirect.kept["code_verifier"].encode()).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]
    assert query["code_challenge_method"] == ["S256"]
    assert provider.received == []  # building the URL calls no one


def test_a_hosted_domain_goes_as_googles_hd_hint(provider: Provider) -> None:
    back, _, upstream = back_for(provider)
    hosted = replace(upstream, hosted_domain="leerling.school.example")
    school = cast(School, type("School", (), {"id": "99ZZ00", "oidc": hosted})())
    redirect = back.authorization_redirect(
        school, "state-1", force_login=False, max_age=None, acr_values=(), acr_essential=False
    )
    assert parse_qs(urlsplit(redirect.redirect_url).query)["hd"] == ["leerling.school.example"]
    plain = back_for(provider)[1]
    redirect = back.authorization_redirect(
        plain, "state-1", force_login=False, max_age=None, acr_values=(), acr_essential=False
    )
    assert "hd" not in parse_qs(urlsplit(redirect.redirect_url).query)


def test_max_age_without_a_forced_login_goes_as_it_is(provider: Provider) -> None:
    back, school, _ = back_for(provider)
    redirect = back.authorization_redirect(
        school, "state-1", force_login=False, max_age=300, acr_values=(), acr_essential=False
    )
    query = parse_qs(urlsplit(redirect.redirect_url).query)
    assert "prompt" not in query and query["max_age"] == ["300"]
    assert "fresh" not in redirect.kept
