"""`ketenbroker registry export FILE` and `registry import FILE`: the federation's configuration
as a TOML file, for operators who keep it in git (docs/cli.md describes the format); `registry
seal-secrets` and `registry status`: the registry's secrets, sealed at rest, and (`status`)
how many entries' stored metadata names endpoints the broker sends nothing to; `registry
problems` (registry_problems.py): what needs the operator's attention."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import click

from broker.cli.counts import counted
from broker.cli.id_reuse_options import id_reuse, reuse_options
from broker.cli.import_summary import import_summary
from broker.cli.options import config_option, open_registry, reports_errors, user_name
from broker.cli.registry_import import ImportRefused, read_registry_file
from broker.cli.registry_problems import problems_command
from broker.cli.registry_toml import export_text
from broker.registry import SqlRegistry
from broker.registry.secret_sealing import KINDS, SealingReport
from broker.saml.encryption_summary import refused_with_auto
from broker.saml.metadata_report import refused_endpoints


@click.group("registry")
def registry_group() -> None:
    """Export and import the registry (chains, publishers, schools, services, policies)."""


registry_group.add_command(problems_command)


@registry_group.command("export")
@config_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--metadata-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="write SAML metadata as files here (schools/<id>.xml, services/<id>.xml), not inline",
)
@reports_errors
def export_command(config_path: Path, file: Path, metadata_dir: Path | None) -> None:
    """Write the registry to FILE (TOML). No administrators, no history, no secrets."""
    _, registry = open_registry(config_path)
    snapshot = registry.snapshot()
    text = export_text(snapshot, file, metadata_dir)
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as err:
        raise click.ClickException(f"cannot write {file}: {err.strerror}") from None
    oidc_schools = [s.school.id for s in snapshot.schools if s.school.oidc is not None]
    click.echo(
        f"Exported {counted(len(snapshot.chains), 'chain')}, "
        f"{counted(len(snapshot.publishers), 'publisher')}, "
        f"{counted(len(snapshot.schools), 'school')}, "
        f"{counted(len(snapshot.services), 'service')} and "
        f"{counted(len(snapshot.policies), 'policy', 'policies')} to {file}."
    )
    if oidc_schools:
        click.echo(
            "Client secrets are not exported: before importing, put each in the file its "
            f"client_secret_file names ({', '.join(s + '.client-secret' for s in oidc_schools)})."
        )


@registry_group.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="check the file and say what the import would add and change; change nothing",
)
@click.option(
    "--confirm-purpose-changes",
    is_flag=True,
    help="import even though new purposes stop releases: schools that released such an "
    "attribute stop until they release it again",
)
@reports_errors
@reuse_options("registry import")
def import_command(
    config_path: Path,
    file: Path,
    dry_run: bool,
    confirm_purpose_changes: bool,
    reuse_removed_id: bool,
    pseudonyms_carry_over: bool,
) -> None:
    """Add or update (by id) every entry of FILE; nothing when any entry is wrong. A service
    under an id a removed service had only with --reuse-removed-id, as `publisher add`."""
    reuse = id_reuse(reuse_removed_id, pseudonyms_carry_over)
    _, registry = open_registry(config_path)
    before = registry.snapshot()
    try:
        held = frozenset(registry.federation.sources_of("idp"))
        snapshot = read_registry_file(file, before, held)
    except ImportRefused as refused:
        click.echo(f"{file}: {len(refused.problems)} problem(s); nothing was imported.", err=True)
        for problem in refused.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(1) from None
    if dry_run:
        click.echo(f"{file} is valid. Importing it now would do this (--dry-run):")
    report = registry.import_snapshot(
        snapshot,
        f"import:{user_name()}",
        apply=not dry_run,
        stop_releases=confirm_purpose_changes,
        encryption_refusal=refused_with_auto,
        reuse=reuse,
    )
    held_back = not dry_run and not report.applied
    for line in import_summary(report, snapshot, before, done=report.applied):
        click.echo(line, err=held_back)
    if dry_run:
        if report.dropped and not confirm_purpose_changes:
            click.echo(f"Importing it needs --confirm-purpose-changes ({PURPOSE_RULE}).")
        click.echo("Nothing was changed (--dry-run).")
    elif held_back:
        # Asked again, as the publisher's portal asks before such a change (portals.md).
        click.echo(
            f"{file}: new purposes would stop {counted(len(report.dropped), 'release')} "
            f"({PURPOSE_RULE}); nothing was imported. Run it again with "
            "--confirm-purpose-changes to import it.",
            err=True,
        )
        raise SystemExit(1)


PURPOSE_RULE = (
    "a school's release of an attribute holds for the purpose it agreed to; it releases the "
    "attribute again when it ticks it again"
)


def sealing_summary(report: SealingReport) -> list[str]:
    """What `seal-secrets` did (or would do), in counts per kind: no id, no value."""

    def each(counts: Counter[str]) -> str:
        return ", ".join(counted(counts[kind], f"{kind} secret") for kind in KINDS)

    did = report.applied
    lines = [
        f"{'Sealed' if did else 'Would seal'} (were in clear): {each(report.sealed)}.",
        f"{'Re-sealed' if did else 'Would re-seal'} under the current key (were under the "
        f"previous one): {each(report.resealed)}.",
        f"Sealed under the current key already: {each(report.current)}.",
    ]
    if report.forgotten:
        what = counted(report.forgotten, "used or expired invitation")
        lines.append(f"{'Emptied' if did else 'Would empty'} the TOTP secret of {what}.")
    if report.marks:
        lines.append(
            f"{'Marked' if did else 'Would mark'} the registry as holding sealed secrets only: "
            "a secret in clear is refused from then on."
        )
    else:
        lines.append(sealed_only_line(report.sealed_only_since))
    if not did:
        lines.append("Nothing was changed (--dry-run).")
    return lines


@registry_group.command("seal-secrets")
@config_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="count what would be sealed; change nothing",
)
@reports_errors
def seal_secrets_command(config_path: Path, dry_run: bool) -> None:
    """Seal every staff TOTP secret and school client secret still in clear (or sealed under
    keys.previous_session_secret) under the current session secret's key, in one transaction.

    Run it once every worker runs this version (older workers cannot read a sealed value), and
    after each rotation of keys.session_secret. Prints counts only."""
    _, registry = open_registry(config_path)
    report = registry.seal_secrets(apply=not dry_run)
    for line in sealing_summary(report):
        click.echo(line)


def sealed_only_line(since: datetime | None) -> str:
    """Whether the registry refuses secrets in clear (registry/sealed_only.py)."""
    if since is None:
        return (
            "Sealed secrets only: no. Secrets in clear are read as they are until "
            "`ketenbroker registry seal-secrets` seals them and sets the mark."
        )
    return (
        f"Sealed secrets only: yes, since {since:%Y-%m-%d %H:%M} UTC. A staff TOTP secret or "
        "school client secret in clear is refused."
    )


@registry_group.command("status")
@config_option
@reports_errors
def status_command(config_path: Path) -> None:
    """Say how many secrets are still in clear and whether the registry refuses them
    (holds sealed secrets only), and how many schools and services have SAML metadata naming
    an endpoint that is not https (`school list`, `publisher list` say which; `registry
    problems` says which, and all else that needs attention). Changes nothing; opens no
    secret."""
    _, registry = open_registry(config_path)
    clear = registry.secrets_in_clear()
    click.echo(f"Secrets in clear (staff TOTP, school client): {clear}.")
    click.echo(sealed_only_line(registry.sealed_only_since()))
    for line in endpoint_lines(registry):
        click.echo(line)


def endpoint_lines(registry: SqlRegistry) -> list[str]:
    """Counts of the entries whose metadata in force (a copy from before intake checked its
    SSO, ACS and SLO URLs) names one the login or logout path sends nothing to: the entries
    `school list` and `publisher list` mark (saml/metadata_report.py)."""
    idps = registry.school_metadata()
    schools = sum(
        1
        for school in registry.schools()
        if school.oidc is None and refused_endpoints(idps.get(school.idp_entity_id), "idp")
    )
    services = sum(
        1
        for xml in registry.service_metadata(approved_only=False).values()
        if refused_endpoints(xml, "sp")
    )
    return [
        f"Schools with an SSO or SLO URL that is not https: {schools}"
        + (" (`ketenbroker school list` marks them)." if schools else "."),
        f"Services with an ACS or SLO URL that is not https: {services}"
        + (" (`ketenbroker publisher list` marks them)." if services else "."),
    ]
