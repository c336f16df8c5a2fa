"""The provider's OAuth error answers (broker/oidc/oauth_errors.py): sentences, never a value the
client sent, and a failed client authentication that names the registered method."""

from __future__ import annotations

import base64
import json

import pytest
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from broker.core import errors as e
from broker.oidc import oauth_errors


def test_a_missing_response_type_is_invalid_request() -> None:
    error = oauth_errors.readable(UnsupportedResponseTypeError(None), {})
    assert error.error == "invalid_request"
    assert error.description == "The response_type parameter is missing; use response_type=code."


@pytest.mark.parametrize("data", [{}, {"grant_type": ""}, {"code": "x"}])
def test_a_missing_grant_type_is_invalid_request(data: dict[str, str]) -> None:
    error = oauth_errors.readable(UnsupportedGrantTypeError(data.get("grant_type")), data)
    assert error.error == "invalid_request"
    assert error.description == (
        "The grant_type parameter is missing; use grant_type=authorization_code or "
        "grant_type=refresh_token."
    )


def test_an_unknown_grant_type_stays_unsupported() -> None:
    raw = UnsupportedGrantTypeError("password")
    error = oauth_errors.readable(raw, {"grant_type": "password"})
    assert error.error == "unsupported_grant_type"
    assert "password" not in error.description


def test_an_unsupported_response_type_is_not_echoed() -> None:
    # authlib puts the client's own value where the description goes.
    raw = UnsupportedResponseTypeError("The response type 'token' is not supported.", "token")
    error = oauth_errors.readable(raw, {"response_type": "token"})
    assert error.error == "unsupported_response_type"
    assert error.description == "This provider supports response_type=code only."


@pytest.mark.parametrize(
    "raw", [UnsupportedGrantTypeError("password"), InvalidGrantError(), InvalidClientError()]
)
def test_errors_without_a_description_get_one(raw: InvalidGrantError) -> None:
    described = oauth_errors.readable(raw, {}).description
    assert described[0].isupper() and described.endswith(".") and " " in described


def test_authlibs_sentences_end_with_a_full_stop() -> None:
    raw = InvalidGrantError("The client is not authorized to use 'grant_type=refresh_token'")
    assert oauth_errors.readable(raw, {}).description.endswith("'.")


@pytest.mark.parametrize(
    ("cause", "error"),
    [
        (e.InteractionRequired("x"), "interaction_required"),
        (e.AssuranceNotMet("x"), "unmet_authentication_requirements"),
        (e.StaleAuthentication("x"), "login_required"),
        (e.UnexpectedStudent("x"), "login_required"),
        (e.SchoolTimeout("x"), "temporarily_unavailable"),
        (e.RequiredAttributeMissing("s", ("email",)), "access_denied"),
        (e.PolicyRefusal("x"), "access_denied"),
        (e.UpstreamFailure("x", code="upstream_status"), "access_denied"),
    ],
)
def test_refusals_after_the_login_started(cause: e.BrokerError, error: str) -> None:
    code, description = oauth_errors.refusal(cause)
    assert code == error
    assert description.endswith(f"(reason: {cause.code})")
    assert description[0].isupper()


def _basic(user: str, password: str = "secret") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_which_method_and_client_a_token_request_tried() -> None:
    assert oauth_errors.auth_method_used(_basic("a"), {}) == "client_secret_basic"
    assert oauth_errors.auth_method_used(None, {"client_secret": "s"}) == "client_secret_post"
    assert oauth_errors.auth_method_used(None, {"client_assertion": "x.y.z"}) == "private_key_jwt"
    assert oauth_errors.auth_method_used(None, {"client_id": "a"}) == "none"
    assert oauth_errors.claimed_client_id(_basic("rp-1"), {}) == "rp-1"
    assert oauth_errors.claimed_client_id(None, {"client_id": "rp-2"}) == "rp-2"
    body = base64.urlsafe_b64encode(json.dumps({"sub": "rp-3"}).encode()).decode().rstrip("=")
    assertion = {"client_assertion": f"e30.{body}.sig"}
    assert oauth_errors.claimed_client_id(None, assertion) == "rp-3"
    for junk in ("Basic !!!", "Basic " + base64.b64encode(b"\xff\xfe").decode()):
        assert oauth_errors.claimed_client_id(junk, {}) is None
    assert oauth_errors.claimed_client_id(None, {"client_assertion": "a.!!!.c"}) is None
    assert oauth_errors.claimed_client_id(None, {}) is None
    # JSON nested deeper than the stack is no client id, not a crash.
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode().rstrip("=")
    assert oauth_errors.claimed_client_id(None, {"client_assertion": f"e30.{deep}.x"}) is None


