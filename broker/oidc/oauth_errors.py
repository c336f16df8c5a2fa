"""OAuth error answers a platform's developer can read: every `error` the provider sends
carries an `error_description` that is an English sentence (RFC 6749 4.1.2.1, 5.2: "human-
readable ASCII text"), never a bare parameter value or an error code repeated.

authlib leaves some errors without a description, and gives `unsupported_response_type` the
client's own `response_type` as its description; what it says well it keeps saying. A
description never quotes a value the client sent: RFC 6749 allows only %x20-21 / %x23-5B /
%x5D-7E there, and a value echoed back could break that or the redirect that carries it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from broker.core.errors import (
    AssuranceNotMet,
    BrokerError,
    FreshLoginIgnored,
    InteractionRequired,
    NoSchoolAvailable,
    PolicyRefusal,
    RequiredAttributeMissing,
    SchoolTimeout,
    StaleAuthentication,
    UnexpectedStudent,
    WentBack,
)


def repeated_parameters(params: Mapping[str, Sequence[str]]) -> str | None:
    """The invalid_request description for a request that gives a parameter more than once
    (RFC 6749 3.1, 3.2: parameters must not be included more than once), else None. Names
    only: a name the client sent could hold characters an error description must not."""
    repeated = [name for name, values in params.items() if len(values) > 1]
    if not repeated:
        return None
    return (
        "A parameter is given more than once."
        if len(repeated) == 1
        else "Parameters are given more than once."
    )


# What an error means at this provider, for errors that come without a description.
FALLBACK = {
    "invalid_request": "The request is missing a parameter, repeats one or has one that is not "
    "valid.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The code or refresh token is not valid: unknown, expired, used already, or "
    "issued to another client or redirect URI.",
    "unauthorized_client": "This client is not registered for this grant type.",
    "unsupported_grant_type": "This provider supports the authorization_code and refresh_token "
    "grant types only.",
    "unsupported_response_type": "This provider supports response_type=code only.",
    "invalid_scope": "The requested scope is not valid for this request.",
    "access_denied": "The login was refused.",
    "login_required": "The student has to sign in, and prompt=none does not allow asking them to.",
    "temporarily_unavailable": "The provider is briefly unavailable; try again in a few seconds.",
}
# authlib's own wording, where it says less than it could.
_REWORDED = {
    "Invalid 'prompt' parameter.": "prompt=none cannot be combined with other prompt values.",
}
NONE_PROMPT_SIGN_IN = "The student is not signed in, and prompt=none does not allow asking them to."
NONE_PROMPT_OTHER_STUDENT = (
    "Another student is signed in than the id_token_hint or the requested sub names, and "
    "prompt=none does not allow asking them to sign in."
)


# The "unsupported" errors authlib answers also when the parameter is missing: the parameter,
# and what the client hears then.
_MISSING = {
    "unsupported_response_type": (
        "response_type",
        "The response_type parameter is missing; use response_type=code.",
    ),
    "unsupported_grant_type": (
        "grant_type",
        "The grant_type parameter is missing; use grant_type=authorization_code or "
        "grant_type=refresh_token.",
    ),
}


def readable(error: OAuth2Error, data: Mapping[str, str]) -> OAuth2Error:
    """`error` with a sentence as its description; `data`: the request's parameters.

    A missing `response_type` or `grant_type` is `invalid_request` (RFC 6749 4.1.2.1, 5.2: a
    required parameter is missing), not `unsupported_response_type` or
    `unsupported_grant_type`, which authlib answers for any value it cannot use."""
    missing = _MISSING.get(error.error)
    if missing is not None and not data.get(missing[0]):
        error.error = "invalid_request"
        error.description = missing[1]
    elif error.error == "unsupported_response_type":
        error.description = FALLBACK["unsupported_response_type"]
    elif not error.description:
        error.description = FALLBACK.get(error.error, "The request was refused.")
    else:
        described = _REWORDED.get(error.description, error.description)
        # authlib ends some of its sentences without a full stop.
        error.description = described if described.endswith(".") else described + "."
    return error


# Refusals after the login started, by the cause's class (the first that matches): the OAuth
# error and what it means for the platform.
_REFUSALS: tuple[tuple[type[BrokerError], str, str], ...] = (
    (
        InteractionRequired,
        "interaction_required",
        "The student has to see the information notice first, which prompt=none does not allow.",
    ),
    (
        AssuranceNotMet,
        "unmet_authentication_requirements",
        "The school's login does not meet the required authentication level.",
    ),
    (
        FreshLoginIgnored,
        "login_required",
        "The school answered from an earlier login, not the fresh one prompt=login asks for.",
    ),
    (StaleAuthentication, "login_required", "The school's login is older than max_age allows."),
    (
        UnexpectedStudent,
        "login_required",
        "Another student signed in than the id_token_hint or the requested sub names.",
    ),
    # RFC 6749 4.1.2.1: the client may try again later.
    (
        SchoolTimeout,
        "temporarily_unavailable",
        "The student's school did not answer in time; try again later.",
    ),
    (
        RequiredAttributeMissing,
        "access_denied",
        "The student's school does not release an attribute this client declared as required.",
    ),
    (PolicyRefusal, "access_denied", "The student's school does not allow this login."),
    # The student went back from a page of the broker's (web/back_to_platform.py): OIDC Core
    # 3.1.2.6 has no code of its own for either, so RFC 6749 4.1.2.1's access_denied, with why.
    (
        NoSchoolAvailable,
        "access_denied",
        "The student's school cannot sign students in here: it is not set up, or not reachable.",
    ),
    (WentBack, "access_denied", "The student went back without choosing a school."),
)


def refusal(cause: BrokerError) -> tuple[str, str]:
    """The OAuth error (code, description) for a login the broker refused after it started: what
    the platform hears through the student's page, or at once under prompt=none."""
    error, sentence = "access_denied", "The student's school did not complete the login."
    for kind, code, described in _REFUSALS:
        if isinstance(cause, kind):
            error, sentence = code, described
            break
    return error, f"{sentence} (reason: {cause.code})"


