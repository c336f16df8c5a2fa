"""The portal's sign-in throttle holds against attempts sent at once (broker/web/portal/guard.py):
each attempt is counted in Redis, atomically, before its password is hashed, so of many
concurrent guesses at most the limit reach the password check. Against the real sign-in form,
with the broker's store on the machine's Redis (database 15, keys under a prefix of this run)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from typing import Any

import pytest

from broker.accounts import passwords, totp
from broker.core.admins import AdminRole
from broker.store import RedisStore
from broker.web.portal import guard, sign_in
from tests.storage.test_store import _reachable_redis_store
from tests.support.portal import HTTPS, PASSWORD, PortalSite, csrf_token

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-throttle"))
    yield built
    built.registry.close()


@pytest.fixture
def redis(site: PortalSite) -> Iterator[RedisStore]:
    """The site's store on Redis for one test (a fresh key prefix: fresh counters)."""
    counting: Any = site.broker.store
    before = counting.inner
    store = _reachable_redis_store()
    counting.inner = store
    try:
        yield store
    finally:
        counting.inner = before
        store.close()


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the sign-in form gets as far as checking (argon2, as before)."""
    checked: list[str] = []
    lock = threading.Lock()
    real = passwords.verify_password

    def counted(password_hash: str | None, password: str) -> bool:
        with lock:
            checked.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(sign_in, "verify_password", counted)
    return checked


def attempt_later(site: PortalSite, email: str, password: str, code: str) -> Callable[[], int]:
    """A client with the form already fetched (its CSRF token); calling it posts the form."""
    client = site.client()
    token = csrf_token(client.get("/portal/sign-in", base_url=HTTPS).get_data(as_text=True))
    form = {"csrf_token": token, "email": email, "password": password, "code": code}

    def post() -> int:
        return client.post("/portal/sign-in", base_url=HTTPS, data=form).status_code

    return post


def all_at_once(attempts: list[Callable[[], int]]) -> list[int]:
    start = threading.Barrier(len(attempts))

    def run(attempt: Callable[[], int]) -> int:
        start.wait()
        return attempt()

    with ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(run, attempts))


def test_concurrent_guesses_at_one_account_get_no_more_checks_than_the_limit(
    site: PortalSite, redis: RedisStore, verified: list[str]
) -> None:
    account = site.add_account("raced@broker.example", AdminRole.OPERATOR, None)
    guesses = [attempt_later(site, account.email, f"guess {n}", "000000") for n in range(20)]
    statuses = all_at_once(guesses)
    assert len(verified) == guard.ACCOUNT_FAILURES
    assert sorted(statuses) == [401] * guard.ACCOUNT_FAILURES + [429] * (
        20 - guard.ACCOUNT_FAILURES
    )
    # The right password and code are refused too until the window has passed.
    good = totp.code_at(account.secret, totp.current_step())
    assert attempt_later(site, account.email, PASSWORD, good)() == 429
    assert len(verified) == guard.ACCOUNT_FAILURES


def test_concurrent_guesses_from_one_address_get_no_more_checks_than_the_limit(
    site: PortalSite, redis: RedisStore, verified: list[str]
) -> None:
    count = guard.ADDRESS_ATTEMPTS + 10
    sprayed = [
        attempt_later(site, f"n{n}@broker.example", PASSWORD, "000000") for n in range(count)
    ]
    statuses = all_at_once(sprayed)
    assert len(verified) == guard.ADDRESS_ATTEMPTS
    assert statuses.count(429) == count - guard.ADDRESS_ATTEMPTS


def test_a_successful_sign_in_starts_the_accounts_count_again(
    site: PortalSite, redis: RedisStore, verified: list[str]
) -> None:
    account = site.add_account("forgetful@broker.example", AdminRole.OPERATOR, None)
    for n in range(guard.ACCOUNT_FAILURES - 1):
        assert attempt_later(site, account.email, f"guess {n}", "000000")() == 401
    good = totp.code_at(account.secret, totp.current_step() + 1)
    assert attempt_later(site, account.email, PASSWORD, good)() == 303
    for n in range(guard.ACCOUNT_FAILURES):
        assert attempt_later(site, account.email, f"again {n}", "000000")() == 401
    assert attempt_later(site, account.email, "one more", "000000")() == 429


def test_the_counters_are_keyed_so_a_copy_of_the_store_names_no_address(
    site: PortalSite, redis: RedisStore
) -> None:
    """A plain hash of an e-mail address can be checked against a list of addresses, and an IPv4
    address's hash reversed by trying them all: the keys are HMACs under the broker's secret."""
    email = "keyed@broker.example"
    assert attempt_later(site, email, "wrong", "000000")() == 401
    keys = [
        key.decode()
        for key in redis._client().scan_iter(match=redis._prefix + b"portal:*", count=1000)
    ]
    assert {key.split(":")[-2] for key in keys} == {"sign-in-account", "sign-in-address"}
    plain = {sha256(value.encode()).hexdigest() for value in (email, "127.0.0.1", "-")}
    assert not any(key.rsplit(":", 1)[-1] in plain for key in keys)
    # The same address under another broker's secret is another key.
    other = guard._counter(b"another secret", "sign-in-account", email)
    assert other.rsplit(":", 1)[-1] not in {key.rsplit(":", 1)[-1] for key in keys}
