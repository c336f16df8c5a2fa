"""The AuthnRequest to a school: pysaml2's route against the broker's, alternating in one process.

Usage: python bench/upstream_request.py [--calls 2000]

Builds the demo in a temporary directory and times, call by call and alternating so that the
machine's load hits both alike, the thread CPU of: pysaml2's `create_authn_request` +
`apply_binding` (the route before, inline here), `SamlBack.authn_request` (the route now), and the
RSA signature alone with the same key (the floor of both). Medians in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from saml2 import BINDING_HTTP_REDIRECT
from saml2.saml import NAMEID_FORMAT_PERSISTENT

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo

PORT = 8400  # only used in URLs: nothing listens
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RELAY_STATE = "x" * 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-bench-upstream-") as tmp:
        settings, apps = prepare_demo(Path(tmp), PORT)
        broker = apps[settings.base_url].extensions["ketenbroker"]
        school = broker.registry.school(DEMO_SCHOOL_ID)
        back = broker.saml_back
        key = back.entities.redirect_signing_key()

        def pysaml2_route() -> None:
            client = back.entities.client
            endpoints = client.metadata.single_sign_on_service(
                school.idp_entity_id, BINDING_HTTP_REDIRECT
            )
            location = endpoints[0]["location"]
            _, request = client.create_authn_request(
                location,
                binding=BINDING_HTTP_REDIRECT,
                sign=False,
                nameid_format=NAMEID_FORMAT_PERSISTENT,
            )
            client.apply_binding(
                BINDING_HTTP_REDIRECT,
                str(request),
                location,
                RELAY_STATE,
                sign=True,
                sigalg=RSA_SHA256,
            )

        def broker_route() -> None:
            back.authn_request(school, RELAY_STATE)

        def signature_alone() -> None:
            key.sign(b"x" * 700, padding.PKCS1v15(), hashes.SHA256())

        routes: dict[str, Callable[[], None]] = {
            "pysaml2 (before)": pysaml2_route,
            "broker (now)": broker_route,
            "RSA signature alone": signature_alone,
        }
        spent: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(50):
            for route in routes.values():
                route()
        for _ in range(args.calls):
            for name, route in routes.items():
                start = time.thread_time()
                route()
                spent[name].append((time.thread_time() - start) * 1000)
    print(f"AuthnRequest to the school, thread CPU per call, median of {args.calls} (ms)")
    for name, values in spent.items():
        print(f"{name:22} {statistics.median(values):7.3f}")


if __name__ == "__main__":
    main()
