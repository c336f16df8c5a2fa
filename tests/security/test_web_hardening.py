"""Web hardening: rate limits on SSO, ACS, token and discovery (broker/web/rate_limits.py) and
the security headers on every page (broker/web/app.py). Cookie flags along a real login are
checked in test_saml_attacks.py (`test_login_cookies_are_flagged`).

The limits are set low here (a few requests) so a test can cross them; the broker is a real
instance (`ketenbroker init` in a temporary folder) called through Flask's test client.
"""

from __future__ import annotations

import inspect
import random
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from werkzeug.test import TestResponse

from broker.cli.instance import init_instance
from broker.config import RateLimits, Settings, load_settings, settings_from_mapping
from broker.core.errors import ConfigurationError
from broker.core.model import OidcUpstream, School
from broker.registry import migrate
from broker.store import open_store
from broker.store.redis_clients import TIMEOUT_SECONDS
from broker.web import create_app
from broker.web.rate_limits import LIMITED_ENDPOINTS

REDIS_URL = "redis://127.0.0.1:6379/14"


MakeApp = Callable[..., Flask]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One broker instance (`ketenbroker init`); each test runs its own app on it."""
    directory = tmp_path_factory.mktemp("rate-limits")
    init_instance(directory, "https://broker.example", "broker.example", "Testbroker")
    settings = load_settings(directory / "ketenbroker.toml")
    migrate(settings.registry_url)
    return settings


@pytest.fixture
def make_app(instance: Settings) -> Iterator[MakeApp]:
    apps: list[Flask] = []

    def make(limits: RateLimits, store_url: str = "memory://") -> Flask:
        app = create_app(replace(instance, rate_limits=limits, store_url=store_url))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ketenbroker"].registry.close()


OFF = RateLimits(sso="", acs="", token="", discovery="", student_lookup="")


def _hit(client: FlaskClient, endpoint: str, language: str = "en") -> TestResponse:
    headers = {"Accept-Language": language}
    if endpoint == "sso":
        return client.get("/saml/idp/sso?SAMLRequest=x", headers=headers)
    if endpoint == "oidc_authorize":
        return client.get("/oidc/authorize?client_id=nobody", headers=headers)
    if endpoint == "my_data":
        return client.get("/my-data/sign-in", headers=headers)
    if endpoint == "acs":
        return client.post("/saml/sp/acs", data={"SAMLResponse": "x"}, headers=headers)
    if endpoint == "token":
        return client.post("/oidc/token", data={"grant_type": "x"}, headers=headers)
    return client.get("/discovery", headers=headers)


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("sso", "sso"),
        ("oidc_authorize", "sso"),
        ("my_data", "sso"),
        ("acs", "acs"),
        ("token", "token"),
        ("discovery", "discovery"),
    ],
)
def test_each_limited_endpoint_answers_429_after_its_limit(
    make_app: MakeApp,
    endpoint: str,
    field: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(replace(OFF, **{field: "3/minute"}))
    client = app.test_client()
    statuses = [_hit(client, endpoint).status_code for _ in range(3)]
    assert 429 not in statuses and all(s < 500 for s in statuses), statuses
    refused = _hit(client, endpoint)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "refused code=rate_limited status=429" in caplog.text
    if endpoint == "token":
        assert refused.is_json and (refused.json or {})["error"] == "temporarily_unavailable"
    else:
        text = refused.get_data(as_text=True)
        assert "Too many attempts" in text and "Error code:" in text
        assert refused.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # Other kinds of endpoint keep their own budget.
    other = "discovery" if endpoint != "discovery" else "acs"
    assert _hit(client, other).status_code != 429


def test_every_view_that_starts_a_login_is_limited(make_app: MakeApp) -> None:
    """A view that starts a login writes a login record to the store: unlimited, anyone could
    fill the store with them (15 minutes each) and take logins down for everyone. So a new
    entry point cannot slip past the limits, every view whose code starts a login is named in
    LIMITED_ENDPOINTS with the SSO budget."""
    app = make_app(OFF)
    starting = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if "flow.start(" in inspect.getsource(inspect.unwrap(view))
    }
    assert {"saml.sso", "oidc_op.authorize", "my_data.sign_in"} <= starting
    assert {e: LIMITED_ENDPOINTS.get(e) for e in starting} == dict.fromkeys(starting, "sso")


def test_the_429_page_speaks_dutch(make_app: MakeApp) -> None:
    client = make_app(replace(OFF, discovery="1/minute")).test_client()
    _hit(client, "discovery", "nl")
    page = _hit(client, "discovery", "nl")
    assert page.status_code == 429
    text = page.get_data(as_text=True)
    assert "Te veel pogingen" in text and 'lang="nl"' in text


def test_the_429_page_offers_try_again_for_the_same_request(make_app: MakeApp) -> None:
    """Not "go back to the learning platform" without a link: the same address again for a
    GET, the same school choice again for a POST of it (after the wait the page asks for).
    That "Try again" is answered with a redirect to the school's sign-in page, which Chromium
    holds to the page's form-action: the page names the school's origin (the browser test:
    tests/browser/test_try_again.py), and, carrying the login, is never kept by a cache."""
    app = make_app(replace(OFF, discovery="1/minute"))
    issuer = "https://login.limited-school.example"
    school = School("99XX00", "Drukke School", issuer, oidc=OidcUpstream(issuer, "kb", "s"))
    if app.extensions["ketenbroker"].registry.school(school.id) is None:
        app.extensions["ketenbroker"].registry.add_school(school, "")
    client = app.test_client()
    headers = {"Accept-Language": "nl"}
    client.get("/discovery?login=abc", headers=headers)
    page = client.get("/discovery?login=abc", headers=headers)
    assert page.status_code == 429
    text = page.get_data(as_text=True)
    assert '<a class="button button--primary" href="/discovery?login=abc">Opnieuw proberen</a>' in (
        text
    )
    assert "Wacht even en probeer het dan opnieuw." in text
    assert "Ga terug naar het leerplatform" not in text
    choice = {"login": "abc", "school": "99XX00", "service": "leesplank"}
    posted = client.post("/discovery", data=choice, headers=headers)
    assert posted.status_code == 429
    text = posted.get_data(as_text=True)
    assert '<form class="retry" method="post" action="/discovery"' in text
    for name, value in choice.items():
        assert f'<input type="hidden" name="{name}" value="{value}">' in text
    assert ">Opnieuw proberen</button>" in text
    assert 'href="/discovery?login=abc">Kies je school opnieuw.</a>' in text
    assert posted.headers["Content-Security-Policy"].endswith(f"form-action 'self' {issuer}")
    assert posted.headers["Cache-Control"] == "no-store"
    assert int(posted.headers["Retry-After"]) > 0
    # A school that is not registered: nothing to try again (no form to post made-up fields).
    unknown = client.post("/discovery", data={**choice, "school": "00ZZ00"}, headers=headers)
    assert unknown.status_code == 429
    assert 'action="/discovery"' not in unknown.get_data(as_text=True)


def test_saml_and_oidc_sso_share_one_budget(make_app: MakeApp) -> None:
    client = make_app(replace(OFF, sso="2/minute")).test_client()
    assert _hit(client, "sso").status_code != 429
    assert _hit(client, "oidc_authorize").status_code != 429
    assert _hit(client, "sso").status_code == 429


def test_limits_count_per_client_address(make_app: MakeApp) -> None:
    client = make_app(replace(OFF, acs="1/minute")).test_client()
    first = {"REMOTE_ADDR": "192.0.2.1"}
    second = {"REMOTE_ADDR": "192.0.2.2"}
    post = {"data": {"SAMLResponse": "x"}}
    assert client.post("/saml/sp/acs", environ_base=first, **post).status_code == 400
    assert client.post("/saml/sp/acs", environ_base=first, **post).status_code == 429
    assert client.post("/saml/sp/acs", environ_base=second, **post).status_code == 400


def test_limits_off_means_no_limit(make_app: MakeApp) -> None:
    client = make_app(OFF).test_client()
    assert all(_hit(client, "acs").status_code == 400 for _ in range(30))


def test_the_limiter_adds_no_hook_to_every_request(make_app: MakeApp) -> None:
    """Only the limited views check limits (broker/web/rate_limits.py): nothing runs on every
    request (/healthz, static files, the notice). The tests above show that every limit bites."""
    app = make_app(replace(OFF, sso="3/minute"))
    hooks = [
        *app.before_request_funcs.get(None, []),
        *app.after_request_funcs.get(None, []),
        *app.teardown_request_funcs.get(None, []),
    ]
    assert not [hook for hook in hooks if "rate_limits" in getattr(hook, "__module__", "")]
    # The limited view is wrapped (functools.wraps keeps the original as __wrapped__); others not.
    assert hasattr(app.view_functions["saml.sso"], "__wrapped__")
    assert not hasattr(app.view_functions["notice.show"], "__wrapped__")


def test_several_limits_must_all_hold(make_app: MakeApp) -> None:
    client = make_app(replace(OFF, discovery="5/minute;2/hour")).test_client()
    assert [_hit(client, "discovery").status_code == 429 for _ in range(3)] == [False, False, True]


def test_an_unreachable_counter_store_lets_the_request_through_and_says_so(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 9: the counter's increment fails at once. The login's own store
    # calls are what stop a login when the store is down (503); a counter adds nothing there.
    app = make_app(replace(OFF, discovery="1/minute"))
    limiter = app.extensions["ketenbroker_rate_limiter"]
    limiter.store = open_store("redis://127.0.0.1:9/0")
    client = app.test_client()
    assert [_hit(client, "discovery").status_code == 429 for _ in range(3)] == [False] * 3
    assert "rate limit not counted: redis count failed: ConnectionError" in caplog.text
    assert "127.0.0.1" not in caplog.text.split("rate limit not counted")[1].split("\n")[0]


@pytest.mark.parametrize("query", ["", "?socket_timeout=5&socket_connect_timeout=5"])
def test_a_counter_store_that_hangs_holds_a_request_one_second_at_most(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    # A "Redis" that accepts connections and never answers: the counter gives up after the
    # store's timeout instead of holding the worker until gunicorn kills it.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        app = make_app(replace(OFF, discovery="1/minute"))
        limiter = app.extensions["ketenbroker_rate_limiter"]
        limiter.store = open_store(f"redis://127.0.0.1:{silent.getsockname()[1]}/0{query}")
        started = time.monotonic()
        assert _hit(app.test_client(), "discovery").status_code != 429
        assert time.monotonic() - started < 1 + 2 * TIMEOUT_SECONDS
        assert "rate limit not counted: redis count failed: TimeoutError" in caplog.text
    finally:
        silent.close()


@pytest.mark.redis
def test_workers_sharing_redis_count_together(make_app: MakeApp) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        pytest.skip("Redis not reachable")
    # A window of its own length, so no other run's counter in the shared Redis is the same key.
    limit = f"3 per {random.randint(2, 10**6)} minutes"
    limits = replace(OFF, discovery=limit)
    first = make_app(limits, REDIS_URL).test_client()
    second = make_app(limits, REDIS_URL).test_client()
    assert _hit(first, "discovery").status_code == 400  # no login id: refused, but counted
    assert _hit(second, "discovery").status_code == 400
    assert _hit(first, "discovery").status_code == 400
    assert _hit(second, "discovery").status_code == 429


@pytest.mark.redis
def test_the_counters_hold_no_client_address(make_app: MakeApp) -> None:
    """An IP address is personal data: the counters in the shared store are keyed by a keyed
    hash of it (rate_limits.client_key), so a dump of Redis shows no address."""
    try:
        connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        connection.ping()
    except redis.exceptions.RedisError:
        pytest.skip("Redis not reachable")
    address = f"198.51.100.{random.randint(1, 254)}"
    limit = f"3 per {random.randint(2, 10**6)} minutes"
    client = make_app(replace(OFF, acs=limit), REDIS_URL).test_client()
    environ = {"REMOTE_ADDR": address}
    assert (
        client.post("/saml/sp/acs", environ_base=environ, data={"SAMLResponse": "x"}).status_code
        == 400
    )
    keys = [k.decode() for k in connection.scan_iter("kb:limits:*")]
    assert keys, "the request was counted"
    assert not any(address in key for key in keys), keys
    for key in keys:
        assert address.encode() not in (connection.dump(key) or b"")


# -- configuration --------------------------------------------------------------------------------


def _config(limits: object) -> dict[str, object]:
    return {"rate_limits": limits}


@pytest.mark.parametrize(
    "value", ["600/minute", "3 per 5 minutes", "10/second;1000/hour", "", "1 per day"]
)
def test_valid_limits_are_accepted_and_mean_what_the_limiter_reads(value: str) -> None:
    from broker.config import _rate

    assert _rate({"sso": value}, "sso", "") == value
    if value:
        assert parse_many(value)


@pytest.mark.parametrize("value", ["600", "fast", "600/fortnight", "-1/minute", 600, "6/minute;"])
def test_invalid_limits_are_refused_with_the_key(value: object, instance: Settings) -> None:
    with pytest.raises(ConfigurationError, match=r"rate_limits\.sso"):
        _with_section(instance, {"sso": value})


def test_an_unknown_limit_name_is_refused(instance: Settings) -> None:
    with pytest.raises(ConfigurationError, match="unknown key"):
        _with_section(instance, {"portal": "1/minute"})


def test_defaults_when_the_section_is_absent(instance: Settings) -> None:
    assert _with_section(instance, None).rate_limits == RateLimits()
    assert all(parse_many(getattr(RateLimits(), name)) for name in ("sso", "acs", "token"))


def test_init_writes_the_defaults(instance: Settings) -> None:
    assert instance.source is not None
    written = tomllib.loads(instance.source.read_text(encoding="utf-8"))["rate_limits"]
    assert RateLimits(**written) == RateLimits()


def _with_section(instance: Settings, section: dict[str, object] | None) -> Settings:
    """The instance's configuration with its [rate_limits] replaced (None: left out)."""
    assert instance.source is not None
    data = tomllib.loads(instance.source.read_text(encoding="utf-8"))
    data.pop("rate_limits", None)
    if section is not None:
        data["rate_limits"] = section
    return settings_from_mapping(data, instance.source.parent, instance.source)


