"""The origins an approved client's publisher may change addresses on (core/client_hosts.py)."""

from __future__ import annotations

import pytest

from broker.core.client_hosts import addresses_fingerprint, client_origins
from broker.core.model import ClientAuthMethod, OidcClient
from broker.core.origins import origin_of_address


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://App.Example/cb?x=1", "https://app.example"),
        ("https://app.example:443/cb", "https://app.example"),
        ("https://app.example:8443/cb", "https://app.example:8443"),
        ("HTTP://localhost:80/cb", "http://localhost"),
        ("http://127.0.0.1:9400/cb", "http://127.0.0.1:9400"),
        ("https://[2001:DB8::1]:8443/cb", "https://[2001:db8::1]:8443"),
        # Not a port: an origin of its own, equal to no other.
        ("https://app.example:99999/cb", "https://app.example:99999"),
    ],
)
def test_an_origin_is_what_a_browser_compares(uri: str, origin: str) -> None:
    assert origin_of_address(uri) == origin


def test_every_address_of_a_client_counts() -> None:
    client = OidcClient(
        ("https://app.example/cb",),
        ClientAuthMethod.SECRET_BASIC,
        post_logout_redirect_uris=("https://www.app.example/bye",),
        backchannel_logout_uri="https://api.app.example:8443/bcl",
    )
    assert client_origins(client) == {
        "https://app.example",
        "https://www.app.example",
        "https://api.app.example:8443",
    }


def test_the_fingerprint_changes_with_any_address() -> None:
    client = OidcClient(("https://app.example/cb",), ClientAuthMethod.SECRET_BASIC)
    seen = addresses_fingerprint(client)
    assert addresses_fingerprint(client) == seen
    for moved in (
        OidcClient(("https://app.example/cb2",), ClientAuthMethod.SECRET_BASIC),
        OidcClient(
            ("https://app.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            post_logout_redirect_uris=("https://app.example/bye",),
        ),
        OidcClient(
            ("https://app.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            backchannel_logout_uri="https://app.example/bcl",
        ),
    ):
        assert addresses_fingerprint(moved) != seen
