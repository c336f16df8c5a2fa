"""The benchmark's outside parties, each in its own process: `school` or `publisher`.

Usage: python bench/peers.py DIRECTORY PORT school|publisher

DIRECTORY holds a demo instance made by bench/throughput.py (`prepare_demo`, so the registry
already knows every peer); PORT is the broker's port, the peers use the demo's offsets.
`school` serves the demo school's SAML IdP (PORT+1) and OpenID provider (PORT+5); `publisher`
serves the SAML SP Leesplank (PORT+2) and the OIDC relying party Woordwijs (PORT+6). Both are
the demo's real pysaml2 / authlib parties: the SP checks every response fully (signatures of
response and assertion against the broker's metadata, audience, destination, InResponseTo,
time window); the RP checks the ID token's signature, iss, aud, nonce and expiry and compares
userinfo's sub. The RP caches the broker's discovery document and keys for the run, as a
production client does, so its logins do not add two or three extra fetches at the broker.

Prints `ready` on stdout once every server listens; stops on SIGTERM.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, prepare_demo, serve
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_PORT_OFFSET, oidc_publisher
from broker.demo.publisher_rp import create_publisher_rp_app
from broker.registry import SqlRegistry

ROLES = {"school": (1, 5), "publisher": (2, OIDC_PUBLISHER_PORT_OFFSET)}
PROVIDER_CACHE_SECONDS = 3600


def main() -> None:
    directory, port, role = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    settings, apps = prepare_demo(directory, port)
    wanted = {f"http://localhost:{port + offset}" for offset in ROLES[role]}
    if role == "publisher":
        rp = oidc_publisher(
            directory,
            port + OIDC_PUBLISHER_PORT_OFFSET,
            settings,
            SqlRegistry(settings.registry_url, seal=settings.secret_seal()),
            [DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID],
        )
        rp = dataclasses.replace(rp, provider_cache_seconds=PROVIDER_CACHE_SECONDS)
        apps[rp.base_url] = create_publisher_rp_app(rp)
    servers = serve({url: app for url, app in apps.items() if url in wanted})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main()
