"""The broker's Prometheus metrics: how logins end, how long the broker and the schools take, and
how often the store fails. Served at `/metrics` (broker/web/operations.py).

Labels carry only small fixed sets: the protocol pairing, a reason code from the error tree, a
login step, a store operation. Never a school or service id (thousands of schools would make
thousands of series per metric; per-school questions are for the logs), never anything about a
student, never an attribute value.

Under gunicorn every worker counts for itself; with `PROMETHEUS_MULTIPROC_DIR` set (the gunicorn
configuration sets it, broker/cli/gunicorn_conf.py) prometheus_client keeps the counts in files
there and `/metrics` adds up every worker's. Recording is a dictionary lookup and an addition, so
the login path stays cheap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from broker.core.errors import BrokerError, StateExpired, StoreUnavailable
from broker.core.ports import KeyValueStore, StoreOp, StoreReply

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SAML, OIDC, UNKNOWN = "saml", "oidc", "unknown"
OK = "ok"
# The classic text format: what generate_latest writes for these metrics, read by every
# Prometheus version (newer prometheus_client releases label it 1.0.0, which old servers refuse).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LOGINS = Counter(
    "ketenbroker_logins",
    "Logins that ended, each once: pairing is <publisher side>_<school side> (saml or oidc; "
    "unknown when the login ended before that side was known), outcome is ok or the refusal's "
    "reason code (what the platform was told, or why the request was refused).",
    ["pairing", "outcome"],
)
LOGIN_SETBACKS = Counter(
    "ketenbroker_login_setbacks",
    "Refusals on a login's way that do not end it, by pairing (as ketenbroker_logins) and reason "
    "code: the login stays open for another try (the school's no with Try again, an unsigned or "
    "stale answer, choose again, a school not reached, the store briefly unavailable), or was "
    "over already (state_expired). The login counts in ketenbroker_logins when it ends.",
    ["pairing", "reason"],
)
LOGOUTS = Counter(
    "ketenbroker_logouts",
    "Logout runs: initiator is student, service or school; protocol the initiator's (saml, oidc, "
    "or none for the student's button); outcome is started, started_second (a run of its own "
    "for a second request at the same moment that asked something else, the session ended by "
    "the first), complete (every service and the school confirmed or was not asked) or partial.",
    ["initiator", "protocol", "outcome"],
)
LOGOUT_SERVICES = Counter(
    "ketenbroker_logout_services",
    "Services told in logout runs with a browser, counted when the run ends: channel is front "
    "(an iframe on the logout page), back (server to server), front_and_back (an iframe and, "
    "for a SAML service with a SOAP endpoint too, a SOAP call) or unsupported (registered no "
    "logout); status is what the final page shows: confirmed, failed, timed_out or "
    "unsupported (front_and_back: confirmed when the SOAP call confirmed, else as the iframe "
    "answered), or unfinished (none of these yet: the final page was opened before the "
    "service answered or timed out).",
    ["channel", "status"],
)
SCHOOL_LOGOUT_TOKENS = Counter(
    "ketenbroker_school_logout_tokens",
    "Back-channel logout tokens from schools' OpenID providers: outcome is ended (a session "
    "stood and was ended), no_session (valid, nothing to end) or the refusal's reason code.",
    ["outcome"],
)
SCHOOL_LOGOUT_SOAP = Counter(
    "ketenbroker_school_logout_soap_requests",
    "LogoutRequests from schools' SAML IdPs over the SOAP binding: outcome is the answer's "
    "status (success, partial, unknown_principal, responder), store_unavailable (answered "
    "Responder with the store down) or the refusal's reason code.",
    ["outcome"],
)
SCHOOL_LOGOUT_SERVICES = Counter(
    "ketenbroker_school_logout_services",
    "Services of SSO sessions a school ended without the browser's cookie (its back channel, "
    "a SAML LogoutRequest in a frame or over SOAP), by what became of telling them: "
    "confirmed, failed, timed_out (OIDC back-channel logout, SAML SOAP logout), not_told (SAML "
    "services without a SOAP endpoint: reachable only through the browser) or unsupported "
    "(registered no logout).",
    ["status"],
)
STEP_SECONDS = Histogram(
    "ketenbroker_login_step_seconds",
    "The broker's own time per login request (from request to response), by step.",
    ["step"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UPSTREAM_WAIT_SECONDS = Histogram(
    "ketenbroker_upstream_wait_seconds",
    "From sending the student to the school's identity provider until its answer arrived "
    "(includes the student signing in there), by the school's protocol.",
    ["school_protocol"],
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)
UPSTREAM_CALL_SECONDS = Histogram(
    "ketenbroker_upstream_call_seconds",
    "The broker's back-channel calls to a school's OpenID provider for one login (token, "
    "key set, userinfo), part of the oidc_school_answer step.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
STUDENT_LOOKUPS = Counter(
    "ketenbroker_portal_student_lookups",
    "School administrators' lookups of a student's receipts by identifier in the portal: outcome "
    "is found, not_found, or limited (refused by [rate_limits] student_lookup, nothing looked "
    "up). A burst of limited, or of lookups at all, is one account linking receipts to students.",
    ["outcome"],
)
SUBJECT_SCOPE_SPELLING = Counter(
    "ketenbroker_subject_scope_spelling",
    "Logins whose subject (username or student_number) carried its scope in another spelling "
    "than the school registered, same but for case: taken as sent, so an IdP that varies it "
    "gives a student two pseudonyms. The log line, once per school and spelling, names the "
    "school; register the spelling its IdP sends.",
)
STORE_ERRORS = Counter(
    "ketenbroker_store_errors",
    "Store (Redis) calls that failed (unreachable, timed out, or refused), by operation. The "
    "registry's database is not counted here: see ketenbroker_registry_reachable and the "
    "setbacks' reason registry_unavailable.",
    ["operation"],
)

# The login endpoints: the step name for the latency histogram, and which side of the pairing
# a request there already knows (for refusals raised before a login record is at hand).
STEPS: Mapping[str, tuple[str, str, str]] = {
    "saml.sso": ("saml_request", SAML, UNKNOWN),
    "oidc_op.authorize": ("oidc_request", OIDC, UNKNOWN),
    "discovery.choose": ("discovery", UNKNOWN, UNKNOWN),
    "discovery.chosen": ("discovery", UNKNOWN, UNKNOWN),
    "saml.acs": ("saml_school_answer", UNKNOWN, SAML),
    "oidc_rp.callback": ("oidc_school_answer", UNKNOWN, OIDC),
    "oidc_op.token": ("oidc_token", OIDC, UNKNOWN),
    "oidc_op.userinfo": ("oidc_userinfo", OIDC, UNKNOWN),
}
# Where a refusal counts as a login that ended (token and userinfo errors are not logins).
LOGIN_ENDPOINTS = frozenset(STEPS) - {"oidc_op.token", "oidc_op.userinfo"}


def protocol_name(is_oidc: bool) -> str:
    return OIDC if is_oidc else SAML


def login_ended(front: str, back: str, outcome: str) -> None:
    """The login is over: answered (ok), or refused with the platform told or the request
    refused outright. Once per login: a refusal that keeps it open is a `login_set_back`."""
    LOGINS.labels(f"{front}_{back}", outcome).inc()


def login_set_back(front: str, back: str, reason: str) -> None:
    """A refusal page that leaves the login open for another try (or finds it over already)."""
    LOGIN_SETBACKS.labels(f"{front}_{back}", reason).inc()


def logout_started(initiator: str, protocol: str, *, second: bool = False) -> None:
    """A run started; `second`: by the second of two requests at the same moment, after the
    first had ended the session (login/logout_start.py), counted apart so that one logout
    does not count as two started."""
    LOGOUTS.labels(initiator, protocol or "none", "started_second" if second else "started").inc()


def logout_ended(initiator: str, protocol: str, outcome: str) -> None:
    LOGOUTS.labels(initiator, protocol or "none", outcome).inc()


def logout_services(counts: Mapping[tuple[str, str], int]) -> None:
    """The services of a run that ended, by (channel, status)."""
    for (channel, status), count in counts.items():
        LOGOUT_SERVICES.labels(channel, status).inc(count)


def school_logout_token(outcome: str) -> None:
    SCHOOL_LOGOUT_TOKENS.labels(outcome).inc()


def school_logout_soap(outcome: str) -> None:
    SCHOOL_LOGOUT_SOAP.labels(outcome).inc()


def school_logout_services(statuses: dict[str, int]) -> None:
    """The services of a session a school ended without the browser's cookie, by status."""
    for status, count in statuses.items():
        SCHOOL_LOGOUT_SERVICES.labels(status).inc(count)


