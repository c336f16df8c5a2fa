"""Time the check of one HTTP-Redirect query signature: the broker's own verifier against the
pysaml2 call it replaced.

Usage: python bench/redirect_signature.py [--number 2000] [--repeat 7]

- "pysaml2 (before)": what redirect_signature.check_redirect_signature did until 2026-11:
  `saml2.sigver.verify_redirect_signature` per metadata certificate (it re-encodes the decoded
  values, parses the PEM certificate on every call, and verifies with `cryptography`); the
  values decoded with `parse_qs`, standing in for the route's `request.args`.
- "broker (now)": `read_redirect_query` on the raw query string plus `check_query_signature`
  (the signed octets cut from the raw query, the certificate's key cached, `cryptography`).

Both verify the same AuthnRequest query (RSA-2048, RSA-SHA256, with a RelayState, encoded as
Python encodes it so that the old path can verify it at all), with the matching key listed
first and then second (a key rollover); ECDSA P-256 for the new path only (pysaml2 cannot).
The metadata lookup that feeds both is the same and left out. Figures: timeit with
`time.thread_time`, the best of `repeat` runs, per call in microseconds.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable
from urllib.parse import parse_qs

from saml2.sigver import verify_redirect_signature

from broker.saml.redirect_query import read_redirect_query
from broker.saml.redirect_signature import check_query_signature
from broker.saml.xmlsig import _AllowListRSACrypto
from tests.support.redirect_signer import authn_request, make_signer, signed_query

REQUEST = authn_request(
    "https://sp.example/metadata", "https://kb.example/saml/idp/sso", "https://sp.example/acs"
)
RELAY_STATE = "https://sp.example/~les/1"


def per_call_us(action: Callable[[], object], number: int, repeat: int) -> float:
    action()  # warm caches (the parsed key) as a running broker has them
    timer = timeit.Timer(action, timer=time.thread_time)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def before(query_string: str, certs: list[str]) -> Callable[[], object]:
    backend = _AllowListRSACrypto(None)

    def run() -> None:
        values = {k: v[0] for k, v in parse_qs(query_string).items()}
        assert any(verify_redirect_signature(values, backend, cert) for cert in certs)

    return run


def now(query_string: str, certs: list[str]) -> Callable[[], object]:
    raw = query_string.encode()

    def run() -> None:
        received = read_redirect_query(raw)
        message = ("SAMLRequest", received.value("SAMLRequest") or "")
        check_query_signature(certs, message, received.value("RelayState"), received)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    signer, other, ecdsa = make_signer("rsa"), make_signer("rsa"), make_signer("p256")
    rsa_query = signed_query("SAMLRequest", REQUEST, RELAY_STATE, signer)
    ec_query = signed_query("SAMLRequest", REQUEST, RELAY_STATE, ecdsa)
    print(f"per call, µs (thread CPU, best of {args.repeat} runs of {args.number})")
    print(f"{'case':<30} {'pysaml2 (before)':>17} {'broker (now)':>13}")
    for name, certs in (
        ("RSA-2048, key listed first", [signer.cert]),
        ("RSA-2048, key listed second", [other.cert, signer.cert]),
    ):
        old = per_call_us(before(rsa_query, certs), args.number, args.repeat)
        new = per_call_us(now(rsa_query, certs), args.number, args.repeat)
        print(f"{name:<30} {old:>17.1f} {new:>13.1f}")
    ecdsa_us = per_call_us(now(ec_query, [ecdsa.cert]), args.number, args.repeat)
    print(f"{'ECDSA P-256, key listed first':<30} {'(cannot)':>17} {ecdsa_us:>13.1f}")


if __name__ == "__main__":
    main()
