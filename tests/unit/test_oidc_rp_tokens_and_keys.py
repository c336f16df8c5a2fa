"""ID token checks of the OIDC relying party, with tokens made by an independent library (PyJWT),
and the provider directory's caching rules with a fake clock and a fake network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import RSAKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from broker.core.errors import InvalidMessage, SchoolTimeout, UpstreamFailure
from broker.oidc.rp_discovery import (
    DISCOVERY_TTL,
    FAILURE_BACKOFF,
    JWKS_REFETCH_INTERVAL,
    JWKS_TTL,
    ProviderDirectory,
    ProviderInvalid,
    ProviderMetadata,
    PublicKey,
    parse_discovery,
    parse_key_set,
)
from broker.oidc.rp_id_token import Expected, check_issuer, verify_id_token

ISSUER = "https://op.school.example"
NOW = 1_800_000_000.0
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str) -> dict[str, Any]:
    """The public JWK as PyJWT writes it (not the broker's library)."""
    algorithm = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    data: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid}


KEYS: tuple[PublicKey, ...] = parse_key_set({"keys": [jwk(RSA_KEY, "r1"), jwk(EC_KEY, "e1")]})


def claims(**changes: Any) -> dict[str, Any]:
    values = {
        "iss": ISSUER,
        "sub": "s-1",
        "aud": "broker",
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "nonce": "n-1",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def token(
    payload: dict[str, Any], alg: str = "RS256", kid: str | None = "r1", key: Any = None
) -> str:
    headers = {"kid": kid} if kid else {}
    signing = key if key is not None else (EC_KEY if alg.startswith("ES") else RSA_KEY)
    return pyjwt.encode(payload, signing, algorithm=alg, headers=headers)


def verify(
    value: str, *, algorithms: tuple[str, ...] = ("RS256", "ES256"), **changes: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": "broker",
        "nonce": "n-1",
        "algorithms": algorithms,
        "now": NOW,
        "skew": 60,
    }
    fields.update(changes)
    return verify_id_token(value, lambda kid, refetch: KEYS, Expected(**fields))


def refused(value: str, code: str, **changes: Any) -> None:
    with pytest.raises(InvalidMessage) as caught:
        verify(value, **changes)
    assert caught.value.code == code


def test_a_good_token_from_pyjwt_verifies() -> None:
    assert verify(token(claims()))["sub"] == "s-1"
    assert verify(token(claims(), alg="ES256", kid="e1"))["sub"] == "s-1"
    assert verify(token(claims(aud=["broker", "x"], azp="broker")))["azp"] == "broker"


def test_the_skew_is_allowed_and_no_more() -> None:
    assert verify(token(claims(exp=int(NOW) - 30)))
    refused(token(claims(exp=int(NOW) - 61)), "expired")
    assert verify(token(claims(iat=int(NOW) + 30)))
    refused(token(claims(iat=int(NOW) + 61)), "issued_in_future")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (claims(iss=ISSUER + "/"), "issuer_mismatch"),
        (claims(aud="someone"), "wrong_audience"),
        (claims(aud=["broker", "x"]), "wrong_audience"),  # several audiences, no azp
        (claims(azp="someone"), "wrong_audience"),
        (claims(nonce=None), "nonce_mismatch"),
        (claims(nonce="n-2"), "nonce_mismatch"),
        (claims(exp=None), "malformed_id_token"),
        (claims(exp="soon"), "malformed_id_token"),
        (claims(sub=None), "malformed_id_token"),
    ],
)
def test_claim_checks(payload: dict[str, Any], code: str) -> None:
    refused(token(payload), code)


