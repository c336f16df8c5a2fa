"""`ketenbroker metadata refresh`, `metadata status` and `metadata forget`: the federation
metadata sources of `[[metadata.sources]]` (docs/operations.md, "Federation metadata")."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.metadata_forget import forget_command
from broker.cli.metadata_refresh import RefreshOutcome, refresh_sources
from broker.cli.options import config_option, open_registry, reports_errors
from broker.cli.url_refresh import UrlRefreshOutcome, refresh_by_url
from broker.config import MetadataSource
from broker.core.federation import EXPIRED_REASON, LeftOut, SourceHealth, SourceRecord
from broker.operations.sources import records_and_states


@click.group("metadata")
def metadata_group() -> None:
    """Schools' and publishers' SAML metadata from files, URLs and federation aggregates."""


@metadata_group.command("refresh")
@config_option
@click.option(
    "--source", "names", multiple=True, help="refresh only this source (repeat; default: all)"
)
@click.option(
    "--allow-older",
    is_flag=True,
    help="take the named sources' feeds even when older than the copy held (going back)",
)
@reports_errors
def refresh_command(config_path: Path, names: tuple[str, ...], allow_older: bool) -> None:
    """Fetch and verify every source, and every school's and service's metadata URL (not with
    --source); keep the last good copy of any that fails.

    Exit status 1 when a source, school or service was refused (its last good copy stays in
    force)."""
    if allow_older and not names:
        # Going back is a decision about one feed; a timer's run must never carry it.
        raise click.BadParameter("name the source(s) to go back on", param_hint="--source")
    settings, registry = open_registry(config_path)
    known = {s.name for s in settings.metadata.sources}
    unknown = sorted(set(names) - known)
    if unknown:
        raise click.BadParameter(
            f"no source named {', '.join(unknown)} in [[metadata.sources]]", param_hint="--source"
        )
    outcomes = refresh_sources(settings, registry, names, allow_older=allow_older)
    # A run for named sources is about those feeds; the timer's run fetches the schools' and
    # the services' own URLs too.
    by_url = [] if names else [(role, refresh_by_url(settings, registry, role)) for role in ROLES]
    if not known and not any(found for _, found in by_url):
        click.echo(
            "No [[metadata.sources]] configured and no school or service given by URL; "
            "nothing to refresh."
        )
    for outcome in outcomes:
        click.echo(_said(outcome))
        for each in outcome.left_out:
            click.echo(f"  {_left_out(each)}")
    for role, found in by_url:
        for entry in found:
            click.echo(_url_said(role, entry))
    refused = [o for _, found in by_url for o in found if o.result == "refused"]
    if any(o.result == "refused" for o in outcomes) or refused:
        raise SystemExit(1)


# The roles whose entries' own URLs a full run fetches: schools' IdPs, then services' SPs.
ROLES = ("idp", "sp")
# How an entry of each role is said: "school 12AB (IdP ...)", "service lms (SP ...)".
_ENTRY = {"idp": ("school", "IdP", "signing certificate"), "sp": ("service", "SP", "certificate")}


def _url_said(role: str, outcome: UrlRefreshOutcome) -> str:
    """One school's or service's URL refreshed: its entity, the result, and for a refusal why
    (the copy held stays); the key certificates a change added and removed, by fingerprint."""
    noun, entity, key = _ENTRY[role]
    said = f"{noun} {outcome.entry_id} ({entity} {outcome.entity_id}): {outcome.result}"
    if outcome.result == "refused":
        return f"{said} ({outcome.reason}: {outcome.detail}); the last good copy stays"
    if outcome.result == "held":
        return (
            f"{said} by metadata source {outcome.detail}: logins use its copy, and its URL is "
            "not fetched"
        )
    if outcome.also:
        said += f", also for school(s) {', '.join(outcome.also)}"
    lines = [said]
    lines += [f"  {key} added: SHA-256 {each}" for each in outcome.keys_added]
    lines += [f"  {key} removed: SHA-256 {each}" for each in outcome.keys_removed]
    return "\n".join(lines)


def _left_out(member: LeftOut) -> str:
    """One member left out: its entity id (and role), its reason code and what is wrong."""
    role = f" ({member.role})" if member.role else ""
    detail = f": {member.detail}" if member.detail else ""
    return f"left out {member.entity_id}{role}: {member.reason}{detail}"


def _unconfigured(
    name: str, entities: int, valid_until: datetime | None, reason: str | None
) -> str:
    """A copy held of a source the configuration does not name, as refresh and status say it;
    one past its validUntil (`reason` EXPIRED_REASON) is trusted no more."""
    until = valid_until.isoformat(timespec="seconds") if valid_until else "-"
    if reason == EXPIRED_REASON:
        return (
            f"{name}: expired, unconfigured (not in [[metadata.sources]]); its copy of "
            f"{entities} entities expired at {until}: none of them is trusted. Configure the "
            f"source again, or `ketenbroker metadata forget {name}`"
        )
    return (
        f"{name}: unconfigured (not in [[metadata.sources]]); its copy of {entities} entities, "
        f"valid until {until}, stays in force until `ketenbroker metadata forget {name}`"
    )


def _said(outcome: RefreshOutcome) -> str:
    if outcome.result == "refused":
        return f"{outcome.source}: refused ({outcome.reason}); the last good copy stays"
    if outcome.result == "unconfigured":
        return _unconfigured(outcome.source, outcome.entities, outcome.valid_until, outcome.reason)
    return (
        f"{outcome.source}: {outcome.result}, {outcome.entities} entities"
        + (f" ({outcome.skipped} skipped)" if outcome.skipped else "")
        + (
            f" ({outcome.not_listed} registered by an authority not listed)"
            if outcome.not_listed
            else ""
        )
        + f", {outcome.seconds:.2f} s"
    )


def _authorities(source: MetadataSource, record: SourceRecord | None) -> str:
    """The source's list, and whether the copy held was read under it (a changed list takes
    effect at the next refresh, which re-reads the feed)."""
    listed_here = source.registration_authorities
    listed = ", ".join(listed_here) or "any (no list)"
    if (
        record is None
        or record.fetched_at is None
        or record.registration_authorities == tuple(sorted(listed_here))
    ):
        return listed
    return f"{listed}; the copy held was read under another list until the next refresh"


@metadata_group.command("status")
@config_option
@reports_errors
def status_command(config_path: Path) -> None:
    """Each source's state: ok, stale (refresh failing; still trusted), expired or missing (its
    entities are not trusted); then each copy held of a source the configuration does not name
    (unconfigured: still in force until `metadata forget`). Exit status 1 when any source is
    expired or missing, or any copy is unconfigured."""
    settings, registry = open_registry(config_path)
    records, health = records_and_states(settings, registry, datetime.now(UTC))
    by_name = {source.name: source for source in settings.metadata.sources}
    if not by_name:
        # Silence would read as "all well" or "the command did nothing": say which.
        click.echo(
            "No [[metadata.sources]] configured" + ("." if health else "; nothing to check.")
        )
    for entry in health:
        record = records.get(entry.name)
        if not entry.configured:
            _status_unconfigured(entry, record)
            continue
        fetched = entry.fetched_at.isoformat(timespec="seconds") if entry.fetched_at else "never"
        until = entry.valid_until.isoformat(timespec="seconds") if entry.valid_until else "-"
        count = record.entity_count if record is not None else 0
        reason = f" ({entry.reason})" if entry.reason else ""
        click.echo(
            f"{entry.name}: {entry.state.value}{reason}; {count} entities, "
            f"last good copy {fetched}, valid until {until}"
        )
        click.echo(f"  registration authorities: {_authorities(by_name[entry.name], record)}")
    if not all(entry.usable for entry in health):
        raise SystemExit(1)


def _status_unconfigured(entry: SourceHealth, record: SourceRecord | None) -> None:
    entities = record.entity_count if record else 0
    click.echo(_unconfigured(entry.name, entities, entry.valid_until, entry.reason))
    click.echo(f"  `ketenbroker metadata forget {entry.name}` says what would lose its metadata")


metadata_group.add_command(forget_command)