# -- security headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/discovery", "/saml/idp/sso?SAMLRequest=x", "/nowhere", "/oidc/authorize"]
)
def test_every_page_carries_the_security_headers(make_app: MakeApp, path: str) -> None:
    """Pages and refusals alike, on an https broker (HSTS included)."""
    response = make_app(OFF).test_client().get(path)
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp, csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Strict-Transport-Security"] == "max-age=31536000"


def test_no_hsts_on_a_plain_http_broker(make_app: MakeApp, instance: Settings) -> None:
    app = create_app(replace(instance, base_url="http://127.0.0.1:9", rate_limits=OFF))
    try:
        response = app.test_client().get("/")
        assert "Strict-Transport-Security" not in response.headers
        assert response.headers["X-Frame-Options"] == "DENY"
    finally:
        app.extensions["ketenbroker"].registry.close()


def test_counters_live_in_the_brokers_own_store(make_app: MakeApp) -> None:
    # The login store, whatever its topology (one Redis, Sentinel, Cluster, memory), with its
    # timeouts and its error counting (storage tests: KeyValueStore.count).
    app = make_app(replace(OFF, sso="3/minute"))
    assert app.extensions["ketenbroker_rate_limiter"].store is app.extensions["ketenbroker"].store


# -- behind reverse proxies (broker.proxy_hops) ---------------------------------------------------