def student_looked_up(outcome: str) -> None:
    """A portal student lookup: found, not_found or limited."""
    STUDENT_LOOKUPS.labels(outcome).inc()


def subject_scope_spelled_otherwise() -> None:
    """A login's subject scope spelled otherwise than registered (login/scope_spelling.py)."""
    SUBJECT_SCOPE_SPELLING.inc()


def refused_at(endpoint: str | None, error: BrokerError, *, login_open: bool = False) -> None:
    """A refusal on a login endpoint (the error page handler, and the pages that keep the
    login open: `login_open`). It ends the login unless the login stays open for another try
    (`login_open`; a store briefly unavailable: the request may simply be made again) or was
    over already (its record gone: counted when it ended, or it expired)."""
    if endpoint in LOGIN_ENDPOINTS:
        _, front, back = STEPS[endpoint]
        if login_open or isinstance(error, (StoreUnavailable, StateExpired)):
            login_set_back(front, back, error.code)
        else:
            login_ended(front, back, error.code)


def step_took(endpoint: str | None, seconds: float) -> None:
    child = _STEP_CHILDREN.get(endpoint or "")
    if child is None:
        step = STEPS.get(endpoint or "")
        if step is None:
            return
        # labels() validates and locks on every call; the child it returns is always the same
        # object (and follows a fork by itself in multiprocess mode), so it is kept.
        child = _STEP_CHILDREN[endpoint or ""] = STEP_SECONDS.labels(step[0])
    child.observe(seconds)


