"""The logout forms' token (broker/login/logout_form.py): bound to the browser's secret, good
for a day, older or missing asks again, anything not made for this browser is forged."""

from __future__ import annotations

import pytest

from broker.login import logout_form

FormToken = logout_form.FormToken
check = logout_form.check_form_token
make = logout_form.make_form_token
SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))
NOW = 1_800_000_000.0


def test_a_token_is_good_for_a_day_in_its_own_browser_only() -> None:
    token = make(SECRET, NOW)
    assert check(SECRET, token, NOW) is FormToken.GOOD
    assert check(SECRET, token, NOW + 3601) is FormToken.GOOD  # Flask-WTF's hour
    assert check(SECRET, token, NOW + logout_form.FORM_SECONDS) is FormToken.GOOD
    assert check(SECRET, token, NOW + logout_form.FORM_SECONDS + 1) is FormToken.STALE
    assert check(OTHER, token, NOW) is FormToken.FORGED


def test_another_workers_clock_a_little_behind_still_takes_it() -> None:
    token = make(SECRET, NOW)
    assert check(SECRET, token, NOW - logout_form.CLOCK_SKEW) is FormToken.GOOD
    assert check(SECRET, token, NOW - logout_form.CLOCK_SKEW - 1) is FormToken.STALE


def test_no_token_field_asks_again_an_empty_one_is_forged() -> None:
    assert check(SECRET, None, NOW) is FormToken.MISSING
    assert check(SECRET, "", NOW) is FormToken.FORGED


@pytest.mark.parametrize(
    "token",
    [
        "forged",
        "x.y",
        ".",
        "1800000000.",
        "-1800000000.abc",
        "\uff11\uff18\uff10\uff10.abc",  # fullwidth digits
        "1800000000." + "A" * 60,
        "1800000000.\x00",
    ],
)
def test_anything_not_made_here_is_forged(token: str) -> None:
    assert check(SECRET, token, NOW) is FormToken.FORGED


def test_the_mac_covers_the_time() -> None:
    made, _, mac = make(SECRET, NOW - logout_form.FORM_SECONDS - 10).partition(".")
    assert check(SECRET, f"{int(NOW)}.{mac}", NOW) is FormToken.FORGED
    assert check(SECRET, f"{made}.{mac}", NOW) is FormToken.STALE


def test_the_token_shows_nothing_of_the_secret() -> None:
    token = make(SECRET, NOW)
    assert SECRET.hex() not in token and len(token) < 64


def test_a_flask_wtf_token_from_a_page_rendered_before_the_upgrade_asks_again() -> None:
    # COMPAT(flask-wtf-logout-token): such a page's button must not dead-end at the upgrade.
    from flask import Flask
    from flask_wtf.csrf import generate_csrf

    app = Flask(__name__)
    app.secret_key = "k" * 32
    with app.test_request_context():
        old = generate_csrf()
    assert check(SECRET, old, NOW) is FormToken.STALE
    # Only that shape: a token of the new shape made under another secret stays forged.
    assert check(SECRET, make(OTHER, NOW), NOW) is FormToken.FORGED