def _acs_from(client: FlaskClient, forwarded: str | None, peer: str = "198.51.100.7") -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return client.post(
        "/saml/sp/acs",
        data={"SAMLResponse": "x"},
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    ).status_code


def test_behind_proxies_the_client_is_the_entry_the_proxies_wrote(instance: Settings) -> None:
    app = create_app(replace(instance, rate_limits=replace(OFF, acs="1/minute"), proxy_hops=1))
    try:
        client = app.test_client()
        # Two students behind the one proxy address: each has a budget of their own.
        assert _acs_from(client, "192.0.2.1") == 400
        assert _acs_from(client, "192.0.2.2") == 400
        assert _acs_from(client, "192.0.2.1") == 429
        # A client that writes its own X-Forwarded-For: the proxy appends the address it saw,
        # and only that last entry is read, so the made-up one buys no new budget.
        assert _acs_from(client, "203.0.113.9, 192.0.2.2") == 429
        # Fewer entries than hops (a request that did not pass the proxy): the connection's own
        # address counts.
        assert _acs_from(client, None) == 400
        assert _acs_from(client, None) == 429
    finally:
        app.extensions["ketenbroker"].registry.close()


def test_without_proxy_hops_forwarded_headers_are_not_read(make_app: MakeApp) -> None:
    client = make_app(replace(OFF, acs="1/minute")).test_client()
    assert _acs_from(client, "192.0.2.1") == 400
    # Another made-up address from the same peer is the same client.
    assert _acs_from(client, "192.0.2.2") == 429


