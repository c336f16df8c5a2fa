"""A Redis rolled back under the OpenID provider (oidc/grants.py `new_history_since`): a code
or token issued before the store found a new history is refused, as a wipe would have lost it;
one issued after works, and so does a code of an SSO login older than the rollback."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from broker.oidc.grants import (
    HISTORY_SINCE_KEY,
    Grantee,
    TokenVault,
    access_token_for,
    new_history_since,
)
from tests.unit.test_oidc_access_tokens import CallLog, grantee, store, vault
from tests.unit.test_oidc_codes import issued_code

__all__ = ["store", "vault"]  # the fixtures, shared with test_oidc_access_tokens.py


def put_code(vault: TokenVault, who: Grantee) -> str:
    code, _ = issued_code(vault, who=who)
    return code


def rolled_back(store: CallLog) -> None:
    """What the store writes on finding a new history (the wiring's `on_new_history`)."""
    store.batch([new_history_since(time.time())])
    store.calls.clear()


def tokens(vault: TokenVault, who: Grantee) -> tuple[str, str]:
    access, refresh = access_token_for(who), secrets.token_urlsafe(32)
    token = {"access_token": access, "refresh_token": refresh, "scope": "openid"}
    vault.put_tokens(token, "rp", who)
    return access, refresh


def test_a_code_issued_before_a_new_history_is_refused_in_the_one_round_trip(
    vault: TokenVault, store: CallLog
) -> None:
    who = grantee()
    code = put_code(vault, who)
    rolled_back(store)
    assert vault.take_code(code, "rp") is None
    # The take and the history mark in one batch, and nothing revoked: the family's tokens of
    # before are refused by the same rule.
    assert [name for name, _ in store.calls] == ["batch"]
    assert store.get(f"oidc:revoked:{who.family}") is None


def test_a_code_issued_after_it_is_redeemed_even_for_an_older_sso_login(
    vault: TokenVault, store: CallLog
) -> None:
    rolled_back(store)
    time.sleep(0.002)
    # An SSO login from before the rollback: its auth_time is older, its code new.
    who = replace(grantee(), auth_time=int(time.time()) - 3600)
    redeemed = vault.take_code(put_code(vault, who), "rp")
    assert redeemed is not None and redeemed.grantee.auth_time == who.auth_time


def test_a_refresh_token_rotated_before_is_refused_one_rotated_after_works(
    vault: TokenVault, store: CallLog
) -> None:
    who = grantee()
    _, before = tokens(vault, who)
    rolled_back(store)
    assert vault.peek_refresh(before) is None
    assert [name for name, _ in store.calls] == ["get", "batch"]  # as many round trips as before
    time.sleep(0.002)
    _, after = tokens(vault, who)
    found = vault.peek_refresh(after)
    assert found is not None and found.grantee.family == who.family
    assert vault.take_refresh(after)


def test_an_access_token_issued_before_is_refused_in_the_same_batch(
    vault: TokenVault, store: CallLog
) -> None:
    """Not single-use, but a rollback may have lost its family's revocation mark (a logout,
    a reuse): refused like the refresh token it came with, as a wipe would have lost it."""
    who = grantee()
    access, _ = tokens(vault, who)
    assert vault.access(access) is not None
    rolled_back(store)
    assert vault.access(access) is None
    assert [name for name, _ in store.calls] == ["batch"]
    time.sleep(0.002)
    again, _ = tokens(vault, who)
    assert vault.access(again) is not None


def test_a_record_without_an_issue_time_is_taken_after_a_new_history(
    vault: TokenVault, store: CallLog
) -> None:
    """Made by a worker of the version before (COMPAT(oidc-issued)): the upgrade itself notes a
    new history, and refusing these would log every platform's students out at the upgrade."""
    who = grantee()
    old = secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")[:43]
    payload = {"client_id": "rp", "scope": "openid", **who.to_payload()}
    vault.sealed.put(old.encode(), "oidc-access", old, payload, 300)
    assert vault.access(old) is not None
    rolled_back(store)
    assert vault.access(old) is not None


def test_no_history_mark_refuses_nothing(vault: TokenVault, store: CallLog) -> None:
    who = grantee()
    access, refresh = tokens(vault, who)
    assert store.get(HISTORY_SINCE_KEY) is None
    assert vault.access(access) is not None
    assert vault.peek_refresh(refresh) is not None
    assert vault.take_code(put_code(vault, who), "rp") is not None
