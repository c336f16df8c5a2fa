"""OpenID Connect logout, piece by piece: registration checks, end_session checks, the logout
token (checked again with PyJWT), and the school channel without an end_session_endpoint."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt as jose_jwt

from broker.core.key_schedule import KeyChoice, KeyFiles, KeyGeneration, choose
from broker.core.model import (
    ClientAuthMethod,
    OidcClient,
    OidcUpstream,
    Protocol,
    School,
    Service,
)
from broker.login.logout import BACK, UNSUPPORTED, Initiator, LogoutRun
from broker.login.logout_run import FAILED
from broker.login.participants import Participant
from broker.oidc.backchannel import (
    LOGOUT_EVENT,
    BackChannelLogout,
    LogoutSubject,
    LogoutTokens,
)
from broker.oidc.end_session import EndSessionChecks, LogoutRequestRefused
from broker.oidc.logout_channel import OidcSchoolChannel, OidcServiceChannel
from broker.oidc.registration import InvalidRegistration, logout_problems, new_client
from broker.oidc.rp_discovery import ProviderMetadata
from broker.oidc.signing_keys import SigningKeys

ISSUER = "https://broker.example"
TARGET = "https://lms.example/logged-out"


def _pem(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class _Keys:
    """A key set of given OIDC keys (RS256), the first one signing, every one published."""

    def __init__(self, *rsa: Path) -> None:
        generations = [
            KeyGeneration(n, KeyFiles(rsa[0], rsa[0], oidc_rsa=path), 0.0, float(-n))
            for n, path in enumerate(rsa)
        ]
        self.choice = choose(generations, time.time())

    def current(self) -> KeyChoice:
        return self.choice

    def now(self) -> float:
        return time.time()


def _signing_keys(*rsa: Path) -> SigningKeys:
    return SigningKeys(_Keys(*rsa))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return _signing_keys(_pem(tmp_path_factory.mktemp("k") / "rsa.pem"))


def _client(**logout: Any) -> OidcClient:
    client, _ = new_client(
        ("https://lms.example/callback",), ClientAuthMethod.SECRET_BASIC, **logout
    )
    return client


LMS = Service(
    "lms",
    "LMS",
    "lms",
    None,
    protocol=Protocol.OIDC,
    oidc=_client(
        post_logout_redirect_uris=(TARGET,), backchannel_logout_uri="https://lms.example/bcl"
    ),
)
QUIET = Service("quiet", "Quiet", "quiet", None, protocol=Protocol.OIDC, oidc=_client())
# Written into the registry past intake (a direct database write): plain http off loopback.
PLANTED_TARGET = "http://planted.example/logged-out"
PLANTED = Service(
    "planted",
    "Planted",
    "planted",
    None,
    protocol=Protocol.OIDC,
    oidc=replace(_client(), post_logout_redirect_uris=(TARGET, PLANTED_TARGET)),
)
SCHOOL = School(
    "99ZZ00",
    "OIDC school",
    "https://op.example",
    "sub",
    oidc=OidcUpstream("https://op.example", "broker", "secret"),
)


class Registry:
    def service(self, service_id: str) -> Service | None:
        return {"lms": LMS, "quiet": QUIET, "planted": PLANTED}.get(service_id)

    def service_by_entity_id(self, entity_id: str) -> Service | None:
        return self.service(entity_id)

    def school(self, school_id: str) -> School | None:
        return SCHOOL if school_id == SCHOOL.id else None


def _id_token(keys: SigningKeys, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ["lms"],
        "azp": "lms",
        "sub": "a" * 64,
        "sid": "_sid",
        "iat": now - 7200,
        "exp": now - 3600,  # expired: still a good hint
        **overrides,
    }
    key = keys.key_for("RS256")
    return jose_jwt.encode({"alg": "RS256", "kid": str(key.kid)}, claims, key)


def _check(keys: SigningKeys, **params: str) -> Any:
    checks = EndSessionChecks(ISSUER, keys, Registry())  # type: ignore[arg-type]
    return checks.check({name: [value] for name, value in params.items()})


# -- registration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://lms.example/logged-out",  # plain http off loopback
        "https://lms.example/logged-out#top",  # fragment
        "https://lms.example/*",
        "https://user:pw@lms.example/x",
        "",
    ],
)
def test_a_bad_logout_uri_is_refused(uri: str) -> None:
    assert logout_problems((uri,), None)
    assert logout_problems((), uri)
    with pytest.raises(InvalidRegistration):
        _client(backchannel_logout_uri=uri)


def test_https_and_loopback_logout_uris_are_accepted() -> None:
    assert logout_problems((TARGET, "http://127.0.0.1:8080/out"), "http://localhost:9/bcl") == []
    assert logout_problems((TARGET, TARGET), None) == [
        ("post_logout_redirect_uris", "a post-logout redirect URI is listed twice")
    ]


# -- end_session checks -------------------------------------------------------------------------


def test_an_expired_hint_names_client_session_and_student(keys: SigningKeys) -> None:
    checked = _check(
        keys, id_token_hint=_id_token(keys), post_logout_redirect_uri=TARGET, state="s"
    )
    assert checked.client == LMS and checked.hinted
    assert (checked.sid, checked.sub) == ("_sid", "a" * 64)
    assert checked.answer() == {"post_logout_redirect_uri": TARGET, "state": "s"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://other.example"},
        {"sid": 7},
        {"events": {LOGOUT_EVENT: {}}},
        {"aud": ["unknown-client"], "azp": "unknown-client"},
    ],
)
def test_a_bad_hint_is_refused(keys: SigningKeys, overrides: dict[str, Any]) -> None:
    token = _id_token(keys, **overrides)
    with pytest.raises(LogoutRequestRefused):
        _check(keys, id_token_hint=token)


def test_a_hint_signed_elsewhere_or_garbled_is_refused(keys: SigningKeys, tmp_path: Path) -> None:
    other = _signing_keys(_pem(tmp_path / "other.pem"))
    for token in (_id_token(other), "a.b.c", "x" * 20000, _id_token(keys)[:-4] + "AAAA"):
        with pytest.raises(LogoutRequestRefused):
            _check(keys, id_token_hint=token)


def test_post_logout_redirect_uri_must_be_registered_and_the_client_known(
    keys: SigningKeys,
) -> None:
    hint = _id_token(keys)
    for target in (TARGET + "/", "https://lms.example/callback", "https://evil.example/"):
        with pytest.raises(LogoutRequestRefused) as refused:
            _check(keys, id_token_hint=hint, post_logout_redirect_uri=target)
        assert refused.value.code == "logout_unregistered_redirect"
    with pytest.raises(LogoutRequestRefused) as refused:
        _check(keys, post_logout_redirect_uri=TARGET)
    assert refused.value.code == "logout_unknown_client"
    assert _check(keys, client_id="lms", post_logout_redirect_uri=TARGET).client == LMS


def test_a_registered_post_logout_redirect_uri_intake_would_refuse_is_no_target(
    keys: SigningKeys,
) -> None:
    """As an authorize request's redirect_uri (grants.check_redirect_uri): a stored URI that
    intake's rule refuses now is refused at use, with the unregistered URI's page."""
    with pytest.raises(LogoutRequestRefused) as refused:
        _check(keys, client_id="planted", post_logout_redirect_uri=PLANTED_TARGET)
    assert refused.value.code == "logout_unregistered_redirect"
    assert _check(keys, client_id="planted", post_logout_redirect_uri=TARGET).client == PLANTED


def test_a_hint_signed_before_a_key_rotation_still_counts(tmp_path: Path) -> None:
    """The provider signs with its newest key and still publishes the previous one: a
    platform's ID token from before the rotation is a good hint while that key is published."""
    old_key, new_key = _pem(tmp_path / "old.pem"), _pem(tmp_path / "new.pem")
    before = _signing_keys(old_key)
    after = _signing_keys(new_key, old_key)
    assert after.key_for("RS256").kid != before.key_for("RS256").kid
    assert _check(after, id_token_hint=_id_token(before)).hinted


