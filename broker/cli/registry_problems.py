"""`ketenbroker registry problems`: what needs the operator's attention, the report of the
operator portal's "Needs attention" page (core/attention.py, web/attention.py), for a terminal
and for monitoring: exit status 0 when nothing needs attention, 1 when something does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.counts import counted
from broker.cli.options import config_option, open_registry, reports_errors
from broker.core.attention import AttentionReport, Section
from broker.web.attention import attention_report

NEEDS_ATTENTION = 1

# What each kind means, and where the operator mends it (docs/cli.md lists them).
TITLES = {
    "schools_logins_refused": "Schools whose logins are refused",
    "services_logins_refused": "Services whose logins are refused",
    "sources_untrusted": "Metadata sources not trusted (their entities' logins are refused)",
    "services_awaiting_approval": "Services awaiting approval",
    "sources_stale": "Metadata sources failing to refresh (last good copy still trusted)",
    "secrets_in_clear": "Secrets in clear (`ketenbroker registry seal-secrets` seals them)",
    "chains_id_not_plain": "Chains whose id breaks the rule for chain ids (never renamed)",
    "schools_logout_unreached": "Schools that logout messages cannot reach (SLO URL not https)",
    "services_logout_unreached": "Services that logout messages cannot reach (SLO URL not https)",
}
# Where every entry of a kind is listed, when the report shows only the first ones.
LISTED_BY = {
    "school": "`ketenbroker school list`",
    "service": "`ketenbroker publisher list`",
    "source": "`ketenbroker metadata status`",
    "chain": "`ketenbroker chain list`",
}


def section_lines(section: Section) -> list[str]:
    kind = section.kind
    lines = [f"{TITLES[kind.code]}: {section.total}"]
    for entry in section.entries:
        named = f"  {entry.name}" if entry.name != entry.id else ""  # a source is its name
        lines.append(f"  {entry.id}{named}  ({entry.reason})")
    more = section.total - len(section.entries)
    if section.entries and more:
        lines.append(f"  and {more} more ({LISTED_BY[kind.subject]} lists them all)")
    return lines


def report_json(report: AttentionReport) -> str:
    return json.dumps(
        {
            "needs_attention": report.needs_attention,
            "kinds": [
                {
                    "kind": section.kind.code,
                    "severity": section.kind.severity.name.lower(),
                    "total": section.total,
                    "entries": [
                        {"id": e.id, "name": e.name, "reason": e.reason} for e in section.entries
                    ],
                }
                for section in report.sections
            ],
        }
    )


@click.command("problems")
@config_option
@click.option("--json", "as_json", is_flag=True, help="the report as one JSON object")
@reports_errors
def problems_command(config_path: Path, as_json: bool) -> None:
    """What needs the operator's attention, the kinds that refuse logins first: schools and
    services whose logins are refused, sources not trusted, services awaiting approval, stale
    sources, secrets in clear, entries logout messages cannot reach. Changes nothing.

    Exit status 0 when nothing needs attention, 1 when something does (for cron or a
    monitoring check)."""
    settings, registry = open_registry(config_path)
    report = attention_report(settings, registry, datetime.now(UTC))
    if as_json:
        click.echo(report_json(report))
    elif not report.needs_attention:
        click.echo("Nothing needs attention.")
    else:
        click.echo(f"Needs attention: {counted(len(report.sections), 'kind')}.")
        for section in report.sections:
            for line in section_lines(section):
                click.echo(line)
    if report.needs_attention:
        raise SystemExit(NEEDS_ATTENTION)
