"""Sealing the registry's secrets (broker/core/sealed_secrets.py): the format, the binding to
the row, and every way a value fails to open, each named without the value."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.core.errors import ConfigurationError
from broker.core.sealed_secrets import (
    NO_KEYS,
    NOT_THIS_FORMAT,
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


def _sealed_body(plain: bytes, binding: SecretBinding = SCHOOL) -> str:
    """A body as `seal` makes it, under NEW's key, of any plaintext (the empty one too)."""
    nonce = b"\x01" * 12
    sealed = AESGCM(sealing_key(NEW).key).encrypt(nonce, plain, binding.associated_data)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def test_any_kbs_value_is_sealed_and_one_of_an_unknown_format_never_reads_as_clear() -> None:
    seal = SecretSeal.from_secrets(NEW)
    later = f"$kbs2${sealing_key(NEW).key_id}${_sealed_body(SECRET.encode())}"
    for stored in (later, "$kbs", "$kbs1", "$kbsX$whatever"):
        for opener in (seal, NO_KEYS):
            with pytest.raises(SecretUnreadable) as refused:
                opener.open(stored, SCHOOL)
            assert refused.value.reason == NOT_THIS_FORMAT
        assert seal.state(stored) is SecretState.OLDER


def test_a_key_id_that_is_not_8_lowercase_hex_characters_is_not_repeated() -> None:
    seal = SecretSeal.from_secrets(NEW)
    body = _sealed_body(SECRET.encode())
    for key_id in ("ABCDEF01", "abcdef0", "abcdef012", "abc\nERROR forged line", "x" * 4000):
        with pytest.raises(SecretUnreadable) as refused:
            seal.open(f"{PREFIX}{key_id}${body}", SCHOOL)
        assert refused.value.reason == NOT_THIS_FORMAT
        assert key_id not in refused.value.detail and "\n" not in refused.value.detail
    # A well-formed key id of no configured key is named: it is 8 hex characters, nothing more.
    with pytest.raises(SecretUnreadable, match="sealed under key 00000000,"):
        seal.open(f"{PREFIX}00000000${body}", SCHOOL)


def test_the_empty_secret_is_never_sealed_and_a_sealed_empty_value_opens() -> None:
    seal = SecretSeal.from_secrets(NEW)
    assert seal.seal("", SCHOOL) == "" and NO_KEYS.seal("", SCHOOL) == ""
    assert seal.open("", SCHOOL) == ""
    # Nonce and tag alone (28 bytes): the shortest body of this format, not a malformed one.
    assert seal.open(f"{PREFIX}{sealing_key(NEW).key_id}${_sealed_body(b'')}", SCHOOL) == ""
