"""`ketenbroker school list|remove` and `publisher list|organisations|remove|remove-organisation`:
what is registered, and offboarding a school, a service or a publisher organisation
(docs/operations.md, "Offboarding a school or a service"); the table and the removal report
`chain list|remove` use too (chain_commands.py).

A removal without `--yes` says what would go and what stays, changes nothing and exits with
code 3, so a script that forgot `--yes` stops instead of carrying on as if the entry were gone.
No listing prints a secret: an OIDC school shows its client id, never its client secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from broker.cli.counts import counted, listed
from broker.cli.options import config_option, open_registry, reports_errors, who
from broker.core.admins import Publisher
from broker.core.hosted_domain import lacks_hosted_domain
from broker.core.model import Chain, Protocol, School, Service
from broker.registry import SqlRegistry
from broker.registry.removal import Removal, removal_kind
from broker.saml.encryption_summary import assertions_received
from broker.saml.metadata_report import endpoint_marks

CONFIRMATION_NEEDED = 3
NONE = "-"  # in the table; null in JSON
Cell = str | int | list[str]

json_option = click.option("--json", "as_json", is_flag=True, help="one JSON object per line")


def _metadata_origin(entity_id: str, sources: dict[str, tuple[str, ...]]) -> str:
    held = sources.get(entity_id)
    return f"metadata from source {', '.join(held)}" if held else "metadata from registration"


def school_line(
    school: School,
    sources: dict[str, tuple[str, ...]],
    schools_on_idp: Mapping[str, Sequence[str]],
    naming_idps: frozenset[str],
    metadata: Mapping[str, str],
) -> dict[str, Cell]:
    """`schools_on_idp`: every IdP's schools by entity id (an OpenID provider's by issuer), so
    that a school board's IdP names the other schools it serves; `naming_idps`: the IdPs whose
    logins must name their school (core/shared_idp.py); `metadata`: the SAML schools' metadata
    as logins use it."""
    if school.oidc is not None:
        provider = school.oidc.issuer
        origin = f"broker's client id {school.oidc.client_id}"
        if school.oidc.hosted_domain:
            origin += f", hosted domain {school.oidc.hosted_domain}"
        elif lacks_hosted_domain(school.oidc):
            origin += ", NO hosted domain: logins refused"
        if school.oidc.secret_problem:
            # The key does not open the stored secret (core/sealed_secrets.py): give it again.
            origin += ", client secret CANNOT BE OPENED: logins refused"
    else:
        provider = school.idp_entity_id
        origin = _metadata_origin(school.idp_entity_id, sources)
    others = [i for i in schools_on_idp.get(school.idp_entity_id, ()) if i != school.id]
    if others:
        origin += f", IdP shared with {', '.join(others)}"
    if school.idp_entity_id in naming_idps:
        origin += ", logins must name the school"
    if school.oidc is None:
        for refused in endpoint_marks(metadata.get(provider), "idp"):
            origin += f", {refused}"
    return {
        "id": school.id,
        "name": school.name,
        "town": school.town or NONE,
        # A list in JSON; in the table "; " between them (a name may hold a comma).
        "aliases": list(school.aliases),
        "protocol": school.protocol.value.upper(),
        "identity provider": provider,
        "registration": origin,
    }


def service_line(
    service: Service, sources: dict[str, tuple[str, ...]], metadata: Mapping[str, str]
) -> dict[str, str]:
    """`metadata`: the SAML services' metadata as logins use it, by entity id (a source's copy
    when a source holds it), for what each receives (saml/encryption_summary.py)."""
    if service.protocol is Protocol.OIDC and service.oidc is not None:
        origin = f"client auth {service.oidc.auth_method.value}"
        assertions = NONE
    else:
        origin = _metadata_origin(service.entity_id, sources)
        assertions = assertions_received(
            service.entity_id, metadata.get(service.entity_id), service.assertion_encryption
        )
        for refused in endpoint_marks(metadata.get(service.entity_id), "sp"):
            origin += f", {refused}"
    return {
        "id": service.id,
        "name": service.name,
        "protocol": service.protocol.value.upper(),
        "entity or client id": service.entity_id,
        "chain": service.chain_id or NONE,
        "publisher": service.publisher_id or NONE,
        "status": "approved" if service.approved else "awaiting approval",
        "registration": origin,
        "assertions": assertions,
    }


def _cell(value: Cell) -> str:
    if isinstance(value, list):
        return "; ".join(value) or NONE
    return str(value)


def print_table(lines: Sequence[Mapping[str, Cell]], kind: str, as_json: bool) -> None:
    if as_json:
        for line in lines:
            fields = {k.replace(" ", "_"): None if v == NONE else v for k, v in line.items()}
            click.echo(json.dumps(fields))
        return
    if lines:
        columns = list(lines[0])
        cells = [[_cell(line[c]) for c in columns] for line in lines]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        rows = [[c.upper() for c in columns], *cells]
        for row in rows:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{counted(len(lines), kind)}.")


@click.command("list")
@config_option
@json_option
@reports_errors
def school_list(config_path: Path, as_json: bool) -> None:
    """Every registered school, by id: protocol, identity provider, where its metadata comes
    from (or the broker's client id at its OpenID provider)."""
    _, registry = open_registry(config_path)
    sources = registry.federation.sources_of("idp")
    schools = registry.schools()
    on_idp: dict[str, list[str]] = {}
    for school in schools:
        on_idp.setdefault(school.idp_entity_id, []).append(school.id)
    naming = registry.idps_naming_school()
    metadata = registry.school_metadata()
    lines = [school_line(s, sources, on_idp, naming, metadata) for s in schools]
    print_table(lines, "school", as_json)


@click.command("list")
@config_option
@json_option
@reports_errors
def publisher_list(config_path: Path, as_json: bool) -> None:
    """Every registered service (approved or not), by id: protocol, entity or client id, chain,
    publisher, status, where its metadata is from, and what a SAML service's logins send it
    (encrypted, signed, or refused)."""
    _, registry = open_registry(config_path)
    sources = registry.federation.sources_of("sp")
    metadata = registry.service_metadata(approved_only=False)
    lines = [service_line(s, sources, metadata) for s in registry.all_services()]
    print_table(lines, "service", as_json)


@click.command("organisations")
@config_option
@json_option
@reports_errors
def publisher_organisations(config_path: Path, as_json: bool) -> None:
    """Every publisher organisation, by id: its name, how many services name it and how many
    publisher administrators act for it."""
    _, registry = open_registry(config_path)
    lines: list[dict[str, str | int]] = [
        {
            "id": found.publisher.id,
            "name": found.publisher.name,
            "services": found.services,
            "administrators": found.admins,
        }
        for found in registry.accounts.publisher_organisations()
    ]
    print_table(lines, "publisher organisation", as_json)


yes_option = click.option(
    "--yes",
    "confirmed",
    is_flag=True,
    help="remove it (without: say what would go; change nothing)",
)


@click.command("remove")
@config_option
@click.argument("school_id")
@yes_option
@reports_errors
def school_remove(config_path: Path, school_id: str, confirmed: bool) -> None:
    """Offboard a school: its registration, its release policies and notice settings, and its
    administrators' accounts; its receipts and choice history stay."""
    _, registry = open_registry(config_path)
    removal = registry.remove_school(school_id, apply=confirmed, removed_by=who())
    report_removal(removal, registry)


@click.command("remove")
@config_option
@click.argument("service_id")
@yes_option
@reports_errors
def publisher_remove(config_path: Path, service_id: str, confirmed: bool) -> None:
    """Offboard a publisher's service: its registration (metadata or OIDC client), declarations,
    and every school's release policy for it; receipts and history stay."""
    _, registry = open_registry(config_path)
    removal = registry.remove_service(service_id, apply=confirmed, removed_by=who())
    report_removal(removal, registry)


@click.command("remove-organisation")
@config_option
@click.argument("publisher_id")
@yes_option
@reports_errors
def publisher_remove_organisation(config_path: Path, publisher_id: str, confirmed: bool) -> None:
    """Offboard a publisher organisation with its administrators' accounts and invitations;
    refused while a service names it (remove those first with `publisher remove`)."""
    _, registry = open_registry(config_path)
    removal = registry.remove_publisher(publisher_id, apply=confirmed, removed_by=who())
    report_removal(removal, registry)


def _accounts(removal: Removal, role: str) -> list[str]:
    if not (removal.admins or removal.invitations):
        return []
    return [
        f"{counted(removal.admins, f'{role} administrator account')} and "
        f"{counted(removal.invitations, 'invitation')}: portal access ends at once"
    ]


def _publisher_lines(removal: Removal) -> tuple[list[str], list[str]]:
    """What goes and stays with a publisher organisation (it has no services left)."""
    goes = ["the publisher organisation", *_accounts(removal, "publisher")]
    stays = ["its former services' receipts and history (kept when each service was removed)"]
    return goes, stays


def _chain_lines(removal: Removal, chain: Chain) -> tuple[list[str], list[str]]:
    """What goes and stays with a chain (no service is in it)."""
    record = removal.key_version
    kept = (
        f"its pseudonym key version record (version {record.current_version})"
        if record is not None
        else "no pseudonym key version record (never rotated: the key set's current version)"
    )
    stays = [
        f"{counted(removal.receipts, 'receipt')} naming it (what was released to whom)",
        kept,
        "the pseudonym key set file, unchanged (its versions are shared by every chain)",
        # The chain id is a pseudonym input: reusing it links the new chain to this one.
        f"its pseudonyms: a chain added again as {chain.id} gives its services the same ones "
        "again; a chain that must not be linked to it needs a new id",
    ]
    return ["the chain (no service is in it)"], stays


def _entry_lines(removal: Removal, entry: School | Service) -> tuple[list[str], list[str]]:
    """What goes and stays with a school or a service."""
    school = isinstance(entry, School)
    if isinstance(entry, School):
        registration = (
            f"OpenID provider {entry.oidc.issuer} (client id {entry.oidc.client_id})"
            if entry.oidc is not None
            else f"SAML identity provider {entry.idp_entity_id} and its metadata"
        )
        other = "service"
    else:
        registration = (
            f"OpenID Connect client {entry.entity_id}"
            if entry.protocol is Protocol.OIDC
            else f"SAML service {entry.entity_id} and its metadata"
        ) + f", {counted(len(entry.declarations), 'declared attribute')}"
        other = "school"
    goes = [f"the {registration}"]
    if removal.policies:
        goes.append(
            f"{counted(len(removal.policies), 'release policy', 'release policies')} "
            f"(for {other}s {listed(removal.policies)})"
        )
    if removal.notice_settings:
        goes.append(counted(removal.notice_settings, "notice setting"))
    goes += _accounts(removal, "school")
    stays = [f"{counted(removal.receipts, 'receipt')} (what was released to whom)"]
    stays.append(f"{counted(removal.policy_history, 'version')} of release policy history")
    if not school:
        stays.append(f"{counted(removal.declaration_history, 'version')} of its declarations")
    return goes, stays


def report_removal(removal: Removal, registry: SqlRegistry) -> None:
    """What went (or would go) and what stays; exit code 3 when nothing was changed."""
    entry = removal.entry
    kind = removal_kind(entry).capitalize()
    if isinstance(entry, Publisher):
        goes, stays = _publisher_lines(removal)
    elif isinstance(entry, Chain):
        goes, stays = _chain_lines(removal, entry)
    else:
        goes, stays = _entry_lines(removal, entry)
    if isinstance(entry, Service) and entry.publisher_id:
        left = sum(1 for s in registry.all_services(entry.publisher_id) if s.id != entry.id)
        stays.append(
            f"publisher {entry.publisher_id} and its administrators "
            f"({counted(left, 'service')} left)"
        )
    title = f"{kind} {entry.id} ({entry.name})"
    click.echo(f"{title} {'removed' if removal.applied else 'would be removed'}.")
    click.echo("Goes with it:" if not removal.applied else "Went with it:")
    for line in goes:
        click.echo(f"  {line}")
    click.echo("Stays:" if not removal.applied else "Kept:")
    for line in stays:
        click.echo(f"  {line}")
    if removal.applied:
        if isinstance(entry, Publisher):
            effect = "Its administrators are signed out of the portal on their next request"
        elif isinstance(entry, Chain):
            effect = "Running brokers forget it within a second"
        else:
            effect = "Running brokers stop serving it within a second"
        click.echo(f"{effect} (docs/operations.md, Offboarding).")
        return
    click.echo(f"Nothing was changed: run again with --yes to remove {entry.id}.")
    raise SystemExit(CONFIRMATION_NEEDED)