def test_algorithms_outside_the_schools_list_are_refused() -> None:
    refused(token(claims(), alg="ES256", kid="e1"), "alg_not_allowed", algorithms=("RS256",))
    # HS256 with the public key's PEM as secret: refused before any key is touched.
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    # The forgery by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
        + "."
        + b64(json.dumps(claims()).encode())
    )
    forged = (
        signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    )
    refused(forged, "alg_not_allowed", algorithms=("RS256", "HS256"))
    unsigned = (
        signing_input.replace(
            b64(json.dumps({"alg": "HS256", "kid": "r1"}).encode()), b64(b'{"alg":"none"}')
        )
        + "."
    )
    refused(unsigned, "alg_not_allowed", algorithms=("RS256", "none"))


def test_keys_are_chosen_by_kid() -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(token(claims(), key=stranger), "bad_signature")
    refused(token(claims(), kid="r9"), "unknown_kid")
    # Without a kid only a provider with exactly one key is unambiguous.
    refused(token(claims(), kid=None), "unknown_kid")


def test_max_age_needs_a_recent_auth_time() -> None:
    refused(token(claims()), "auth_too_old", max_age=600)
    assert verify(token(claims(auth_time=int(NOW) - 500)), max_age=600)
    refused(token(claims(auth_time=int(NOW) - 900)), "auth_too_old", max_age=600)


@pytest.mark.parametrize("value", ["", "a.b", "x" * 20000, "a.b.c"])
def test_malformed_tokens(value: str) -> None:
    refused(value, "malformed_id_token")


def raw_token(payload: str, header: dict[str, Any] | None = None) -> str:
    """A token signed over exactly these payload bytes (JSON written by hand)."""
    return pyjwt.api_jws.encode(
        payload.encode(), RSA_KEY, algorithm="RS256", headers=header or {"kid": "r1"}
    )


def claims_json(**raw: str) -> str:
    """The good claims as JSON text, with some members replaced by literal JSON text."""
    members = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in claims().items() if k not in raw]
    members += [f"{json.dumps(k)}: {v}" for k, v in raw.items()]
    return "{" + ", ".join(members) + "}"


@pytest.mark.parametrize("name", ["exp", "iat", "nbf", "auth_time"])
@pytest.mark.parametrize(
    "literal",
    [
        *("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "-1", str(2**40 + 1)),
        *("true", "false", "null", '"1800000300"', "[1800000300]", "{}"),
    ],
)
def test_time_claims_must_be_finite_numbers_in_range(name: str, literal: str) -> None:
    # Never a pass (a NaN exp compares false to everything, so it would never expire) and never
    # a crash (10**400 overflows float): always malformed_id_token.
    refused(raw_token(claims_json(**{name: literal})), "malformed_id_token", max_age=600)
    refused(raw_token(claims_json(**{name: literal})), "malformed_id_token")


def test_time_claims_at_the_edges_of_the_range() -> None:
    assert verify(token(claims(nbf=0, auth_time=int(NOW) - 10)), max_age=600)
    assert verify(token(claims(exp=2**40, iat=NOW - 0.5)))
    refused(token(claims(exp=2**40 + 1)), "malformed_id_token")


def test_nan_and_infinity_literals_are_refused_anywhere_in_the_token() -> None:
    refused(raw_token(claims_json(extra="NaN")), "malformed_id_token")
    refused(raw_token(claims_json(extra="[1, Infinity]")), "malformed_id_token")
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"r1","x":NaN}').rstrip(b"=")
    good = token(claims())
    refused(header.decode() + good[good.index(".") :], "malformed_id_token")
    # A payload that is JSON but not an object.
    refused(raw_token("[1, 2]"), "malformed_id_token")