_STEP_CHILDREN: dict[str, Histogram] = {}


def school_answered(school_protocol: str, sent_at: float | None) -> None:
    """The school's answer arrived for a login sent upstream at `sent_at` (epoch seconds, from
    the login record, so the wait is measured across workers and machines)."""
    if sent_at is not None:
        UPSTREAM_WAIT_SECONDS.labels(school_protocol).observe(max(0.0, time.time() - sent_at))


def render(*at_scrape: Collector) -> tuple[bytes, str]:
    """The exposition text: every worker's counts under gunicorn, this process's otherwise, and
    `at_scrape`: collectors computed now by the worker that answers (gauges of state every
    worker sees alike, such as the key schedules)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if at_scrape:
        # A registry of their own: the process-wide one must not keep a worker's broker.
        scraped = CollectorRegistry(auto_describe=False)
        for collector in at_scrape:
            scraped.register(collector)
        text += generate_latest(scraped)
    return text, CONTENT_TYPE


class CountingStore:
    """A `KeyValueStore` that counts the failures of the store it wraps, then re-raises them."""

    def __init__(self, inner: KeyValueStore) -> None:
        self.inner = inner

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        with _counted("put"):
            self.inner.put(key, value, ttl_seconds)

    def get(self, key: str) -> bytes | None:
        with _counted("get"):
            return self.inner.get(key)

    def take(self, key: str) -> bytes | None:
        with _counted("take"):
            return self.inner.take(key)

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        with _counted("add_if_absent"):
            return self.inner.add_if_absent(key, value, ttl_seconds)

    def replace_if_same(
        self, key: str, expected: bytes | None, value: bytes, ttl_seconds: int
    ) -> bool:
        with _counted("replace_if_same"):
            return self.inner.replace_if_same(key, expected, value, ttl_seconds)

    def renew(self, key: str, ttl_seconds: int) -> bytes | None:
        with _counted("renew"):
            return self.inner.renew(key, ttl_seconds)

    def delete(self, key: str) -> None:
        with _counted("delete"):
            self.inner.delete(key)

    def count(self, key: str, window_seconds: int) -> int:
        with _counted("count"):
            return self.inner.count(key, window_seconds)

    @property
    def atomic_batches(self) -> bool:
        return self.inner.atomic_batches

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        with _counted("batch"):
            return self.inner.batch(operations)

    def ping(self) -> bool:
        with _counted("ping"):
            return self.inner.ping()

    def close(self) -> None:
        self.inner.close()


class _counted:
    """A context manager class (not a generator) keeps the per-call cost to two method calls."""

    __slots__ = ("operation",)

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and issubclass(kind, StoreUnavailable):
            STORE_ERRORS.labels(self.operation).inc()