def test_invalid_client_names_the_method_used_never_the_one_registered() -> None:
    other = oauth_errors.invalid_client_description("client_secret_post", "client_secret_basic")
    assert "used client_secret_basic" in other and "client_secret_post" not in other
    assert "not the method this client registered" in other
    same = oauth_errors.invalid_client_description("private_key_jwt", "private_key_jwt")
    assert same == "Client authentication failed: the private_key_jwt credentials do not hold."
    assert "no registered client" in oauth_errors.invalid_client_description(None, "none")
    assert oauth_errors.invalid_client_status("private_key_jwt") == 400
    assert oauth_errors.invalid_client_status("client_secret_post") == 401


def test_credentials_that_do_not_agree() -> None:
    """RFC 6749 2.3 and 5.2, RFC 7521 4.2: two methods, or a client_id naming another client
    than the credentials, are invalid_request; a client_id naming the same client is not."""
    body = base64.urlsafe_b64encode(json.dumps({"sub": "rp-3"}).encode()).decode().rstrip("=")
    assertion = f"e30.{body}.sig"
    mixed = oauth_errors.mixed_credentials
    two = mixed(_basic("rp-1"), {"client_secret": "s"})
    assert two is not None and two[0] == oauth_errors.TWO_METHODS
    assert "used client_secret_basic and client_secret_post" in two[1]
    assert oauth_errors.auth_methods_used(_basic("a"), {"client_assertion": assertion}) == [
        "client_secret_basic",
        "private_key_jwt",
    ]
    assert mixed(None, {"client_assertion": assertion, "client_secret": "s"}) is not None
    # Basic is what authlib authenticates by (its header split: any whitespace, leading
    # whitespace skipped, but only once the header holds a space), never a reading of our own.
    header = _basic("rp-1")
    for variant in (
        header,
        "\x0c" + header,
        "\x0b " + header,
        header.replace(" ", " \t"),
        header.replace(" ", "\t"),
        "basic" + header[5:],
    ):
        authlib_basic = extract_basic_authorization({"Authorization": variant}) != (None, None)
        assert (mixed(variant, {"client_secret": "s"}) is not None) == authlib_basic, variant
    for unreadable in ("Basic ", " "):  # authlib's split raises on these: never Basic here
        assert mixed(unreadable, {"client_secret": "s"}) is None
    other = mixed(_basic("rp-1"), {"client_id": "rp-2"})
    assert other is not None and other[0] == oauth_errors.TWO_CLIENTS
    assert "rp-1" not in other[1] and "rp-2" not in other[1]  # no value echoed
    assert mixed(None, {"client_assertion": assertion, "client_id": "rp-2"}) is not None
    # The same client twice, Basic form-encoded (RFC 6749 2.3.1) or not: one client.
    assert mixed(_basic("rp-1"), {"client_id": "rp-1"}) is None
    assert mixed(_basic("rp%2D1"), {"client_id": "rp-1"}) is None
    assert mixed(None, {"client_assertion": assertion, "client_id": "rp-3"}) is None
    # One method, or none; an empty parameter counts as not sent (RFC 6749 3.1).
    assert mixed(None, {"client_id": "rp-1", "client_secret": "s"}) is None
    assert mixed(None, {"client_id": "rp-1"}) is None
    assert mixed(_basic("rp-1"), {"client_secret": ""}) is None
    # Unreadable credentials are authlib's to refuse (invalid_client), not a conflict.
    basic_junk = "Basic " + base64.b64encode(b"\xff\xfe").decode()
    assert mixed(basic_junk, {"client_id": "rp-1"}) is None
