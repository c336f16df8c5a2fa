"""`ketenbroker keys rotate` and `keys finish`: new key files first, then the manifest.

A rotation writes the next generation's files into a folder of its own next to the manifest
(keys mode 0600), then replaces the manifest; workers pick it up within seconds. Nothing is
overwritten, so a rotation that fails half-way leaves the key set as it was.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from broker.certificates import ec_private_key_pem, rsa_private_key_pem, self_signed_pair
from broker.config import KeyRotationSettings, Settings
from broker.core import key_schedule
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyFiles, KeyGeneration
from broker.keys.manifest import generations_of, write_manifest


def retain_seconds(settings: Settings) -> int:
    """How long an old key stays published after the switch: until everything it signed has
    expired, the longest of an assertion's lifetime, an ID token's (it lives as long as the
    access token), and the broker's metadata's validUntil; plus the clock skew peers allow."""
    lifetimes = [
        settings.saml.assertion_lifetime_seconds,
        settings.metadata.valid_days * 24 * 3600,
    ]
    if settings.oidc is not None:
        lifetimes.append(settings.oidc.access_token_lifetime_seconds)
    return max(lifetimes) + settings.saml.clock_skew_seconds


def _rotation(settings: Settings) -> KeyRotationSettings:
    if settings.key_rotation is None:
        raise ConfigurationError("this configuration has no key set (keys.key_set)")
    return settings.key_rotation


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)


def _new_files(settings: Settings, folder: Path, like: KeyFiles) -> KeyFiles:
    """A SAML pair and an OIDC RS256 key (always: an instance made before OIDC gets one for when
    it is switched on), and an ES256 key where the current key or the configuration has one."""
    try:
        folder.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        raise ConfigurationError(
            f"{folder} exists already; remove it or run `keys status`"
        ) from None
    except OSError as err:
        raise ConfigurationError(f"cannot create {folder}: {err.strerror}") from None
    key_pem, cert_pem = self_signed_pair(settings.idp_entity_id)
    wants_ec = settings.oidc is not None and settings.oidc.ec_key is not None
    oidc_rsa = folder / "oidc-rs256.pem"
    files = KeyFiles(
        saml_key=folder / "saml-signing.key",
        saml_cert=folder / "saml-signing.crt",
        oidc_rsa=oidc_rsa,
        oidc_ec=folder / "oidc-es256.pem" if like.oidc_ec is not None or wants_ec else None,
    )
    _write_private(files.saml_key, key_pem)
    files.saml_cert.write_bytes(cert_pem)
    _write_private(oidc_rsa, rsa_private_key_pem())
    if files.oidc_ec is not None:
        _write_private(files.oidc_ec, ec_private_key_pem())
    return files


def rotate(settings: Settings, now: float) -> KeyGeneration:
    """Add the next key: published from `now`, signing after the publish period."""
    rotation = _rotation(settings)
    generations = generations_of(settings)
    moment = float(math.floor(now))
    # Checked before any file is made: a refused rotation leaves nothing behind.
    key_schedule.refuse_while_pending(generations, moment)
    current = key_schedule.choose(generations, moment).signing
    number = max(g.number for g in generations) + 1
    files = _new_files(settings, rotation.manifest.parent / f"key-{number}", current.files)
    updated = key_schedule.rotate(
        generations,
        files,
        moment,
        publish_seconds=rotation.publish_seconds,
        retain_seconds=retain_seconds(settings),
    )
    write_manifest(rotation.manifest, updated)
    return updated[-1]


def finish(settings: Settings, now: float) -> tuple[KeyGeneration, ...]:
    """Drop the retired keys from the key set and delete the files a rotation made for them
    (files the configuration named are left to the operator)."""
    rotation = _rotation(settings)
    kept, removed = key_schedule.finish(generations_of(settings), now)
    if not removed:
        return ()
    write_manifest(rotation.manifest, kept)
    folder = rotation.manifest.parent
    for generation in removed:
        made_here = folder / f"key-{generation.number}"
        for path in vars(generation.files).values():
            if isinstance(path, Path) and path.parent == made_here:
                path.unlink(missing_ok=True)
        if made_here.is_dir() and not any(made_here.iterdir()):
            made_here.rmdir()
    return removed
