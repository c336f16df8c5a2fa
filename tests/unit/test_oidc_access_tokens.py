"""Access tokens of the OpenID provider (oidc/grants.py): a token names its family, so userinfo
reads the token's record and the family's revocation mark in one store round trip, and a
revoked family's access token stops working at once (RFC 6749 10.5, RFC 9700 4.14)."""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Sequence

import pytest
from authlib.oauth2.rfc6749.errors import InvalidGrantError

from broker.core.ports import StoreOp, StoreReply
from broker.oidc.grants import Grantee, IssuedCode, TokenVault, access_token_for
from broker.store.memory import MemoryStore

TOKEN_FORM = re.compile(r"^(?P<family>[A-Za-z0-9_-]{22})\.[A-Za-z0-9]{43}$")
SUB = "a" * 64


class CallLog(MemoryStore):
    """A memory store that notes each call (one call is one round trip on Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[str]]] = []

    def get(self, key: str) -> bytes | None:
        self.calls.append(("get", [key]))
        return super().get(key)

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self.calls.append(("put", [key]))
        super().put(key, value, ttl_seconds)

    def take(self, key: str) -> bytes | None:
        self.calls.append(("take", [key]))
        return super().take(key)

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.calls.append(("batch", [f"{op.operation} {op.key}" for op in operations]))
        return super().batch(operations)


@pytest.fixture
def store() -> CallLog:
    return CallLog()


@pytest.fixture
def vault(store: CallLog) -> TokenVault:
    return TokenVault(store, code_ttl=60, access_ttl=300, refresh_ttl=3600)


def grantee() -> Grantee:
    # As provider.respond makes it: a family of 22 URL-safe characters.
    return Grantee(
        SUB,
        {"given_name": "Sanne"},
        1,
        None,
        "_sid",
        secrets.token_urlsafe(16),
        int(time.time()) + 3600,
    )


def issue(vault: TokenVault, who: Grantee, access: str) -> str:
    """A code issued and redeemed, and `access` stored for it: the code, to replay it."""
    code = secrets.token_urlsafe(36)
    vault.put_code(code, IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, who))
    assert vault.take_code(code, "rp") is not None
    vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", who)
    return code


def test_an_access_token_names_its_family_before_256_random_bits() -> None:
    who = grantee()
    token = access_token_for(who)
    form = TOKEN_FORM.match(token)
    assert form is not None and form["family"] == who.family
    assert set(token.partition(".")[2]) <= set(string.ascii_letters + string.digits)
    assert access_token_for(who) != token


@pytest.mark.parametrize("family", ["", "a.b", "x" * 65, "fam ily"])
def test_a_family_id_a_token_could_not_name_is_refused_at_issue(family: str) -> None:
    who = grantee()
    who.family = family
    with pytest.raises(ValueError, match="family id"):
        access_token_for(who)


def test_userinfo_reads_token_and_revocation_mark_in_one_round_trip(
    vault: TokenVault, store: CallLog
) -> None:
    who = grantee()
    token = access_token_for(who)
    issue(vault, who, token)
    store.calls.clear()
    found = vault.access(token)
    assert found is not None and found[2].sub == SUB and found[2].claims == {"given_name": "Sanne"}
    assert len(store.calls) == 1
    kind, keys = store.calls[0]
    assert kind == "batch"
    assert keys[0].startswith("get oidc-access:")
    assert keys[1:] == [f"get oidc:revoked:{who.family}", "get oidc:history-since"]
    # The store key is a hash: neither the token nor its random part is in it.
    assert token.partition(".")[2] not in keys[0]


def test_a_revoked_familys_access_token_stops_working_at_once(vault: TokenVault) -> None:
    who = grantee()
    token = access_token_for(who)
    code = issue(vault, who, token)
    assert vault.access(token) is not None
    assert vault.take_code(code, "rp") is None  # the code replayed: the family is revoked
    assert vault.access(token) is None
    # Another login's family is untouched.
    other = grantee()
    other_token = access_token_for(other)
    issue(vault, other, other_token)
    assert vault.access(other_token) is not None


def test_a_token_whose_family_part_was_changed_finds_nothing(vault: TokenVault) -> None:
    revoked, live = grantee(), grantee()
    token = access_token_for(revoked)
    issue(vault, live, access_token_for(live))
    code = issue(vault, revoked, token)
    vault.take_code(code, "rp")  # revokes `revoked`'s family
    # Naming a live family instead does not make the revoked token work again: the record is
    # filed and sealed under the whole token.
    swapped = f"{live.family}.{token.partition('.')[2]}"
    assert vault.access(swapped) is None
    assert vault.access(token) is None


@pytest.mark.parametrize(
    ("token", "asks_the_store"),
    [
        ("", False),
        (".", False),
        (".abc", False),
        ("fam ily.abc", False),
        ("famïly.abc", False),
        ("f/amily.abc", False),
        (("f" * 65) + ".abc", False),
        ("x" * 300, False),
        ("family.", True),
        ("not-a-token", True),
    ],
)
def test_malformed_tokens_are_refused(
    vault: TokenVault, store: CallLog, token: str, asks_the_store: bool
) -> None:
    store.calls.clear()
    assert vault.access(token) is None
    # A family part that is not a family id is refused without asking the store at all.
    assert bool(store.calls) == asks_the_store


def test_a_token_issued_before_tokens_named_their_family_still_works(
    vault: TokenVault, store: CallLog
) -> None:
    """Tokens made before this form (43 characters, no family) live on until they expire:
    read first, the family's mark after (two round trips), revocation honoured."""
    who = grantee()
    old = secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")[:43]
    assert "." not in old
    code = issue(vault, who, old)
    store.calls.clear()
    assert vault.access(old) is not None
    assert [kind for kind, _ in store.calls] == ["get", "batch"]
    vault.take_code(code, "rp")
    assert vault.access(old) is None