def test_client_id_must_agree_with_the_hint(keys: SigningKeys) -> None:
    with pytest.raises(LogoutRequestRefused) as refused:
        _check(keys, id_token_hint=_id_token(keys), client_id="quiet")
    assert refused.value.code == "logout_client_mismatch"


def test_a_parameter_given_twice_is_refused(keys: SigningKeys) -> None:
    checks = EndSessionChecks(ISSUER, keys, Registry())  # type: ignore[arg-type]
    with pytest.raises(LogoutRequestRefused):
        checks.check({"state": ["a", "b"]})


# -- logout token ------------------------------------------------------------------------------


def test_the_logout_token_passes_pyjwt(keys: SigningKeys) -> None:
    tokens = LogoutTokens(ISSUER, keys, clock=lambda: 1_800_000_000.0)
    token = tokens.issue(LMS.oidc or _client(), LogoutSubject("lms", "a" * 64, "_sid"))
    public = keys.key_for("RS256").as_dict(private=False)
    claims = jwt.decode(
        token,
        jwt.PyJWK(public).key,
        algorithms=["RS256"],
        audience="lms",
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert (claims["sub"], claims["sid"]) == ("a" * 64, "_sid")
    assert claims["iat"] == 1_800_000_000 and claims["exp"] > claims["iat"]
    assert claims["jti"] and "nonce" not in claims
    again = tokens.issue(LMS.oidc or _client(), LogoutSubject("lms", "a" * 64, "_sid"))
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


# -- channels ----------------------------------------------------------------------------------


def _run(initiator: Initiator, upstream: dict[str, str] | None = None) -> LogoutRun:
    return LogoutRun(
        run_id="run",
        created=0.0,
        deadline=5.0,
        initiator=initiator,
        targets=(),
        school_id=SCHOOL.id,
        school_protocol="oidc",
        upstream=upstream or {},
        school_status="pending",
    )


def test_service_channel_modes_and_answer(keys: SigningKeys) -> None:
    channel = OidcServiceChannel(Registry(), None)  # type: ignore[arg-type]
    lms = Participant("lms", "oidc", {"sub": "s", "sid": "_sid", "client_id": "lms"})
    assert channel.mode(lms) == UNSUPPORTED  # no keys, no logout tokens
    assert channel.back_channel(lms, 1.0) == FAILED
    answer = channel.answer_initiator(
        _run(
            Initiator(
                "service", "oidc", "lms", {"post_logout_redirect_uri": TARGET, "state": "x y"}
            )
        )
    )
    assert answer is not None and answer.url == TARGET + "?state=x+y" and answer.fields is None
    # A URI no longer registered gets no redirect.
    gone = _run(Initiator("service", "oidc", "quiet", {"post_logout_redirect_uri": TARGET}))
    assert channel.answer_initiator(gone) is None


def test_service_channel_uses_the_back_channel_only_where_registered(keys: SigningKeys) -> None:
    channel = OidcServiceChannel(
        Registry(),  # type: ignore[arg-type]
        BackChannelLogout(LogoutTokens(ISSUER, keys), allow_loopback=False),
    )
    assert channel.mode(Participant("lms", "oidc")) == BACK
    assert channel.mode(Participant("quiet", "oidc")) == UNSUPPORTED


class _Directory:
    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint

    def metadata(self, issuer: str) -> ProviderMetadata:
        return ProviderMetadata(
            issuer,
            "https://op.example/a",
            "https://op.example/t",
            "https://op.example/j",
            None,
            (),
            (),
            (),
            False,
            end_session_endpoint=self.endpoint,
        )


class _Back:
    def __init__(self, endpoint: str | None) -> None:
        self.directory = _Directory(endpoint)


class _Settings:
    def oidc_logout_callback_url(self, school_id: str) -> str:
        return f"{ISSUER}/oidc/rp/logout/{school_id}"


def test_school_without_end_session_endpoint_is_not_told() -> None:
    run = _run(Initiator("student"), {"id_token": "t.o.k"})
    none = OidcSchoolChannel(_Settings(), Registry(), _Back(None))  # type: ignore[arg-type]
    assert none.request(run) is None
    told = OidcSchoolChannel(_Settings(), Registry(), _Back("https://op.example/logout"))  # type: ignore[arg-type]
    message = told.request(run)
    assert message is not None and message.url.startswith("https://op.example/logout?")
    assert "id_token_hint=t.o.k" in message.url and "state=run" in message.url
    # No ID token kept for the session (an SSO session from before logout): not told.
    assert told.request(_run(Initiator("student"))) is None


def test_a_broker_off_loopback_never_posts_to_a_loopback_address(keys: SigningKeys) -> None:
    """The registration rule lets http://127.0.0.1 through (for demos and tests); the outbound
    rule only lets a broker that itself runs on loopback call it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}/bcl"
    client = _client(backchannel_logout_uri=uri)
    sender = BackChannelLogout(LogoutTokens(ISSUER, keys), allow_loopback=False)
    try:
        assert sender.notify("lms", client, LogoutSubject("lms", "s", "_sid"), 2.0) == FAILED
        with pytest.raises(TimeoutError):
            listener.accept()  # never connected to
    finally:
        listener.close()
