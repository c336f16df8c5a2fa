"""Sealing the registry's secrets (broker/core/sealed_secrets.py): the format, the binding to
the row, and every way a value fails to open, each named without the value."""

from __future__ import annotations

import base64

import pytest

from broker.core.errors import ConfigurationError
from broker.core.sealed_secrets import (
    NO_KEYS,
    PREFIX,
    SecretBinding,
    SecretSeal,
    SecretState,
    SecretUnreadable,
    sealing_key,
)

OLD, NEW = b"o" * 40, b"n" * 40
SCHOOL = SecretBinding.school_client_secret("12AB00")
SECRET = "qzx client secret"


def test_a_sealed_value_names_format_and_key_and_hides_the_secret() -> None:
    seal = SecretSeal.from_secrets(NEW)
    sealed = seal.seal(SECRET, SCHOOL)
    _, fmt, key_id, body = sealed.split("$")
    assert fmt == "kbs1" and key_id == sealing_key(NEW).key_id and len(key_id) == 8
    assert SECRET.encode() not in base64.urlsafe_b64decode(body + "==")
    assert seal.open(sealed, SCHOOL) == SECRET
    # A fresh nonce each time: the same secret never reads the same twice.
    assert seal.seal(SECRET, SCHOOL) != sealed
    assert seal.state(sealed) is SecretState.CURRENT
    # The key is derived with a label of its own: not the session secret, not its id.
    key = sealing_key(NEW)
    assert key.key != NEW[:32] and key.key_id not in key.key.hex()
    assert "key=" not in repr(key)


def test_a_value_opens_only_in_its_own_row_and_purpose() -> None:
    seal = SecretSeal.from_secrets(NEW)
    admin = SecretBinding.admin_totp("ict@lyceum.example", 3)
    sealed = seal.seal(SECRET, admin)
    for elsewhere in (
        SecretBinding.admin_totp("other@lyceum.example", 4),
        SecretBinding.invitation_totp("ict@lyceum.example"),
        SecretBinding.school_client_secret("ict@lyceum.example"),
    ):
        with pytest.raises(SecretUnreadable, match="does not open under key"):
            seal.open(sealed, elsewhere)


def test_what_does_not_open_says_why_and_never_the_value() -> None:
    sealed = SecretSeal.from_secrets(OLD).seal(SECRET, SCHOOL)
    changed = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
    cases = [
        (SecretSeal.from_secrets(NEW), sealed, "neither keys.session_secret"),
        (NO_KEYS, sealed, "without the broker's configuration"),
        (SecretSeal.from_secrets(OLD), changed, "changed, or copied from another row"),
        (SecretSeal.from_secrets(OLD), PREFIX + "abc", "not a sealed value of this format"),
        (SecretSeal.from_secrets(OLD), PREFIX + "abc$!!", "not a sealed value of this format"),
    ]
    for seal, stored, reason in cases:
        with pytest.raises(SecretUnreadable) as refused:
            seal.open(stored, SCHOOL)
        assert reason in refused.value.reason
        assert refused.value.detail.startswith("the school-client-secret secret of school 12AB00")
        body = stored.rsplit("$", 1)[1]
        assert SECRET not in refused.value.detail
        assert len(body) < 8 or body not in refused.value.detail
        assert refused.value.status == 503


def test_the_previous_key_opens_until_everything_is_sealed_again() -> None:
    sealed = SecretSeal.from_secrets(OLD).seal(SECRET, SCHOOL)
    rotated = SecretSeal.from_secrets(NEW, OLD)
    assert rotated.state(sealed) is SecretState.OLDER
    assert rotated.open(sealed, SCHOOL) == SECRET
    resealed = rotated.seal(SECRET, SCHOOL)
    assert rotated.state(resealed) is SecretState.CURRENT
    assert SecretSeal.from_secrets(NEW).open(resealed, SCHOOL) == SECRET


def test_a_clear_value_of_older_code_is_read_as_it_is_and_nothing_is_sealed_without_a_key() -> None:
    assert NO_KEYS.open("JBSWY3DPEHPK3PXP", SCHOOL) == "JBSWY3DPEHPK3PXP"
    assert NO_KEYS.state("JBSWY3DPEHPK3PXP") is SecretState.CLEAR
    with pytest.raises(ConfigurationError, match="without the broker's configuration"):
        NO_KEYS.seal(SECRET, SCHOOL)
    assert SecretBinding.admin_totp("x@y.nl").shown == "a new administrator"
