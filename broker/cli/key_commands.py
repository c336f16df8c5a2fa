"""`ketenbroker keys`: roll the SAML and OIDC signing keys without a restart or a flag day.

`rotate` publishes a next key, which signs after the publish period; `status` says in plain words
which key signs, which comes next and when, and when the old one disappears; `finish` deletes
the keys that have retired. docs/operations.md ("Rolling the signing keys") has the routine.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from broker.cli.options import config_option, reports_errors
from broker.config import Settings, load_settings
from broker.core import key_schedule
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyGeneration
from broker.keys import rotation
from broker.keys.manifest import generations_of
from broker.oidc.signing_keys import key_ids


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    """'7 days 23 hours' for an operator, not a number of seconds (to the nearest minute)."""
    minutes = max(0, round(seconds / 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)

    def unit(count: int, name: str) -> str:
        return f"{count} {name}{'s' * (count != 1)}"

    if days:
        return unit(days, "day") + (f" {unit(hours, 'hour')}" if hours else "")
    if hours:
        return unit(hours, "hour") + (f" {unit(minutes, 'minute')}" if minutes else "")
    return unit(minutes, "minute") if minutes else "less than a minute"


def _certificate_lines(generation: KeyGeneration) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(generation.files.saml_cert.read_bytes())
    except (OSError, ValueError):
        return [f"    SAML certificate: cannot read {generation.files.saml_cert}"]
    digest = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    lines = [
        f"    SAML certificate SHA-256 fingerprint: {digest}",
        f"    SAML certificate valid until {_when(cert.not_valid_after_utc.timestamp())}",
    ]
    try:
        ids = key_ids(generation)
    except ConfigurationError as err:
        return [*lines, f"    OIDC keys: {err.detail or err.public_message}"]
    lines += [f"    OIDC key id ({alg}): {kid}" for alg, kid in ids.items()]
    return lines


def status_lines(settings: Settings, now: float) -> list[str]:
    """What `keys status` prints: which key signs, the next one, the old one, what to do."""
    generations = generations_of(settings)
    manifest = settings.key_rotation.manifest if settings.key_rotation else None
    choice = key_schedule.choose(generations, now)
    signing = choice.signing
    lines = [f"Signing keys at {_when(now)}"]
    if manifest is None or not manifest.exists():
        lines.append("  One key, the one the configuration names; no rotation has run yet.")
    else:
        lines.append(f"  Key set: {manifest}")
    since = f" (since {_when(signing.signing_from)})" if signing.signing_from > 0 else ""
    lines += ["", f"Signs now: key {signing.number}{since}", *_certificate_lines(signing)]
    waiting = key_schedule.pending(generations, now)
    if waiting is not None and signing.retire_after is not None:
        lines += [
            f"    signs until {_when(waiting.signing_from)}, then stays published until "
            f"{_when(signing.retire_after)} (until everything it signed has expired)"
        ]
    if waiting is not None:
        published = waiting.published_at(now)
        lines += [
            "",
            f"Next key: key {waiting.number}",
            "    in the metadata and JWKS since " + _when(waiting.published_from)
            if published
            else "    not published yet",
            f"    takes over signing on {_when(waiting.signing_from)} "
            f"(in {_span(waiting.signing_from - now)})",
            *_certificate_lines(waiting),
        ]
    leaving = [g for g in choice.published if g is not signing and g is not waiting]
    for old in leaving:
        retire = old.retire_after
        lines += [
            "",
            f"Old key: key {old.number} (no longer signs; still published so that what it "
            "signed keeps verifying)",
            f"    disappears from the metadata and JWKS on {_when(retire)} "
            f"(in {_span(retire - now)})"
            if retire is not None
            else "    stays published",
        ]
    retired = [g for g in generations if g.retired_at(now)]
    lines += ["", "What to do:"]
    if retired:
        numbers = ", ".join(str(g.number) for g in retired)
        lines.append(f"  key {numbers} has retired: `ketenbroker keys finish` deletes it.")
    if waiting is not None:
        lines.append(
            f"  nothing: key {waiting.number} takes over by itself. Peers that do not refresh "
            "metadata or JWKS by themselves must load the broker's metadata and JWKS again "
            f"before {_when(waiting.signing_from)}."
        )
    elif leaving:
        lines.append(
            "  nothing: the old key disappears by itself; afterwards `ketenbroker keys finish` "
            "deletes its files."
        )
    elif not retired:
        lines.append(
            "  nothing now. The yearly routine starts with `ketenbroker keys rotate` "
            "(docs/operations.md, Rolling the signing keys)."
        )
    return lines


@click.group("keys")
def keys_group() -> None:
    """Roll the SAML and OIDC signing keys (docs/operations.md, Rolling the signing keys)."""


@keys_group.command("status")
@config_option
@reports_errors
def status_command(config_path: Path) -> None:
    """Which key signs now, which takes over next and when, when the old one disappears."""
    settings = load_settings(config_path)
    click.echo("\n".join(status_lines(settings, time.time())))


@keys_group.command("rotate")
@config_option
@reports_errors
def rotate_command(config_path: Path) -> None:
    """Publish a next key now; it signs after the publish period (keys.rotation)."""
    settings = load_settings(config_path)
    now = time.time()
    new = rotation.rotate(settings, now)
    click.echo(
        f"Key {new.number} is published now and takes over signing on {_when(new.signing_from)}."
    )
    click.echo("Every worker picks it up within seconds; no restart is needed.")
    valid = settings.metadata.valid_days * 24 * 3600
    if new.signing_from - new.published_from < valid:
        # Allowed (a leaked key cannot wait a week), but say what it costs.
        click.echo(
            f"Note: the publish period is shorter than the metadata's validity ({_span(valid)}): "
            "peers that keep metadata until its validUntil may not know the new key at the "
            "switch; ask them to refresh before it."
        )
    click.echo("")
    click.echo("\n".join(status_lines(settings, new.published_from)))


@keys_group.command("finish")
@config_option
@reports_errors
def finish_command(config_path: Path) -> None:
    """Delete the keys that have retired (no longer published, nothing signed with them valid)."""
    settings = load_settings(config_path)
    removed = rotation.finish(settings, time.time())
    if not removed:
        click.echo("No key has retired yet; `ketenbroker keys status` says when one will.")
        return
    for generation in removed:
        click.echo(f"Key {generation.number} removed from the key set.")
        left = [p for p in vars(generation.files).values() if isinstance(p, Path) and p.exists()]
        if left:
            # The files the configuration named: perhaps a mounted secret, so left in place.
            click.echo("  Its files named in the configuration are no longer used; remove them:")
            click.echo("\n".join(f"    {path}" for path in left))
