"""Fuzz targets for a school's back-channel logout: the logout token check itself, with tokens
whose claims are anything yet whose signature holds (so every claim check is reached), and the
endpoint with any form. Whatever arrives: a reason code (`InvalidMessage`), never a crash, and
the endpoint answers below 500."""

from __future__ import annotations

import time
from typing import Any

from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID
from broker.core.errors import InvalidMessage
from broker.oidc.backchannel import LOGOUT_EVENT
from broker.oidc.rp_id_token import Expected
from broker.oidc.rp_logout_token import verify_logout_token
from tests.fuzz.conftest import FUZZ
from tests.fuzz.test_fuzz_parsers import below_500, json_values, jwt_like, texts

KEY = RSAKey.generate_key(2048, parameters={"kid": "school-key"})
ISSUER = "https://op.school.example"
NOW = time.time()
EXPECTED = Expected(ISSUER, "broker", "", ("RS256",), NOW, 60)
CLAIM_NAMES = ["iss", "aud", "iat", "exp", "jti", "events", "sid", "sub", "nonce", "typ"]
GOOD: dict[str, Any] = {
    "iss": ISSUER,
    "aud": "broker",
    "iat": int(NOW),
    "jti": "j1",
    "events": {LOGOUT_EVENT: {}},
    "sid": "s1",
}


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=5),
    drop=st.sets(st.sampled_from(CLAIM_NAMES), max_size=3),
    typ=st.one_of(
        st.none(), texts, st.sampled_from(["logout+jwt", "JWT", "application/logout+jwt"])
    ),
)
@example(changes={}, drop=set(), typ="logout+jwt")
@example(changes={"iat": float("inf")}, drop=set(), typ=None)
@example(changes={"events": {LOGOUT_EVENT: "x"}}, drop=set(), typ=None)
def test_signed_logout_token_claims(
    changes: dict[str, Any], drop: set[str], typ: str | None
) -> None:
    claims = {k: v for k, v in {**GOOD, **changes}.items() if k not in drop}
    header = {"alg": "RS256", "kid": "school-key"}
    if typ is not None:
        header["typ"] = typ
    try:
        token = jwt.encode(header, claims, KEY, algorithms=["RS256"])
    except (ValueError, TypeError):
        return  # not JSON at all (an infinite float): no school can send it either
    try:
        verified = verify_logout_token(token, lambda kid, refetch: (KEY,), EXPECTED)
    except InvalidMessage as refusal:
        assert refusal.code
        return
    assert verified.sid == claims["sid"] and "nonce" not in claims


@FUZZ
@given(token=st.one_of(texts, jwt_like()))
def test_logout_token_parsing(token: str) -> None:
    try:
        verify_logout_token(token, lambda kid, refetch: (KEY,), EXPECTED)
    except InvalidMessage:
        pass


@FUZZ
@given(
    school=st.one_of(st.just(DEMO_OIDC_SCHOOL_ID), texts.filter(lambda s: "/" not in s and s)),
    tokens=st.lists(st.one_of(texts, jwt_like()), max_size=3),
    extra=st.dictionaries(texts, texts, max_size=2),
)
def test_school_backchannel_endpoint(
    client: FlaskClient, school: str, tokens: list[str], extra: dict[str, str]
) -> None:
    data: dict[str, Any] = {**extra, "logout_token": tokens}
    response = client.post(f"/oidc/rp/backchannel-logout/{school}", data=data)
    below_500(response)
    if response.status_code != 404:  # a school id Flask's router does not match
        assert response.status_code in (200, 400, 503), response.status_code
        assert response.headers["Cache-Control"] == "no-store"
