"""Whole numbers in text that comes from outside (a request's parameters, a peer's headers).

`str.isdigit` is no check for what `int()` takes: "²" is a digit to it and a ValueError to
`int()` (a 500 where a refusal was meant), and `int()` in turn reads Arabic-Indic or full-width
digits as numbers no protocol meant, and refuses text over 4300 digits. A protocol's numbers
are ASCII digits, and a bound on their length keeps `int()` cheap.
"""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str, max_digits: int) -> int | None:
    """`text` as a number when it is 1 to `max_digits` ASCII digits (leading zeros allowed),
    else None."""
    if len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)


# A Content-Length of more digits than this is not read as a number (int() refuses text over
# 4300 digits): the caller's cap on what it reads decides then. Far more than any length the
# broker would take (its caps are a few MB), so a real length is always read.
CONTENT_LENGTH_DIGITS = 100

# An OIDC `max_age` (seconds, Core 3.1.2.1): the provider refuses one of more digits
# (authorization_checks.py), and the client side reads the one it passed on to the school back
# from the login's record with the same bound (back.py). Nine digits are some thirty years.
MAX_AGE_DIGITS = 9
