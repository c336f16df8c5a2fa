"""Authorization codes of the OpenID provider (oidc/grants.py): what a client's registration
keeps of the scope it asked for, and who may redeem, burn or revoke a code."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749.errors import InvalidRequestError

from broker.core.model import ClientAuthMethod, Protocol, Service
from broker.oidc.authlib_server import PlainRequest
from broker.oidc.grants import (
    CodeGrant,
    Grantee,
    IssuedCode,
    RegisteredClient,
    TokenVault,
    access_token_for,
    random_token,
)
from broker.oidc.registration import new_client
from tests.unit.test_oidc_access_tokens import CallLog, grantee, store, vault

__all__ = ["store", "vault"]  # the fixtures, shared with test_oidc_access_tokens.py

REDIRECT_URI = "https://rp.example/cb"


def client(client_id: str = "rp") -> RegisteredClient:
    registration, _ = new_client((REDIRECT_URI,), ClientAuthMethod.SECRET_BASIC)
    service = Service(
        client_id, client_id, client_id, "leermiddelen", protocol=Protocol.OIDC, oidc=registration
    )
    return RegisteredClient(service)


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        (None, ""),  # no scope parameter: authlib hands in None (once an AttributeError, a 500)
        ("", ""),
        ("openid profile offline_access", "openid profile"),
    ],
)
def test_the_allowed_scope_keeps_the_known_values_and_none_of_no_scope(
    asked: str | None, kept: str
) -> None:
    assert client().get_allowed_scope(asked) == kept


def issued_code(
    vault: TokenVault, client_id: str = "rp", who: Grantee | None = None
) -> tuple[str, Grantee]:
    who = who or grantee()
    code = random_token(48)
    vault.put_code(code, IssuedCode(client_id, REDIRECT_URI, "openid", None, None, None, who))
    return code, who


def test_another_client_finds_no_code_and_changes_nothing(
    vault: TokenVault, store: CallLog
) -> None:
    code, who = issued_code(vault)
    store.calls.clear()
    for _ in range(2):  # its "replay" too
        assert vault.take_code(code, "thief") is None
    # It found no code, and no family mark: nothing taken, nothing written. The take reads the
    # store's history mark in the same round trip (test_oidc_rollback.py).
    assert [name for name, _ in store.calls] == ["batch", "get"] * 2
    redeemed = vault.take_code(code, "rp")
    assert redeemed is not None and redeemed.grantee.sub == who.sub


def test_a_code_redeemed_is_one_take_whoever_presents_it(vault: TokenVault, store: CallLog) -> None:
    code, _ = issued_code(vault)
    store.calls.clear()
    assert vault.take_code(code, "rp") is not None
    assert len(store.calls) == 1
    name, keys = store.calls[0]
    assert name == "batch" and keys[0].startswith("take oidc-code:")
    assert keys[1:] == ["get oidc:history-since"]


def test_a_reuse_by_its_own_client_still_revokes_the_family(vault: TokenVault) -> None:
    code, who = issued_code(vault)
    assert vault.take_code(code, "thief") is None
    assert vault.take_code(code, "rp") is not None
    access = access_token_for(who)
    vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", who)
    assert vault.access(access) is not None
    assert vault.take_code(code, "thief") is None
    assert vault.access(access) is not None  # another client's try revokes nothing
    assert vault.take_code(code, "rp") is None
    assert vault.access(access) is None


def test_a_client_id_and_code_never_run_together_into_another_pair(vault: TokenVault) -> None:
    code, _ = issued_code(vault, client_id="rp")
    assert vault.take_code(code[1:], "rp" + code[0]) is None
    assert vault.take_code(code, "rp") is not None


def _request(**params: list[str]) -> PlainRequest:
    return PlainRequest("GET", "https://broker.example/oidc/authorize", {}, params)


def test_a_repeated_parameter_is_refused_at_the_redirect_uri_once_that_is_checked() -> None:
    """Before anything reads a first value (authlib's prompt=none answer, PKCE)."""
    request = _request(redirect_uri=[REDIRECT_URI], prompt=["none", "login"])
    with pytest.raises(InvalidRequestError) as refused:
        CodeGrant.validate_authorization_redirect_uri(request, client())
    assert refused.value.redirect_uri == REDIRECT_URI
    assert refused.value.description == "A parameter is given more than once."
    single = _request(redirect_uri=[REDIRECT_URI], prompt=["none"])
    assert CodeGrant.validate_authorization_redirect_uri(single, client()) == REDIRECT_URI


def test_an_unregistered_redirect_uri_is_refused_first_never_answered_at() -> None:
    request = _request(redirect_uri=["https://evil.example/cb"], prompt=["none", "login"])
    with pytest.raises(InvalidRequestError) as refused:
        CodeGrant.validate_authorization_redirect_uri(request, client())
    assert refused.value.redirect_uri is None