def test_metrics_behind_a_proxy_do_not_count_as_this_machine(instance: Settings) -> None:
    app = create_app(replace(instance, rate_limits=OFF, proxy_hops=1))
    try:
        client = app.test_client()
        # A loopback client address taken from X-Forwarded-For is still a proxied request.
        proxied = client.get(
            "/metrics",
            headers={"X-Forwarded-For": "127.0.0.1"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        assert proxied.status_code in (401, 403)
        direct = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert direct.status_code == 200
    finally:
        app.extensions["ketenbroker"].registry.close()


@pytest.mark.parametrize("value", [-1, 6, "1", True, 1.0])
def test_proxy_hops_outside_zero_to_five_is_refused(value: object, instance: Settings) -> None:
    assert instance.source is not None
    data = tomllib.loads(instance.source.read_text(encoding="utf-8"))
    data["broker"]["proxy_hops"] = value
    with pytest.raises(ConfigurationError, match=r"broker\.proxy_hops"):
        settings_from_mapping(data, instance.source.parent, instance.source)


def test_init_writes_proxy_hops_zero(instance: Settings) -> None:
    assert instance.source is not None
    written = tomllib.loads(instance.source.read_text(encoding="utf-8"))["broker"]
    assert written["proxy_hops"] == 0 and instance.proxy_hops == 0
