"""The origin of a URL as the address spells it, for a page's form-action (core/origins.py)."""

from __future__ import annotations

import pytest

from broker.core.origins import origin_of_address, written_origin


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://sp.example/acs?x=1#f", "https://sp.example"),
        # As spelled: a browser matches a CSP source case-blind, and an explicit default port
        # as none, so the header keeps the registered address's own text.
        ("https://sp.example:443/acs", "https://sp.example:443"),
        ("http://localhost:80/cb", "http://localhost:80"),
        ("https://sp.example:8443/acs", "https://sp.example:8443"),
        ("https://SP.Example/acs", "https://SP.Example"),
        ("HTTPS://sp.example/acs", "https://sp.example"),
        ("https://[2001:db8::1]:8443/acs", "https://[2001:db8::1]:8443"),
        ("http://[::1]/cb", "http://[::1]"),
    ],
)
def test_an_origin_keeps_the_address_text(url: str, origin: str) -> None:
    assert written_origin(url) == origin


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/saml/acs",  # on the broker itself: 'self' covers it
        "sp.example/acs",  # no scheme
        "//sp.example/acs",  # no scheme
        "https:///acs",  # no host
        "ftp://sp.example/acs",
        "javascript:alert(1)",
        "https://user:secret@sp.example/acs",  # a CSP source with a password is void
        "https://user@sp.example/acs",
        "https://[2001:db8::1/acs",  # does not parse
    ],
)
def test_no_origin_for_anything_but_an_absolute_http_address(url: str) -> None:
    assert written_origin(url) is None


def test_the_compared_origin_drops_what_a_browser_ignores() -> None:
    assert origin_of_address("https://user:secret@App.example:443/cb") == "https://app.example"


def test_both_forms_agree_on_an_address_written_plainly() -> None:
    for url in ("https://sp.example/acs", "http://127.0.0.1:9400/cb", "https://[::1]:8443/x"):
        assert written_origin(url) == origin_of_address(url)
