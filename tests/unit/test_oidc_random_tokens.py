"""Codes, access and refresh tokens of the OpenID provider (oidc/grants.py `random_token`):
authlib's alphabet and lengths, every character equally likely, from the OS's CSPRNG."""

from __future__ import annotations

import secrets
import string
from collections import Counter

import pytest

from broker.oidc.grants import random_token

ALPHABET = set(string.ascii_letters + string.digits)


@pytest.mark.parametrize("length", [1, 43, 48, 200])
def test_the_length_asked_for_from_the_alphanumeric_alphabet(length: int) -> None:
    token = random_token(length)
    assert len(token) == length
    assert set(token) <= ALPHABET


def test_every_character_is_about_equally_likely() -> None:
    # 62 characters; 200,000 draws: each ~3226 times. A modulo bias (bytes 248-255 folded
    # onto the first eight characters) would give those a quarter more; the bound allows
    # under 9 % either way (5 standard deviations), which chance does not reach.
    counts = Counter("".join(random_token(100) for _ in range(2000)))
    assert set(counts) == ALPHABET
    expected = 200_000 / 62
    assert all(abs(n - expected) < 5 * expected**0.5 for n in counts.values())


def test_dropped_bytes_are_made_up_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # A random read that is all bytes the mapping drops still ends in a full-length token.
    reads = iter([bytes([255] * 56), bytes(range(56))])
    monkeypatch.setattr(secrets, "token_bytes", lambda n: next(reads)[:n])
    assert random_token(48) == (string.ascii_letters + string.digits)[:48]


def test_no_two_alike() -> None:
    assert len({random_token(43) for _ in range(10_000)}) == 10_000