def test_rsa_keys_shorter_than_2048_bits_are_not_believed() -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    # joserfc only warns when it loads such a key; whatever the key set does, verification refuses.
    with pytest.warns(SecurityWarning):
        weak = RSAKey.import_key(jwk(short, "short"))
    with pytest.warns(InsecureKeyLengthWarning):  # PyJWT, too, signs with it only under protest
        signed, signed_without_kid = (
            token(claims(), kid="short", key=short),
            token(claims(), kid=None, key=short),
        )
    keys: tuple[PublicKey, ...] = (weak, *KEYS)
    expected = Expected(ISSUER, "broker", "n-1", ("RS256",), NOW, 60)
    with pytest.raises(InvalidMessage) as caught:
        verify_id_token(signed, lambda kid, r: keys, expected)
    assert caught.value.code == "weak_key"
    # Without a kid and one (short) key: the same refusal, not a pass.
    alone: tuple[PublicKey, ...] = (weak,)
    with pytest.raises(InvalidMessage) as caught:
        verify_id_token(signed_without_kid, lambda kid, r: alone, expected)
    assert caught.value.code == "weak_key"
    assert verify_id_token(token(claims()), lambda kid, r: keys, expected)["sub"] == "s-1"


# -- discovery and key sets -------------------------------------------------------------------

DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
}


def test_discovery_document_checks() -> None:
    parsed = parse_discovery(dict(DOCUMENT), ISSUER)
    assert parsed.token_auth_methods == ("client_secret_basic",)
    assert not parsed.iss_parameter_supported
    for broken in (
        {"issuer": ISSUER + "/"},
        {"token_endpoint": "http://op.school.example/token"},
        # Where the student is sent to log out at the school: the same rule (security.md).
        {"end_session_endpoint": "http://op.school.example/logout"},
        {"code_challenge_methods_supported": ["plain"]},
        {"response_types_supported": ["id_token"]},
        {"jwks_uri": None},
    ):
        with pytest.raises(ProviderInvalid):
            parse_discovery({**DOCUMENT, **broken}, ISSUER)
    loopback = {**DOCUMENT, "token_endpoint": "http://127.0.0.1:8080/token"}
    assert parse_discovery(loopback, ISSUER).token_endpoint.startswith("http://127.0.0.1")


def test_key_sets_keep_only_asymmetric_signing_keys() -> None:
    keys = parse_key_set(
        {
            "keys": [
                jwk(RSA_KEY, "r1"),
                {**jwk(EC_KEY, "enc"), "use": "enc"},
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {"kty": "RSA", "kid": "broken", "n": "!", "e": "AQAB"},
            ]
        }
    )
    assert [k.kid for k in keys] == ["r1"]


class FakeResponse:
    def __init__(self, body: dict[str, Any]) -> None:
        self.status_code = 200
        self.content = json.dumps(body).encode()


class FakeSession:
    def __init__(self, network: dict[str, dict[str, Any]], log: list[str]) -> None:
        self.network, self.log = network, log

    def request(self, method: str, url: str, **_: Any) -> FakeResponse:
        self.log.append(url)
        return FakeResponse(self.network[url])


def test_unknown_kid_refetches_at_most_once_a_minute() -> None:
    clock = [NOW]
    fetched: list[str] = []
    network = {
        f"{ISSUER}/.well-known/openid-configuration": DOCUMENT,
        f"{ISSUER}/jwks": {"keys": [jwk(RSA_KEY, "r1")]},
    }
    directory = ProviderDirectory(lambda: FakeSession(network, fetched), lambda: clock[0])  # type: ignore[arg-type,return-value]
    assert [k.kid for k in directory.keys(ISSUER, "r1", refetch_on_miss=True)] == ["r1"]
    assert fetched.count(f"{ISSUER}/jwks") == 1
    # The provider rotates: the new kid is found by one refetch, but not twice in a minute.
    network[f"{ISSUER}/jwks"] = {"keys": [jwk(EC_KEY, "e1")]}
    clock[0] += 5
    assert [k.kid for k in directory.keys(ISSUER, "e1", refetch_on_miss=True)] == ["r1"]
    clock[0] += JWKS_REFETCH_INTERVAL
    assert [k.kid for k in directory.keys(ISSUER, "e1", refetch_on_miss=True)] == ["e1"]
    for _ in range(5):
        directory.keys(ISSUER, "zz", refetch_on_miss=True)
    assert fetched.count(f"{ISSUER}/jwks") == 2
    # The discovery document is fetched once and cached.
    assert fetched.count(f"{ISSUER}/.well-known/openid-configuration") == 1


