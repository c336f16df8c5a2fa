"""Whole numbers from outside (core/whole_numbers.py): ASCII digits only, within a bound, where
str.isdigit let through what int() then refused or read as another number."""

from __future__ import annotations

import pytest

from broker.accounts import totp
from broker.core.whole_numbers import whole_number


@pytest.mark.parametrize(("text", "number"), [("0", 0), ("007", 7), ("123456789", 123456789)])
def test_ascii_digits_within_the_bound_are_a_number(text: str, number: int) -> None:
    assert whole_number(text, 9) == number


@pytest.mark.parametrize(
    "text",
    ["", "1" * 10, "\u00b2", "1\u00b2", "\u0661\u0662", "\uff11", "-1", "+1", " 1", "1\n", "1_0"],
)
def test_anything_else_is_none(text: str) -> None:
    assert whole_number(text, 9) is None


def test_a_totp_code_of_other_digits_is_refused_not_an_error() -> None:
    """ "²²²²²²" passed isdigit, and hmac.compare_digest raised on its non-ASCII text."""
    secret = totp.new_secret()
    assert totp.verify(secret, "\u00b2" * 6) is None
    assert totp.verify(secret, totp.code_at(secret, totp.current_step())) is not None
