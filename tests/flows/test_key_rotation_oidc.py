"""OpenID Connect relying parties across a signing key rotation, with real logins.

The whole demo runs around a broker whose signing key set follows a clock the test controls
(as in test_key_rotation.py). Two publishers are the demo's authlib relying party, each keeping
the broker's discovery document and JWKS as a production client does: one fetches the JWKS again
when an ID token names a key id it does not know (what OpenID Connect clients commonly do), the
other never looks again. Each login is a real one (the browser through the broker and the demo
school); the relying party checks the ID token's signature with joserfc against its own copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker.core.model import Declaration
from broker.keys import rotation
from broker.keys.live import LiveKeySet
from broker.oidc.signing_keys import key_ids
from tests.flows.test_key_rotation import Clock
from tests.support.client import Browser
from tests.support.live import LiveDemo

UID = "sanne.jansen"
FOREVER = 10 * 365 * 86400  # the relying parties' cache: no refresh by age during the test
DECLARATIONS = (Declaration("given_name", "To greet the student by name."),)


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveDemo, Clock]]:
    clock = Clock()
    clock.now = float(int(time.time()))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    demo = LiveDemo(
        tmp_path_factory.mktemp("oidc-rotation-demo"),
        signing_keys=lambda settings: LiveKeySet(settings, clock=clock, monotonic=clock),
    )
    try:
        yield demo, clock
    finally:
        demo.close()


def login(demo: LiveDemo, publisher: str) -> dict[str, Any]:
    """A real login at `publisher`: what its relying party received (the ID token's claims and
    key id), or `{"error": ...}` with the page it showed when it refused."""
    browser = Browser()
    done = demo.login(browser, publisher, UID)
    received = demo.received(browser, publisher)
    if done.final.status != 200:
        assert done.final.status == 403, done.final.text
        assert "error" in received
        received["page"] = done.final.text
    else:
        assert received["sub"] == demo.expected_pseudonym(UID, "leermiddelen")
        assert received["id_token"]["iss"] == demo.broker_url
    return received


def test_relying_parties_that_cache_the_jwks_across_a_rotation(
    rotating: tuple[LiveDemo, Clock],
) -> None:
    demo, clock = rotating
    settings = demo.settings
    assert settings.key_rotation is not None
    for publisher, refresh in (("kid-refreshing", True), ("never-refreshing", False)):
        demo.add_oidc_publisher(
            publisher,
            "leermiddelen",
            DECLARATIONS,
            released=frozenset({"given_name"}),
            scope="openid profile",
            provider_cache_seconds=FOREVER,
            refresh_keys_on_unknown_kid=refresh,
        )
    old_kid = key_ids(demo.broker.keys.current().signing)["RS256"]

    # Before the rotation both log in and keep the JWKS they fetched (key 1 only).
    for publisher in ("kid-refreshing", "never-refreshing"):
        assert login(demo, publisher)["id_token_kid"] == old_kid

    new = rotation.rotate(settings, clock())
    new_kid = key_ids(new)["RS256"]
    assert new_kid != old_kid
    clock.now += settings.key_rotation.check_seconds  # every worker has read the manifest
    # Published, not signing: nothing changes for either, up to the last second before the switch.
    for moment in (clock.now, new.signing_from - 1):
        clock.now = moment
        for publisher in ("kid-refreshing", "never-refreshing"):
            assert login(demo, publisher)["id_token_kid"] == old_kid

    # The switch: the ID token names the new key. The client that refreshes on an unknown kid
    # fetches the JWKS (which has held the new key since `keys rotate`) and carries on; the
    # client that never refreshes fails from this moment on, and only from this moment on.
    clock.now = new.signing_from
    assert login(demo, "kid-refreshing")["id_token_kid"] == new_kid
    refused = login(demo, "never-refreshing")
    assert "The ID token was refused: invalid_key_id." in refused["page"]

    # Until the old key retires and after: the refreshed copy holds the new key, so the client
    # keeps verifying without another fetch; the stale client still fails.
    old = next(g for g in demo.broker.keys.current().published if g.number == 1)
    assert old.retire_after is not None
    for moment in (old.retire_after - 1, old.retire_after, old.retire_after + 30 * 86400):
        clock.now = moment
        assert login(demo, "kid-refreshing")["id_token_kid"] == new_kid
        assert "error" in login(demo, "never-refreshing")
    # Retired: the JWKS now holds the new key's kids only.
    assert demo.broker.oidc_front is not None
    published = {key["kid"] for key in demo.broker.oidc_front.jwks()["keys"]}
    assert published == set(key_ids(new).values())
