"""Redis full under `noeviction`: it answers a PING but refuses every write, so logins get the
503. `/readyz` writes one small key (in the round trip a PING took) and says `not ready: store`
until Redis takes writes again.
"""

from __future__ import annotations

import pytest
import requests

from tests.support.federation import Federation

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]

FEDERATION = {"brokers": 1}


def readyz(fed: Federation) -> requests.Response:
    return requests.get(f"{fed.brokers[0].url}/readyz", timeout=10)


def test_a_full_redis_is_not_ready(fed: Federation) -> None:
    assert readyz(fed).status_code == 200
    with fed.redis.client() as client:
        assert client.ping()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")  # below what it holds: every write refused
        try:
            ready = readyz(fed)
            assert ready.status_code == 503
            assert ready.text == "not ready: store\n"
        finally:
            client.config_set("maxmemory", "0")
    assert readyz(fed).status_code == 200
