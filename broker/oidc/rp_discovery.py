"""What the broker knows about each school's OpenID provider: its discovery document and its keys.

Both are fetched only from the registered issuer (`<issuer>/.well-known/openid-configuration`
and the `jwks_uri` it names), checked, and cached in memory per issuer (per worker process).

The key set is fetched again when it is an hour old, and when a token (an ID token, a logout
token) names a `kid` the cache does not hold. Either way at most one fetch of an issuer's key set
is started per `JWKS_REFETCH_INTERVAL` (a minute), whatever became of the last one: failed,
timed out, answered an empty set or a good one. And at most one is in flight: the other requests
meanwhile use the keys held (a token with an unknown `kid` is then refused as one), except while
nothing is held yet, when they wait for the first fetch a little. So a stream of tokens with
made-up `kid`s (the back-channel logout URI takes them from anyone) costs the school's provider
at most one key-set request a minute per worker, never one per token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from broker.core.endpoints import host_refusal, is_acceptable_endpoint
from broker.core.errors import N_, SchoolUnreachable, UpstreamFailure
from broker.oidc.rp_http import (
    DISCOVERY_DOCUMENT,
    PROVIDER_KEY_SET,
    SchoolSession,
    get_json,
)

WELL_KNOWN = "/.well-known/openid-configuration"
DISCOVERY_TTL = 3600.0
JWKS_TTL = 3600.0
JWKS_REFETCH_INTERVAL = 60.0
FAILURE_BACKOFF = 30.0
# How long a request waits for another request's first fetch of the same provider (seconds).
FIRST_FETCH_WAIT = 3.0
# Asymmetric keys only: an `oct` key in a provider's key set would be a shared secret published.
PublicKey = RSAKey | ECKey | OKPKey
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
# What a school may ever sign with. HS* would make the client secret a signing key (and a
# provider's *public* key a "secret" anyone has); `none` is no signature at all.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

# An issuer whose host is not ASCII (core/endpoints.py `host_refusal`).
NON_ASCII_ISSUER = N_("issuer must write its host in ASCII (its xn-- form): use %(url)s")
NOT_A_DOMAIN_NAME = N_("issuer has a host that is not a valid internationalised domain name")


class ProviderInvalid(UpstreamFailure):
    """The provider's discovery document or key set is not usable."""

    code = "provider_invalid"


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of a discovery document the relying party uses, checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_methods: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    signing_algorithms: tuple[str, ...]
    iss_parameter_supported: bool
    # RP-Initiated Logout 1.0: where the broker sends the student to log out at the school.
    end_session_endpoint: str | None = None
    # Back-Channel Logout 1.0: the provider may tell the broker of a logout server to server.
    backchannel_logout_supported: bool = False


