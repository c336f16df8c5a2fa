"""`ketenbroker school update-idp`: whether logins through a SAML IdP or an OpenID provider must
name their school, set or cleared by the IdP's entity id or the provider's issuer.

`school update --[no-]idp-names-school` reaches an IdP through one of its schools. The mark is
the IdP's and stays when its schools leave (registry/shared_idps.py), so an IdP no school is on
any more can only be reached by its entity id: to clear the mark of a board IdP that turned out
to be one school's, or to set it for a board IdP before its first school is registered (held by
a metadata source). The same rules hold: not while several schools share the IdP (to clear),
and BRIN ids for every school on it (to set).
"""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.options import config_option, open_registry, reports_errors
from broker.cli.registry_idp_rules import MAX_ENTITY_ID

NAMES_SCHOOL_HELP = (
    "every login through the IdP must name the chosen school (SAML: in "
    "nlEduPersonHomeOrganizationId, OIDC: in the school_id claim; a school board's IdP); "
    "--no-idp-names-school stops that for an IdP of one school or none"
)


def _entity_id(_context: click.Context, _parameter: click.Parameter, value: str) -> str:
    """The entity id as given, refused before the registry is opened when it cannot be one."""
    if not value.strip() or len(value) > MAX_ENTITY_ID:
        raise click.BadParameter(f"must be text of 1-{MAX_ENTITY_ID} characters")
    if value != value.strip():
        raise click.BadParameter("has spaces at its start or end; give the entity id exactly")
    return value


@click.command("update-idp")
@config_option
@click.option(
    "--entity-id",
    required=True,
    callback=_entity_id,
    help="the SAML IdP's entity id or the OpenID provider's issuer, exactly as registered "
    "(`school list`, `registry export`)",
)
@click.option(
    "--idp-names-school/--no-idp-names-school",
    "names_school",
    default=None,
    help=NAMES_SCHOOL_HELP,
)
@reports_errors
def school_update_idp(config_path: Path, entity_id: str, names_school: bool | None) -> None:
    """Set or clear whether logins through a SAML IdP or OpenID provider must name their
    school, by its entity id or issuer: also for one no school is on (any more). Running
    brokers use it without a restart."""
    if names_school is None:
        raise click.UsageError("give --idp-names-school or --no-idp-names-school")
    _, registry = open_registry(config_path)
    changed, school_ids = registry.set_names_school_of_idp(entity_id, names_school)
    on_it = f"school(s) {', '.join(school_ids)}" if school_ids else "no school on it"
    click.echo(f"IdP {entity_id} ({on_it}): its logins {names_school_said(names_school, changed)}.")


def names_school_said(wanted: bool, changed: bool) -> str:
    """What became of an IdP's logins when the operator set (`wanted`) or cleared its mark."""
    if wanted:
        return "must name their school" if changed else "already had to name their school"
    return "need not name the school any more" if changed else "did not have to name it"
