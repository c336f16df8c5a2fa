"""`ketenbroker registry problems`: what needs the operator's attention, the report of the
operator portal's "Needs attention" page (core/attention.py, operations/attention.py), in its
words (web/attention_words.py, imported only when the command runs: the other `registry`
commands, which load this module to register it, need no Flask), for a terminal and for
monitoring.

Exit status 0 when nothing needs attention, 1 when something does, and 2 when the check itself
failed (a configuration that does not load, a registry that cannot be read, a wrong option, as
click's usage errors): a monitoring check must not take "cannot tell" for "needs attention", nor
for "fine"."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.counts import counted
from broker.cli.options import config_option, open_registry, raising_instead, reports_errors
from broker.core.attention import SHOWN, AttentionReport, Entry, Section
from broker.operations.attention import gather_attention_report

log = logging.getLogger(__name__)
NEEDS_ATTENTION = 1
CHECK_FAILED = 2  # click's own code for a usage error: the check did not run either


def section_lines(section: Section) -> list[str]:
    from broker.web.attention_words import KIND_WORDS, advice_of  # Flask-Babel: module note

    lines = [f"{KIND_WORDS[section.kind.code].title}: {section.total}"]
    for entry in section.entries:
        named = f"  {entry.name}" if entry.name != entry.id else ""  # a source is its name
        detail = f": {entry.detail}" if entry.detail else ""
        lines.append(f"  {entry.id}{named}  ({entry.reason}{detail})")
    more = section.total - len(section.entries)
    if section.entries and more:
        lines.append(f"  and {more} more (--all lists them all)")
    advice = advice_of(section)
    for codes, text in advice:
        which = f" ({', '.join(codes)})" if len(advice) > 1 else ""
        lines.append(f"  What to do{which}: {text}")
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
                    "entries": [_entry_json(e) for e in section.entries],
                }
                for section in report.sections
            ],
        }
    )


def _entry_json(entry: Entry) -> dict[str, str]:
    """An entry; `detail` only where it has one (a member a metadata source left out)."""
    said = {"id": entry.id, "name": entry.name, "reason": entry.reason}
    return said | {"detail": entry.detail} if entry.detail else said


class CheckFailed(click.ClickException):
    exit_code = CHECK_FAILED


def _check_failed(error: Exception) -> BaseException:
    """Whatever stops the check exits with `CHECK_FAILED` rather than the 1 of "needs
    attention": click's own errors (a usage error, `reports_errors`' line) with their message;
    any other error, logged, as well. Broad on purpose, at this edge only: a database error, or
    any other that escapes a command, would otherwise end the process with Python's 1."""
    if isinstance(error, click.ClickException):
        return CheckFailed(error.format_message())
    log.exception("registry problems: the check failed")
    return SystemExit(CHECK_FAILED)


check_failure_exits_2 = raising_instead(Exception, _check_failed)


@click.command("problems")
@config_option
@click.option("--json", "as_json", is_flag=True, help="the report as one JSON object")
@click.option(
    "--all", "every", is_flag=True, help=f"every entry of each kind, not only the first {SHOWN}"
)
@check_failure_exits_2
@reports_errors
def problems_command(config_path: Path, as_json: bool, every: bool) -> None:
    """What needs the operator's attention, the kinds that refuse logins first: schools and
    services whose logins are refused, sources not trusted, services awaiting approval, stale
    sources, secrets in clear, chains whose id breaks the rule for chain ids, entries logout
    messages do not reach; for each, what to do. Changes nothing.

    Exit status 0 when nothing needs attention, 1 when something does, 2 when the check itself
    failed (for cron or a monitoring check)."""
    settings, registry = open_registry(config_path)
    try:
        shown = None if every else SHOWN
        report = gather_attention_report(settings, registry, datetime.now(UTC), shown=shown)
    finally:
        registry.close()
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