def _strings(document: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = document.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProviderInvalid(N_("discovery: %(key)s must be a list of strings"), key=key)
    return tuple(value)


def _endpoint(document: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = document.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not is_acceptable_endpoint(value):
        raise ProviderInvalid(
            N_("discovery: %(key)s must be an https URL (or loopback http)"), key=key
        )
    return value


def parse_discovery(document: dict[str, Any], issuer: str) -> ProviderMetadata:
    """Check a discovery document against the registered issuer (OIDC Discovery §4.3)."""
    named = document.get("issuer")
    if named != issuer:
        # Exact string comparison: a provider that names another issuer (or the same one with a
        # trailing slash) would sign tokens the broker then could not tie to this school. What
        # it names is shown, cut short and printable only (it is the provider's text, and goes
        # to a terminal too): a trailing slash, http for https or another path is then plain.
        if not isinstance(named, str) or not named:
            raise ProviderInvalid(N_("discovery: the document names no issuer"))
        raise ProviderInvalid(
            N_(
                "discovery: issuer differs from the registered issuer "
                "(the document names %(named)s)"
            ),
            named=named,  # cut short and printable only, as every such parameter (BrokerError)
        )
    methods = _strings(document, "code_challenge_methods_supported", ("S256",))
    if "S256" not in methods:
        raise ProviderInvalid(N_("discovery: the provider does not support PKCE S256"))
    if "code" not in _strings(document, "response_types_supported", ("code",)):
        raise ProviderInvalid(N_("discovery: the provider does not support the code flow"))
    iss_supported = document.get("authorization_response_iss_parameter_supported", False)
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=str(_endpoint(document, "authorization_endpoint")),
        token_endpoint=str(_endpoint(document, "token_endpoint")),
        jwks_uri=str(_endpoint(document, "jwks_uri")),
        userinfo_endpoint=_endpoint(document, "userinfo_endpoint", required=False),
        # OIDC Discovery: when absent, client_secret_basic is the default.
        token_auth_methods=_strings(
            document, "token_endpoint_auth_methods_supported", ("client_secret_basic",)
        ),
        scopes_supported=_strings(document, "scopes_supported", ()),
        signing_algorithms=_strings(document, "id_token_signing_alg_values_supported", ()),
        iss_parameter_supported=iss_supported is True,
        end_session_endpoint=_endpoint(document, "end_session_endpoint", required=False),
        backchannel_logout_supported=document.get("backchannel_logout_supported") is True,
    )


def parse_key_set(document: dict[str, Any]) -> tuple[PublicKey, ...]:
    """The signing keys of a JWKS; encryption keys, symmetric keys and keys that do not parse
    are left out (one odd key must not take the provider's other keys down with it)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ProviderInvalid(N_("key set has no `keys` list"))
    keys: list[PublicKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in _KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError):
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys.append(key)
    return tuple(keys)


@dataclass
class _KeySet:
    """The keys at one issuer's `jwks_uri`, shared by its entries while the document names it."""

    keys: tuple[PublicKey, ...] = ()
    # When the keys held were taken: an hour on, the set is stale and fetched again.
    fetched_at: float = -1e18
    # When the last fetch started, whatever its outcome: the refetch limit counts from here.
    tried_at: float = -1e18
    # The last fetch's failure, its kind and code (None once the provider answered): what a
    # request is told while no key is held and the provider is not asked again yet.
    failure: tuple[type[UpstreamFailure], str] | None = None
    # Set while a fetch runs; other requests use the keys held (or wait for a first fetch).
    inflight: threading.Event | None = None


@dataclass
class _Entry:
    metadata: ProviderMetadata
    fetched_at: float
    key_set: _KeySet = field(default_factory=_KeySet)


class ProviderDirectory:
    """Discovery documents and key sets per issuer, fetched on first use and cached."""

    def __init__(
        self,
        session_factory: Callable[[], SchoolSession],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._failures: dict[str, float] = {}
        self._inflight: dict[str, threading.Event] = {}

    def metadata(self, issuer: str) -> ProviderMetadata:
        return self._entry(issuer).metadata

    def cached(self, issuer: str) -> ProviderMetadata | None:
        """What this worker already knows, without any network: for pages (discovery) that
        must never wait on a school's provider."""
        with self._lock:
            entry = self._entries.get(issuer)
        return entry.metadata if entry is not None else None

    def current(self, issuer: str) -> ProviderMetadata | None:
        """The document `metadata` would return now without a network call: held by this worker
        and within its time to live. None otherwise (never fetched, or due for a refresh, which
        the next `metadata` makes). For a request built ahead of the student's choice, on a
        page that must not wait on a school's provider (the discovery page's prepared link)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(issuer)
        if entry is None or now - entry.fetched_at >= DISCOVERY_TTL:
            return None
        return entry.metadata

    def keys(self, issuer: str, kid: str | None, *, refetch_on_miss: bool) -> tuple[PublicKey, ...]:
        """The provider's signing keys; when no key carries `kid`, the set is fetched again
        before the caller gives up on the token (within the limits the module names)."""
        entry = self._entry(issuer)
        held = entry.key_set
        now = self._clock()
        stale = now - held.fetched_at > JWKS_TTL
        if not stale and not (refetch_on_miss and not any(k.kid == kid for k in held.keys)):
            return held.keys  # the common path (every login): no lock, no network
        return self._refetch_keys(held, entry.metadata.jwks_uri, now)

    def _refetch_keys(self, held: _KeySet, jwks_uri: str, now: float) -> tuple[PublicKey, ...]:
        claimed: threading.Event | None = None
        with self._lock:
            running = held.inflight
            if running is None and now - held.tried_at >= JWKS_REFETCH_INTERVAL:
                # Claimed before the fetch and kept whatever it brings: a failing, slow or
                # empty-handed endpoint is asked again only after the interval.
                held.tried_at = now
                held.inflight = claimed = threading.Event()
        if claimed is None:
            if running is not None and not held.keys:
                # A first fetch (a fresh worker at 08:30): wait for it a little rather than
                # refuse logins a healthy provider serves in milliseconds; bounded, as in `_entry`.
                running.wait(FIRST_FETCH_WAIT)
                if not held.keys and held.inflight is running:
                    raise SchoolUnreachable("provider key set not answering")
            return self._held_keys(held)
        try:
            keys = parse_key_set(get_json(self.session(), jwks_uri, PROVIDER_KEY_SET))
        except UpstreamFailure as failure:
            with self._lock:
                held.failure = type(failure), failure.code
            if held.keys:
                return held.keys  # keys we had beat none while the provider is down
            raise
        else:
            with self._lock:
                held.failure = None
                if keys or not held.keys:  # an empty set never replaces a good one
                    held.keys, held.fetched_at = keys, now
            return held.keys
        finally:
            with self._lock:
                held.inflight = None
            claimed.set()

    @staticmethod
    def _held_keys(held: _KeySet) -> tuple[PublicKey, ...]:
        """The keys held, for a request that may not fetch now. With none held because the last
        fetch failed, that failure (its kind and code), not an "unknown key" refusal."""
        failure = held.failure
        if not held.keys and failure is not None:
            kind, code = failure
            raise kind("provider key set failed recently", code=code)
        return held.keys

    def fetch_metadata(self, issuer: str) -> ProviderMetadata:
        """Fetch and check the discovery document now (no cache): what `school add` runs."""
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
            # OIDC Discovery 3: an issuer has no query or fragment. With one, the well-known
            # suffix would land in a query string and reach whatever path the issuer names.
            raise ProviderInvalid(N_("issuer must not have a query or fragment"))
        url = issuer.rstrip("/") + WELL_KNOWN
        if (refused := host_refusal(issuer)) is not None:  # why: core/endpoints.py
            if refused.ascii_form is None:  # not a domain name
                raise ProviderInvalid(NOT_A_DOMAIN_NAME)
            raise ProviderInvalid(NON_ASCII_ISSUER, url=refused.ascii_form)
        if not is_acceptable_endpoint(url):
            raise ProviderInvalid(N_("issuer must be an https URL (or loopback http)"))
        return parse_discovery(get_json(self.session(), url, DISCOVERY_DOCUMENT), issuer)

    def _entry(self, issuer: str) -> _Entry:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(issuer)
            failed_at = self._failures.get(issuer)
            if entry is not None and now - entry.fetched_at < DISCOVERY_TTL:
                return entry
            if failed_at is not None and now - failed_at < FAILURE_BACKOFF:
                # One slow, dead provider must not cost every page that lists it a full timeout.
                if entry is not None:
                    return entry
                raise SchoolUnreachable("provider recently unreachable")
            running = self._inflight.get(issuer)
            if running is None:
                self._inflight[issuer] = running = threading.Event()
                fetching = True
            else:
                fetching = False
        if not fetching:
            # Another request of this worker is fetching the document right now.
            if entry is not None:
                return entry  # a refresh: the document we have serves meanwhile
            # The first fetch (a fresh worker at 08:30, many students at once): wait for it a
            # little rather than fail a login a healthy provider answers in milliseconds; a
            # provider that hangs costs the waiters this much, never a full timeout each.
            running.wait(FIRST_FETCH_WAIT)
            with self._lock:
                entry = self._entries.get(issuer)
            if entry is None:
                raise SchoolUnreachable("provider not answering")
            return entry
        try:
            metadata = self.fetch_metadata(issuer)
        except UpstreamFailure:
            with self._lock:
                self._failures[issuer] = self._clock()
            if entry is not None:
                return entry  # the document we had is better than none while the provider is down
            raise
        else:
            with self._lock:
                fresh = _Entry(metadata, now)
                if entry is not None and entry.metadata.jwks_uri == metadata.jwks_uri:
                    # The same key set, with its times and a fetch that may be running.
                    fresh.key_set = entry.key_set
                self._entries[issuer] = fresh
                self._failures.pop(issuer, None)
            return fresh
        finally:
            with self._lock:
                self._inflight.pop(issuer, None)
            running.set()


def check_school_provider(
    directory: ProviderDirectory, issuer: str, algorithms: tuple[str, ...]
) -> ProviderMetadata:
    """What `school add --oidc-issuer` runs before writing anything: the discovery document
    checks out, the algorithms are asymmetric ones the provider signs with, and its key set
    holds at least one usable signing key."""
    refused = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
    if not algorithms or refused:
        raise ProviderInvalid(
            N_("algorithms %(refused)s not allowed; choose from %(allowed)s"),
            refused=", ".join(refused) or "(none)",
            allowed=", ".join(sorted(ASYMMETRIC_ALGORITHMS)),
        )
    metadata = directory.fetch_metadata(issuer)
    offered = metadata.signing_algorithms
    if offered and not set(algorithms) & set(offered):
        raise ProviderInvalid(
            N_("the provider signs ID tokens with %(offered)s, not %(chosen)s"),
            offered=", ".join(offered),
            chosen=", ".join(algorithms),
        )
    keys = parse_key_set(get_json(directory.session(), metadata.jwks_uri, PROVIDER_KEY_SET))
    if not keys:
        raise ProviderInvalid(N_("the provider's key set holds no usable signing key"))
    return metadata