def _is_basic(authorization: str | None) -> bool:
    """The Basic scheme exactly as authlib finds it (`rfc6749.util.extract_basic_authorization`:
    the header split on whitespace, leading whitespace skipped), so a header authlib
    authenticates by is never missed here (a leading form feed once was)."""
    if authorization is None or " " not in authorization:
        return False
    parts = authorization.split(None, 1)
    return len(parts) == 2 and parts[0].lower() == "basic"


def auth_methods_used(authorization: str | None, form: Mapping[str, str]) -> list[str]:
    """Every client authentication method a token request presents (RFC 7591 names), in the
    order authlib tries them: the Authorization header's Basic credentials, a client assertion,
    a `client_secret` in the body. A parameter sent empty counts as not sent (RFC 6749 3.1)."""
    presented = {
        "client_secret_basic": _is_basic(authorization),
        "private_key_jwt": bool(form.get("client_assertion")),
        "client_secret_post": bool(form.get("client_secret")),
    }
    return [method for method, present in presented.items() if present]


def auth_method_used(authorization: str | None, form: Mapping[str, str]) -> str:
    """The client authentication method a token request tried (RFC 7591 names)."""
    return next(iter(auth_methods_used(authorization, form)), "none")


def _basic_client_id(authorization: str) -> str | None:
    """The client id of Basic credentials as authlib reads them (form-decoded, RFC 6749
    2.3.1), so the one compared is the one authenticated; None when the header cannot be read
    (authlib then refuses it: TokenEndpoints.token)."""
    try:
        client_id, _ = extract_basic_authorization({"Authorization": authorization})
    except ValueError:  # UnicodeDecodeError: not UTF-8
        return None
    return client_id if isinstance(client_id, str) and client_id else None


def _assertion_subject(form: Mapping[str, str]) -> str | None:
    """The `sub` of a client assertion, unverified, or None when it cannot be read."""
    parts = form.get("client_assertion", "").split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the interpreter's stack (a crafted "[[[…").
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


def claimed_client_id(authorization: str | None, form: Mapping[str, str]) -> str | None:
    """The client id a token request names (Basic user, `client_id`, or the `sub` of its client
    assertion, unverified): only to say which method that client registered, never to trust."""
    if _is_basic(authorization):
        return _basic_client_id(authorization or "")
    if form.get("client_id"):
        return form["client_id"]
    return _assertion_subject(form)