class Clock:
    """The memory store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("code_ttl", "access_ttl", "refresh_ttl"),
    [(60, 600, 60), (600, 600, 60), (60, 3600, 300)],
    ids=["refresh_below_access", "refresh_below_code", "an_hours_access_token"],
)
def test_revocation_outlasts_every_token_of_the_family_whatever_the_lifetimes(
    code_ttl: int, access_ttl: int, refresh_ttl: int
) -> None:
    """review-oidc: the marks lived `refresh_token_lifetime_seconds`, which may be configured
    as low as 60 s while access tokens live up to an hour and codes ten minutes. A replayed
    code then either went unnoticed (its family mark gone) or revoked the family for that
    long, after which the access token redeemed with the code worked again (RFC 6749 4.1.2,
    10.5)."""
    clock = Clock()
    vault = TokenVault(
        MemoryStore(clock=clock),
        code_ttl=code_ttl,
        access_ttl=access_ttl,
        refresh_ttl=refresh_ttl,
    )
    who = grantee()
    code = secrets.token_urlsafe(36)
    vault.put_code(code, IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, who))
    clock.now += code_ttl - 2  # redeemed late, as a slow client may
    assert vault.take_code(code, "rp") is not None
    redeemed = clock.now
    access = access_token_for(who)
    vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", who)
    clock.now += 1  # the code replayed (an attacker's copy)
    assert vault.take_code(code, "rp") is None
    assert vault.access(access) is None, "the replay did not revoke the access token"
    clock.now = redeemed + access_ttl - 1  # the access token's last second
    assert vault.access(access) is None, "the revocation ended before the token"


def test_a_revoked_familys_tokens_are_refused_at_issue_in_the_same_round_trip(
    vault: TokenVault, store: CallLog
) -> None:
    """The session's end revokes the family (session_end_op): a code issued before and redeemed
    after it gets no tokens (and no ID token), and storing them costs no extra round trip."""
    who = grantee()
    access = access_token_for(who)
    store.batch([vault.session_end_op(who.family)])
    store.calls.clear()
    with pytest.raises(InvalidGrantError):
        vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", who)
    assert [name for name, _ in store.calls] == ["batch"]
    assert store.calls[0][1][-1] == f"get oidc:revoked:{who.family}"
    assert vault.access(access) is None
    # Another family is not touched.
    other = grantee()
    fresh = access_token_for(other)
    vault.put_tokens({"access_token": fresh, "scope": "openid"}, "rp", other)
    assert vault.access(fresh) is not None


def test_a_reused_codes_mark_leaves_the_one_redemption_its_answer(vault: TokenVault) -> None:
    """A code raced by a thief: the loser's reuse revokes the family, perhaps before the winner
    stores its tokens. The winner still gets its answer (the code is redeemed exactly once),
    and the tokens it stored are dead by the mark."""
    who = grantee()
    code = secrets.token_urlsafe(36)
    vault.put_code(code, IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, who))
    assert vault.take_code(code, "rp") is not None  # the winner
    assert vault.take_code(code, "rp") is None  # the thief's copy: the family is marked reused
    access = access_token_for(who)
    vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", who)
    assert vault.access(access) is None


def test_a_code_replayed_after_the_logout_gets_no_tokens_from_either_redemption(
    vault: TokenVault,
) -> None:
    """The session ended (its family marked so), then the code is redeemed twice at once: the
    second redemption's reuse mark must not replace the session's end, or the first would be
    given tokens and an ID token of a session that ended."""
    who = grantee()
    code = secrets.token_urlsafe(36)
    vault.put_code(code, IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, who))
    ended = vault.session_end_op(who.family)
    vault.store.put(ended.key, ended.value, ended.ttl_seconds)
    assert vault.take_code(code, "rp") is not None
    assert vault.take_code(code, "rp") is None  # the replay: a reuse, after the logout
    with pytest.raises(InvalidGrantError):
        vault.put_tokens({"access_token": access_token_for(who), "scope": "openid"}, "rp", who)