def test_current_gives_only_a_document_held_fresh_and_never_fetches() -> None:
    """What the discovery page's prepared link may use (login_upstream.prepare_upstream): the
    document `metadata` would return without a network call, else nothing."""
    clock = [NOW]
    fetched: list[str] = []
    network = {f"{ISSUER}/.well-known/openid-configuration": DOCUMENT}
    directory = ProviderDirectory(lambda: FakeSession(network, fetched), lambda: clock[0])  # type: ignore[arg-type,return-value]
    assert directory.current(ISSUER) is None
    assert fetched == []
    held = directory.metadata(ISSUER)
    assert directory.current(ISSUER) == held and len(fetched) == 1
    clock[0] += DISCOVERY_TTL - 1
    assert directory.current(ISSUER) == held
    # Due for a refresh: not used as it is (the next `metadata` fetches it again).
    clock[0] += 1
    assert directory.current(ISSUER) is None
    assert directory.cached(ISSUER) == held  # the page's sign-in origin still has it
    assert len(fetched) == 1


class DeadSession:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def request(self, method: str, url: str, **_: Any) -> FakeResponse:
        self.log.append(url)
        raise UpstreamFailure("down", code="school_unreachable")


def test_an_unreachable_provider_is_not_asked_again_for_a_while() -> None:
    clock = [NOW]
    tried: list[str] = []
    directory = ProviderDirectory(lambda: DeadSession(tried), lambda: clock[0])  # type: ignore[arg-type,return-value]
    for _ in range(3):
        with pytest.raises(UpstreamFailure):
            directory.metadata(ISSUER)
    assert len(tried) == 1
    clock[0] += FAILURE_BACKOFF
    with pytest.raises(UpstreamFailure):
        directory.metadata(ISSUER)
    assert len(tried) == 2


def test_a_known_document_outlives_a_provider_outage() -> None:
    clock = [NOW]
    fetched: list[str] = []
    network = {f"{ISSUER}/.well-known/openid-configuration": DOCUMENT}
    sessions: list[FakeSession | DeadSession] = [FakeSession(network, fetched)]
    directory = ProviderDirectory(lambda: sessions[0], lambda: clock[0])  # type: ignore[arg-type,return-value]
    first = directory.metadata(ISSUER)
    sessions[0] = DeadSession(fetched)
    clock[0] += DISCOVERY_TTL + 1
    assert directory.metadata(ISSUER) == first