# The reason codes of `mixed_credentials` (log lines), and what the client hears.
TWO_METHODS = "client_auth_methods_mixed"
TWO_CLIENTS = "client_id_contradicts_credentials"


def mixed_credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason code, error description) for a token request whose client credentials do not
    agree, else None; refused with invalid_request before anything is authenticated or used.

    RFC 6749 2.3: "The client MUST NOT use more than one authentication method in each
    request"; 5.2 names a request that "includes multiple credentials, utilizes more than one
    mechanism for authenticating the client" invalid_request. A `client_id` beside Basic
    credentials or a client assertion may be sent, but must name the same client (RFC 7521
    4.2); OIDC Registration's `token_endpoint_auth_method` is one method per client. The
    description names the methods the request used, never the one the client registered
    (`invalid_client_description`)."""
    used = auth_methods_used(authorization, form)
    if len(used) > 1:
        return TWO_METHODS, (
            f"Use one client authentication method per request (RFC 6749 2.3): this request "
            f"used {' and '.join(used)}. Send only the method your client is registered for "
            "(the publisher portal shows it)."
        )
    named = form.get("client_id")
    if not named or not used or used[0] == "client_secret_post":
        return None
    if used[0] == "client_secret_basic":
        other, source = _basic_client_id(authorization or ""), "the Basic credentials"
    else:
        other, source = _assertion_subject(form), "the client assertion's sub"
    if other is None or other == named:
        return None  # unreadable credentials: authlib refuses them as invalid_client
    return TWO_CLIENTS, (
        f"The client_id parameter names another client than {source} (RFC 6749 2.3, RFC 7521 "
        "4.2): send the same client id in both, or leave client_id out."
    )


def invalid_client_status(used: str) -> int:
    """401, with a Basic challenge: RFC 6749 5.2 allows it for any failed client authentication
    and requires it when the client used the Authorization header. 400 for a private_key_jwt
    assertion, which uses no HTTP authentication scheme a challenge could name."""
    return 400 if used == "private_key_jwt" else 401


def invalid_client_description(registered: str | None, used: str) -> str:
    """Why client authentication failed: the method the request used, and whether that is the
    one the client registered. Which method a client did register is not told to whoever asks
    (the publisher portal shows it to the publisher); discovery lists what any client may
    register."""
    if registered is None:
        return "Client authentication failed: no registered client is named."
    if used != registered:
        return (
            f"Client authentication failed: the request used {used}, which is not the method "
            "this client registered (the publisher portal shows it)."
        )
    return f"Client authentication failed: the {used} credentials do not hold."


def explain_invalid_client(
    error: OAuth2Error,
    authorization: str | None,
    form: Mapping[str, str],
    registered_method: Callable[[str], str | None],
) -> None:
    """authlib's invalid_client made readable: its generic failure ("cannot authenticate with
    methods", listing every method the grant allows) names the one the client registered, and
    the status follows `invalid_client_status`. `registered_method`: a client id's method."""
    used = auth_method_used(authorization, form)
    if error.description.startswith("The client cannot authenticate with methods"):
        claimed = claimed_client_id(authorization, form)
        registered = registered_method(claimed) if claimed else None
        error.description = invalid_client_description(registered, used)
    error.status_code = invalid_client_status(used)


def invalid_client_answer(
    description: str, status: int
) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """An invalid_client answer the provider makes itself (authlib never saw the failure); with
    401, the Basic challenge RFC 6749 5.2 asks for, as authlib's InvalidClientError makes it."""
    headers = []
    if status == 401:
        challenge = f'Basic error="invalid_client", error_description="{description}"'
        headers.append(("WWW-Authenticate", challenge))
    return status, {"error": "invalid_client", "error_description": description}, headers


def invalid_request(description: str) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """An invalid_request answer the provider makes itself, before authlib reads the request
    (400, no challenge: RFC 6749 5.2 asks for 401 with invalid_client only)."""
    return 400, {"error": "invalid_request", "error_description": description}, []
