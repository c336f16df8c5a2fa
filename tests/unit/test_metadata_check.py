"""Which endpoint URLs the broker accepts in metadata and as metadata sources."""

from __future__ import annotations

import pytest

from broker.core.endpoints import is_acceptable_endpoint


@pytest.mark.parametrize(
    "url",
    [
        "https://uitgever.example/saml/acs",
        "http://127.0.0.1:8002/acs",
        "http://127.8.9.10/acs",
        "http://localhost:8002/acs",
        "http://[::1]:8002/acs",
    ],
)
def test_accepted(url: str) -> None:
    assert is_acceptable_endpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://uitgever.example/acs",
        "http://127.evil.example/acs",
        "http://127.0.0.1.nip.io/acs",
        "http://localhost.evil.example/acs",
        "http://10.0.0.1/acs",
        "javascript:alert(1)",
        "ftp://127.0.0.1/acs",
        "https:///acs",
    ],
)
def test_refused(url: str) -> None:
    assert not is_acceptable_endpoint(url)
