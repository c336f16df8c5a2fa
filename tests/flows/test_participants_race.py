"""Two tabs of one SSO session whose logins finish at once, through the running broker (its
memory store, and Redis): each login reads the session's record of services and adds its own
service, so both platforms are in it, and the session's end revokes both platforms' tokens.
Before: the later write dropped the other tab's platform, whose tokens outlived the logout (on a
shared school laptop the next student found the previous student's platform session open).

The interleaving is fixed: the broker's store holds each tab's write of the record until the
other tab's has come too, so both read it before either wrote."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest

from broker.core.errors import StoreUnavailable
from broker.core.ports import StoreOp, StoreReply
from broker.login.participants import SESSION_SERVICES
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_logout import recorder  # noqa: F401 - a fixture
from tests.flows.test_oidc_logout_tokens import assert_ended, refresh_client, works
from tests.flows.test_oidc_provider_checks import register, store_calls
from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import broker_logout_claims

REDIS_URL = os.environ.get("KETENBROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class _WritesTogether:
    """Stands in for the store inside the broker's CountingStore: the first `count` batches
    that write a session's record of services each wait until all `count` have come, then run
    (so every login read the record before any wrote it); every other call passes.
    `fail_reread`: a read of the record after those writes fails as a store that went down."""

    def __init__(self, inner: Any, count: int, *, fail_reread: bool = False) -> None:
        self.inner = inner
        self.together = threading.Barrier(count)
        self.left = count
        self.lock = threading.Lock()
        self.fail_reread = fail_reread

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> bytes | None:
        if self.fail_reread and self.left <= 0 and key.startswith(f"{SESSION_SERVICES}:"):
            raise StoreUnavailable("redis get failed: ConnectionError")
        value: bytes | None = self.inner.get(key)
        return value

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        if any(
            op.key.startswith(f"{SESSION_SERVICES}:") and op.operation not in ("get", "delete")
            for op in operations
        ):
            with self.lock:
                wait, self.left = self.left > 0, self.left - 1
            if wait:
                self.together.wait(timeout=20)
        replies: list[StoreReply] = self.inner.batch(operations)
        return replies


@contextmanager
def writes_together(demo: LiveDemo, count: int, *, fail_reread: bool = False) -> Iterator[None]:
    counting: Any = demo.broker.store
    gate = _WritesTogether(counting.inner, count, fail_reread=fail_reread)
    counting.inner = gate
    try:
        yield
    finally:
        counting.inner = gate.inner


@pytest.fixture(scope="module")
def redis_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    live = LiveDemo(Path(tmp_path_factory.mktemp("race-on-redis")), store_url=REDIS_URL)
    try:
        if not live.broker.store.ping():
            pytest.skip(f"Redis at {REDIS_URL} is unreachable")
        yield live
    finally:
        live.close()


def _in_tabs_at_once(
    browser: Browser, login: Callable[[Any, Browser], None], *clients: Any
) -> None:
    """`login` at each of `clients` at once, each in a tab of `browser` (its cookies, its own
    requests)."""
    threads = []
    for client in clients:
        tab = Browser()
        tab.jar = copy.deepcopy(browser.jar)
        threads.append(threading.Thread(target=login, args=(client, tab)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


@pytest.mark.parametrize("which", ["demo", pytest.param("redis_demo", marks=pytest.mark.redis)])
def test_two_tabs_finishing_at_once_are_both_in_the_session_and_both_logged_out(
    which: str,
    request: pytest.FixtureRequest,
    recorder: tuple[str, list[bytes]],  # noqa: F811
) -> None:
    demo: LiveDemo = request.getfixturevalue(which)
    uri, bodies = recorder
    first = refresh_client(demo, f"race-{which}-first")
    tab_a, tab_b = (
        register(demo, f"race-{which}-{name}", refresh_tokens=True, backchannel_logout_uri=uri)
        for name in ("tab-a", "tab-b")
    )
    browser = Browser()
    first_token, _ = first.login(browser)
    tokens: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def login(client: Any, tab: Browser) -> None:
        try:
            tokens[client.client_id] = client.login(tab)[0]
        except BaseException as error:
            errors.append(error)

    with writes_together(demo, 2):
        _in_tabs_at_once(browser, login, tab_a, tab_b)
    assert not errors, errors
    services = demo.broker.session_services.read(browser.cookies(demo.broker_url)[SSO_COOKIE])
    assert works(tab_a, tokens[tab_a.client_id]) and works(tab_b, tokens[tab_b.client_id])
    hint = urlencode({"id_token_hint": first_token["id_token"]})
    page = browser.get(f"{demo.broker_url}/oidc/end_session?{hint}")
    assert page.status in (200, 303), page.text[:300]
    # Before: one tab's platform was not in the record: it was not told (no logout token),
    # and its tokens outlived the logout.
    told = []
    for body in bodies:
        token = parse_qs(body.decode())["logout_token"][0]
        audience = jwt.decode(token, options={"verify_signature": False})["aud"]
        told.append(broker_logout_claims(demo, token, audience)["aud"])
    assert sorted(told) == sorted([tab_a.client_id, tab_b.client_id])
    assert_ended(first, first_token)
    assert_ended(tab_a, tokens[tab_a.client_id])
    assert_ended(tab_b, tokens[tab_b.client_id])
    assert {p.service_id for p in services.participants} == {
        first.client_id,
        tab_a.client_id,
        tab_b.client_id,
    }


def test_a_returning_logins_record_write_rides_in_its_one_batch(demo: LiveDemo) -> None:
    """The common path keeps its round trips: a returning OIDC login (a new token family for
    the record) writes the record with a compare-and-set in the login's one batch, nothing
    else of its own."""
    first, second = (refresh_client(demo, f"trips-{name}") for name in ("first", "second"))
    browser = Browser()
    first.login(browser)
    second.login(browser)  # its notice, if one is due, is behind it
    with store_calls(demo) as calls:
        second.redirect(browser, second.params())
    writes = [
        keys
        for _, keys in calls
        if any(k.startswith("replace_if_same sso-services:") for k in keys)
    ]
    assert len(writes) == 1 and len(writes[0]) > 1, calls


def test_a_tab_whose_service_cannot_be_recorded_is_not_answered(demo: LiveDemo) -> None:
    """The store fails as the losing tab reads the record again: as with any store failure in
    the login's finish, that login is refused (503, try again) rather than answered with a
    platform session no logout would reach; the other tab's login stands."""
    first, tab_a, tab_b = (refresh_client(demo, f"down-{name}") for name in ("first", "a", "b"))
    browser = Browser()
    first.login(browser)
    pages: dict[str, Any] = {}

    def login(client: Any, tab: Browser) -> None:
        pages[client.client_id] = client.front(tab, client.params())

    with writes_together(demo, 2, fail_reread=True):
        _in_tabs_at_once(browser, login, tab_a, tab_b)
    statuses = sorted(page.status for page in pages.values())
    assert statuses == [303, 503], {k: (p.status, p.text[:200]) for k, p in pages.items()}
    answered = next(k for k, p in pages.items() if p.status == 303)
    refused = next(k for k, p in pages.items() if p.status == 503)
    assert "code=" in (pages[answered].location or "")
    assert "code=" not in pages[refused].text
    services = demo.broker.session_services.read(browser.cookies(demo.broker_url)[SSO_COOKIE])
    assert {p.service_id for p in services.participants} == {first.client_id, answered}