class SlowSession(FakeSession):
    """A provider that answers after `delay` seconds, or (with `gate`) once the gate opens."""

    def __init__(
        self,
        network: dict[str, dict[str, Any]],
        log: list[str],
        delay: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        super().__init__(network, log)
        self.delay, self.gate = delay, gate

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        return super().request(method, url, **kwargs)


def _first_fetch_race(directory: ProviderDirectory, count: int) -> list[object]:
    results: list[object] = []

    def ask() -> None:
        try:
            results.append(directory.metadata(ISSUER))
        except UpstreamFailure as err:
            results.append(err)

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return results


def test_concurrent_first_logins_wait_for_the_one_discovery_fetch() -> None:
    """A fresh worker (gthread) meeting many students of one OIDC school at once: one fetch,
    every login served, none refused as 'school unreachable'."""
    fetched: list[str] = []
    network = {f"{ISSUER}/.well-known/openid-configuration": DOCUMENT}
    directory = ProviderDirectory(lambda: SlowSession(network, fetched, delay=0.2))  # type: ignore[arg-type,return-value]
    results = _first_fetch_race(directory, 8)
    assert len(results) == 8
    assert all(isinstance(r, ProviderMetadata) for r in results), results
    assert fetched.count(f"{ISSUER}/.well-known/openid-configuration") == 1


def test_waiting_for_a_hanging_provider_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("broker.oidc.rp_discovery.FIRST_FETCH_WAIT", 0.2)
    gate = threading.Event()
    fetched: list[str] = []
    network = {f"{ISSUER}/.well-known/openid-configuration": DOCUMENT}
    directory = ProviderDirectory(lambda: SlowSession(network, fetched, gate=gate))  # type: ignore[arg-type,return-value]
    first = threading.Thread(target=lambda: directory.metadata(ISSUER))
    first.start()
    time.sleep(0.05)  # the first request is now waiting on the provider
    waiters = _first_fetch_race(directory, 3)
    gate.set()  # only now does the provider answer the first request
    first.join(5)
    assert all(
        isinstance(r, UpstreamFailure) and r.code == "school_unreachable" for r in waiters
    ), waiters
    assert isinstance(directory.metadata(ISSUER), ProviderMetadata)  # the first fetch landed


# -- the key-set refetch limit: at most one fetch a minute per issuer, whatever it brings ------

JWKS_URL = f"{ISSUER}/jwks"


class KeySetEndpoint:
    """A provider whose key-set endpoint the test switches: answering `answer`, or (`down`) not
    answering in time, each time after `gate` opens (when there is one)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.answer: dict[str, Any] = {"keys": [jwk(RSA_KEY, "r1")]}
        self.down = False
        self.gate: threading.Event | None = None

    def request(self, method: str, url: str, **_: Any) -> FakeResponse:
        self.log.append(url)
        if url != JWKS_URL:
            return FakeResponse(DOCUMENT)
        if self.gate is not None:
            self.gate.wait(10)
        if self.down:
            raise SchoolTimeout("no answer")
        return FakeResponse(self.answer)


class KeySetCase:
    """A directory over a `KeySetEndpoint`, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = NOW
        self.endpoint = KeySetEndpoint()
        self.directory = ProviderDirectory(lambda: self.endpoint, lambda: self.now)  # type: ignore[arg-type,return-value]

    def later(self, seconds: float) -> None:
        self.now += seconds

    def fetches(self) -> int:
        return self.endpoint.log.count(JWKS_URL)

    def kids(self, kid: str, *, refetch_on_miss: bool = True) -> list[str]:
        held = self.directory.keys(ISSUER, kid, refetch_on_miss=refetch_on_miss)
        return [str(k.kid) for k in held]

    def verified(self, kid: str) -> dict[str, Any]:
        """An ID token signed with RSA_KEY under `kid`, checked against the directory's keys."""
        return verify_id_token(
            token(claims(), kid=kid),
            lambda k, refetch: self.directory.keys(ISSUER, k, refetch_on_miss=refetch),
            Expected(ISSUER, "broker", "n-1", ("RS256",), NOW, 60),
        )


@pytest.fixture
def case() -> KeySetCase:
    return KeySetCase()


def test_a_failing_key_set_endpoint_is_asked_at_most_once_a_minute(case: KeySetCase) -> None:
    assert case.kids("r1") == ["r1"]
    case.endpoint.down = True
    case.later(JWKS_REFETCH_INTERVAL)
    # Fifty tokens with made-up kids in the same second: one try, which fails; each token is
    # refused as an unknown key, and a real login goes on with the keys held.
    for i in range(50):
        with pytest.raises(InvalidMessage) as caught:
            case.verified(f"forged-{i}")
        assert caught.value.code == "unknown_kid"
    assert case.verified("r1")["sub"] == "s-1"
    assert case.fetches() == 2
    # Asked again only once the interval has passed since that try, and then once.
    case.later(JWKS_REFETCH_INTERVAL - 1)
    assert case.kids("forged") == ["r1"]
    assert case.fetches() == 2
    case.later(1)
    for _ in range(5):
        assert case.kids("forged") == ["r1"]
    assert case.fetches() == 3
    # Back up with a rotated key: the next try after the interval finds it.
    case.endpoint.down, case.endpoint.answer = False, {"keys": [jwk(EC_KEY, "e1")]}
    case.later(JWKS_REFETCH_INTERVAL)
    assert case.kids("e1") == ["e1"]
    assert case.fetches() == 4


def test_with_no_keys_held_a_failing_endpoint_is_the_error_not_an_unknown_key(
    case: KeySetCase,
) -> None:
    case.endpoint.down = True
    for _ in range(10):
        with pytest.raises(SchoolTimeout) as caught:
            case.verified("r1")
        assert caught.value.code == "school_timeout"
    assert case.fetches() == 1
    case.endpoint.down = False
    case.later(JWKS_REFETCH_INTERVAL)
    assert case.verified("r1")["sub"] == "s-1"
    assert case.fetches() == 2


def test_an_empty_key_set_answer_keeps_the_keys_and_the_limit(case: KeySetCase) -> None:
    assert case.kids("r1") == ["r1"]
    case.endpoint.answer = {"keys": []}
    case.later(JWKS_REFETCH_INTERVAL)
    for i in range(50):
        assert case.kids(f"forged-{i}") == ["r1"]
    assert case.fetches() == 2
    case.later(JWKS_REFETCH_INTERVAL)
    assert case.kids("forged") == ["r1"]
    assert case.fetches() == 3
    # The empty answers did not make the set held fresh: an hour after it was taken it is stale.
    case.later(JWKS_TTL - 2 * JWKS_REFETCH_INTERVAL + 1)
    case.endpoint.answer = {"keys": [jwk(EC_KEY, "e1")]}
    assert case.kids("r1", refetch_on_miss=False) == ["e1"]
    assert case.fetches() == 4


def test_a_stale_key_set_is_fetched_again_and_a_failing_one_after_the_interval(
    case: KeySetCase,
) -> None:
    assert case.kids("r1", refetch_on_miss=False) == ["r1"]
    case.later(JWKS_TTL - 1)
    assert case.kids("r1", refetch_on_miss=False) == ["r1"]
    assert case.fetches() == 1  # fresh for the hour: no fetch
    # Stale, and the endpoint down: the keys held serve; one try a minute, not one per login.
    case.endpoint.down = True
    case.later(2)
    for _ in range(20):
        assert case.kids("r1", refetch_on_miss=False) == ["r1"]
    assert case.fetches() == 2
    case.later(JWKS_REFETCH_INTERVAL)
    assert case.kids("r1", refetch_on_miss=False) == ["r1"]
    assert case.fetches() == 3
    # Back up, rotated: the stale set is replaced, and is fresh again for an hour.
    case.endpoint.down, case.endpoint.answer = False, {"keys": [jwk(EC_KEY, "e1")]}
    case.later(JWKS_REFETCH_INTERVAL)
    assert case.kids("e1", refetch_on_miss=False) == ["e1"]
    case.later(JWKS_TTL - 1)
    assert case.kids("e1", refetch_on_miss=False) == ["e1"]
    assert case.fetches() == 4


def _kids_in_threads(case: KeySetCase, names: list[str]) -> dict[str, object]:
    """Each kid asked for by a thread of its own: the keys each got, or the failure."""
    results: dict[str, object] = {}

    def ask(kid: str) -> None:
        try:
            results[kid] = case.kids(kid)
        except UpstreamFailure as err:
            results[kid] = err

    threads = [threading.Thread(target=ask, args=(kid,)) for kid in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_unknown_kids_during_one_slow_fetch_make_no_fetch_of_their_own(case: KeySetCase) -> None:
    assert case.kids("r1") == ["r1"]
    case.endpoint.gate = gate = threading.Event()
    case.endpoint.answer = {"keys": [jwk(RSA_KEY, "r1"), jwk(EC_KEY, "e1")]}
    case.later(JWKS_REFETCH_INTERVAL)
    first: dict[str, object] = {}
    slow = threading.Thread(target=lambda: first.update(_kids_in_threads(case, ["x0"])))
    slow.start()
    deadline = time.monotonic() + 5
    while case.fetches() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert case.fetches() == 2  # x0's fetch is held at the provider
    # 19 more unknown kids meanwhile: each is answered at once with the keys held, no fetch.
    others = _kids_in_threads(case, [f"x{i}" for i in range(1, 20)])
    assert others == {f"x{i}": ["r1"] for i in range(1, 20)}
    assert not gate.is_set()
    gate.set()
    slow.join(10)
    assert first == {"x0": ["r1", "e1"]}
    assert case.fetches() == 2


def test_concurrent_first_logins_wait_for_the_one_key_set_fetch(case: KeySetCase) -> None:
    """A fresh worker: no key held yet, many ID tokens at once; one fetch serves them all."""
    case.directory.metadata(ISSUER)
    case.endpoint.gate = gate = threading.Event()
    threading.Timer(0.2, gate.set).start()
    results = _kids_in_threads(case, ["r1", *(f"r1-{i}" for i in range(7))])
    assert results == {"r1": ["r1"], **{f"r1-{i}": ["r1"] for i in range(7)}}
    assert case.fetches() == 1


def test_waiting_for_a_hanging_key_set_endpoint_is_bounded(
    case: KeySetCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("broker.oidc.rp_discovery.FIRST_FETCH_WAIT", 0.2)
    case.directory.metadata(ISSUER)
    case.endpoint.gate = gate = threading.Event()
    first = threading.Thread(target=lambda: case.kids("r1", refetch_on_miss=False))
    first.start()
    time.sleep(0.05)  # the first request is now waiting on the provider
    waiters = _kids_in_threads(case, ["a", "b", "c"])
    gate.set()
    first.join(5)
    assert all(
        isinstance(r, UpstreamFailure) and r.code == "school_unreachable" for r in waiters.values()
    ), waiters
    assert case.fetches() == 1
    assert case.kids("r1") == ["r1"]  # the first fetch landed


GOOGLE = "https://accounts.google.com"


@pytest.mark.parametrize(
    ("iss", "issuer", "accepted"),
    [
        # Google documents both spellings of its issuer (OIDC Core 3.1.3.7 wants an exact
        # match): for that issuer, the bare host is taken too.
        ("accounts.google.com", GOOGLE, True),
        (GOOGLE, GOOGLE, True),
        # No other leeway, for Google or anyone.
        ("accounts.google.com/", GOOGLE, False),
        ("http://accounts.google.com", GOOGLE, False),
        ("ACCOUNTS.GOOGLE.COM", GOOGLE, False),
        ("op.school.example", ISSUER, False),
        ("accounts.google.com", ISSUER, False),
    ],
)
def test_googles_bare_issuer_is_googles_and_nobody_elses(
    iss: str, issuer: str, accepted: bool
) -> None:
    value = token(claims(iss=iss))
    if accepted:
        assert verify(value, issuer=issuer)["iss"] == iss
    else:
        refused(value, "issuer_mismatch", issuer=issuer)


@pytest.mark.parametrize("iss", [[GOOGLE], [], {"x": 1}, 7])
def test_an_issuer_that_is_no_string_is_refused_not_a_crash(iss: object) -> None:
    """A signed token's `iss` that is a list or object (a logout token's fuzz found it): a list
    is no key of the issuer table; refused as a mismatch."""
    with pytest.raises(InvalidMessage) as refused_iss:
        check_issuer({"iss": iss}, Expected(GOOGLE, "broker", "n-1", ("RS256",), NOW, 60))
    assert refused_iss.value.code == "issuer_mismatch"
