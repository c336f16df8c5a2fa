"""`ketenbroker school`: register a school with its SAML identity provider or its OpenID
provider, its town and other names, and its privacy contact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click

from broker.cli.entry_commands import school_list, school_remove
from broker.cli.metadata_update import Registered, say_refreshed, update_given
from broker.cli.options import checked_name, config_option, open_registry, reports_errors
from broker.cli.school_idp_commands import names_school_said, school_update_idp
from broker.cli.sources import given_url, read_source, warn_unless_federated
from broker.config import Settings, load_settings
from broker.core.endpoints import privacy_contact_link, privacy_contact_problem
from broker.core.hosted_domain import lacks_hosted_domain
from broker.core.model import School
from broker.core.school_aliases import aliases_problem, clean_aliases
from broker.core.subjects import SAML_SUBJECTS, lacks_realms
from broker.core.towns import clean_town, town_problem
from broker.registry import SqlRegistry
from broker.saml.metadata_check import idp_entity_id, single_idp_entity

# What can feed the pseudonym (broker/core/subjects.py).
SUBJECT_CHOICES = SAML_SUBJECTS
TOWN_HELP = "the school's town, shown under its name on the discovery page and searched there"
HOSTED_DOMAIN_HELP = (
    "OIDC: the school's Google Workspace domain; only accounts whose ID token carries it as hd "
    "sign in (required for the issuer https://accounts.google.com)"
)
ALIAS_HELP = (
    "another name students know the school by (a former or informal name, a location), "
    "searched on the discovery page (repeat)"
)


def _town(value: str) -> str:
    """`--town` as stored, or a clear refusal before anything is written."""
    town = clean_town(value)
    if problem := town_problem(town):
        raise click.BadParameter(f"the town {problem}", param_hint="--town")
    return town


def _aliases(name: str, aliases: Sequence[str], *, given: bool = True) -> tuple[str, ...]:
    """Aliases as stored, or a clear refusal before anything is written. `given`: False when
    they are the school's own and only its new `--name` is checked against them."""
    cleaned = clean_aliases(aliases)
    if problem := aliases_problem(name, cleaned):
        if given:
            raise click.BadParameter(str(problem), param_hint="--alias")
        raise click.BadParameter(
            f"{problem}: give the aliases to keep with --alias, or --clear-aliases",
            param_hint="--name",
        )
    return cleaned


@click.group("school")
def school_group() -> None:
    """Schools and their identity providers."""


@school_group.command("add")
@config_option
@click.option("--id", "school_id", required=True)
@click.option("--name", required=True, callback=checked_name)
@click.option("--town", default="", help=TOWN_HELP)
@click.option("--alias", "aliases", multiple=True, help=ALIAS_HELP)
@click.option("--saml-metadata", "metadata", default=None, help="file or URL (a SAML IdP)")
@click.option(
    "--saml-entity-id",
    "federated_id",
    default=None,
    help="a SAML IdP whose metadata comes from a [[metadata.sources]] source",
)
@click.option("--oidc-issuer", "issuer", default=None, help="the school's OpenID provider")
@click.option("--client-id", default=None, help="the broker's client id at that provider")
@click.option(
    "--client-secret-file",
    "secret_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="file holding the broker's client secret there (never on the command line)",
)
@click.option(
    "--alg",
    "algorithms",
    multiple=True,
    help="an ID token algorithm the provider signs with (repeat; default RS256)",
)
@click.option(
    "--subject",
    default=None,
    help="SAML: name_id (default) or a catalogue attribute; OIDC: sub (default) or a claim",
)
@click.option("--hosted-domain", "domain", default=None, help=HOSTED_DOMAIN_HELP)
@click.option("--eck-id", is_flag=True, help="derive pseudonyms from the ECK iD (eck_id)")
@click.option("--scope", "scopes", multiple=True, help="the school's realm(s) for scoped values")
@reports_errors
def school_add(
    config_path: Path,
    school_id: str,
    name: str,
    town: str,
    aliases: tuple[str, ...],
    metadata: str | None,
    federated_id: str | None,
    issuer: str | None,
    client_id: str | None,
    secret_file: Path | None,
    algorithms: tuple[str, ...],
    subject: str | None,
    domain: str | None,
    eck_id: bool,
    scopes: tuple[str, ...],
) -> None:
    """Register a school with its SAML identity provider or its OpenID provider."""
    town = _town(town)
    aliases = _aliases(name, aliases)
    if [metadata, federated_id, issuer].count(None) != 2:
        raise click.UsageError(
            "give either --saml-metadata or --oidc-issuer, or --saml-entity-id "
            "(metadata from a metadata source): exactly one"
        )
    if issuer is not None:
        if client_id is None or secret_file is None:
            raise click.UsageError("--oidc-issuer needs --client-id and --client-secret-file")
        from broker.cli.school_oidc import oidc_school

        settings = load_settings(config_path)
        school = oidc_school(
            school_id,
            name,
            issuer=issuer,
            client_id=client_id,
            secret_file=secret_file,
            subject=subject or "sub",
            algorithms=algorithms or ("RS256",),
            eck_id=eck_id,
            scopes=scopes,
            domain=domain or "",
            timeout=settings.oidc.http_timeout_seconds if settings.oidc else 5.0,
            allow_loopback=settings.peers_on_loopback,
        )
        _, registry = open_registry(config_path)
        # On an issuer other schools have (a school board's): its logins must name the school
        # from now on (registry/shared_idps.py).
        _check_realms(school)
        registry.add_school(replace(school, town=town, aliases=aliases), "")
        stored = school.oidc.hosted_domain if school.oidc else ""
        said = f", hosted domain {stored}" if stored else ""
        click.echo(f"School {school_id} added (OpenID provider {issuer}{said}).")
        _note_shared(registry, school)
        # One redirect URI per school (the mix-up defence): the school's provider must know it.
        click.echo(f"  Redirect URI to register there: {settings.oidc_callback_url(school_id)}")
        logout_uri = settings.oidc_logout_callback_url(school_id)
        click.echo(f"  Post-logout redirect URI to register there: {logout_uri}")
        backchannel_uri = settings.oidc_backchannel_logout_url(school_id)
        click.echo(
            f"  Back-channel logout URI to register there: {backchannel_uri}"
            " (session required: the logout token must carry sid)"
        )
        return
    if client_id is not None or secret_file is not None or algorithms or domain is not None:
        raise click.UsageError(
            "--client-id, --client-secret-file, --alg and --hosted-domain go with --oidc-issuer"
        )
    subject = subject or "name_id"
    if subject not in SUBJECT_CHOICES:
        raise click.BadParameter(
            f"{subject!r} cannot identify a student; choose one of {', '.join(SUBJECT_CHOICES)}"
            " (or --eck-id)"
        )
    settings, registry = open_registry(config_path)
    if federated_id is not None:
        warn_unless_federated(registry, federated_id, "idp")
        entity_id, xml, url = federated_id, "", None  # none of its own: the source's
    else:
        assert metadata is not None
        xml = single_idp_entity(read_source(metadata, allow_loopback=settings.peers_on_loopback))
        entity_id, url = idp_entity_id(xml), given_url(metadata)
    school = School(school_id, name, entity_id, subject, eck_id, scopes, town=town, aliases=aliases)
    _check_realms(school)
    # On an IdP other schools have (a school board's): with the same metadata only, or refused
    # with what to do (registry/shared_idps.py).
    registry.add_school(school, xml, url)
    click.echo(f"School {school_id} added (IdP {entity_id}).")
    if metadata is not None:  # not by --saml-entity-id: a source's copy follows the source
        say_refreshed(url, "idp")
    # What the school's ICT registers at its IdP (a relying party trust, an SP): the broker's
    # SP metadata, whose URL is also the broker's entity id towards schools.
    click.echo(f"  The broker's SP metadata for the IdP to read: {settings.sp_entity_id}")
    _note_shared(registry, school)


def _update_school_metadata(
    settings: Settings, registry: SqlRegistry, school: School, metadata: str
) -> None:
    """`school update --saml-metadata`: the new copy, and where it came from (a URL kept for
    `metadata refresh`, a file clearing it)."""
    entry = Registered(f"School {school.id}", school.id, school.idp_entity_id, "idp")
    update_given(settings, registry, entry, metadata)


def _check_realms(school: School) -> None:
    """Refuse a subject no student could sign in with (core/subjects.py `lacks_realms`)."""
    if lacks_realms(school):
        raise click.BadParameter(realms_needed(school.subject_attribute), param_hint="--subject")


def realms_needed(subject: str) -> str:
    """What is wrong with a scoped subject and no realm, and what to do (the CLI's words)."""
    return (
        f"{subject} identifies students by a value ending in one of the school's realms "
        "(@school.nl), and the school has none: every value would be dropped and no student "
        "could sign in. Give the realm(s) with --scope, or choose another --subject"
    )


def _note_shared(registry: SqlRegistry, school: School) -> None:
    """Say so when the school's IdP or issuer is a board's (registry/shared_idps.py): what
    its every login must carry from now on."""
    entity_id = school.idp_entity_id
    others = _others_on_idp(registry, entity_id, school.id)
    if others or registry.idp_names_school(entity_id):
        what = "issuer" if school.oidc is not None else "IdP"
        shared = (
            f"The {what} is shared with school(s) {', '.join(others)}: its" if others else "Its"
        )
        carried = "a school_id claim" if school.oidc is not None else SAML_SCHOOL_ATTRIBUTE
        click.echo(f"  {shared} logins must carry {carried} {NAMES_SCHOOL_NOTE}")


SAML_SCHOOL_ATTRIBUTE = "nlEduPersonHomeOrganizationId"
NAMES_SCHOOL_NOTE = (
    "with the chosen school's id, also after schools leave it (docs/operations.md, school boards)."
)


def _others_on_idp(registry: SqlRegistry, entity_id: str, school_id: str) -> list[str]:
    return [s.id for s in registry.schools_by_idp(entity_id) if s.id != school_id]


NAMES_SCHOOL_HELP = (
    "every login through the school's IdP or OpenID issuer must name the school (SAML: "
    "nlEduPersonHomeOrganizationId, OIDC: the school_id claim; a school board's); "
    "--no-idp-names-school stops that for an IdP of this school alone (`school update-idp`: by "
    "the IdP's entity id or issuer)"
)


@school_group.command("update")
@config_option
@click.option("--id", "school_id", required=True)
@click.option(
    "--saml-metadata",
    "metadata",
    default=None,
    help="file or URL: the school IdP's new metadata (same entity id)",
)
@click.option(
    "--name",
    default=None,
    callback=checked_name,
    help="the school's new name, as students see it on the discovery page",
)
@click.option("--town", default=None, help=f'{TOWN_HELP} ("": none)')
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    help=f"{ALIAS_HELP}; replaces the school's aliases: give every one to keep",
)
@click.option("--clear-aliases", is_flag=True, help="the school has no other names")
@click.option("--hosted-domain", "domain", default=None, help=HOSTED_DOMAIN_HELP)
@click.option(
    "--clear-hosted-domain", is_flag=True, help="OIDC: every account of the provider signs in"
)
@click.option(
    "--idp-names-school/--no-idp-names-school", "names_school", default=None, help=NAMES_SCHOOL_HELP
)
@reports_errors
def school_update(
    config_path: Path,
    school_id: str,
    metadata: str | None,
    name: str | None,
    town: str | None,
    aliases: tuple[str, ...],
    clear_aliases: bool,
    domain: str | None,
    clear_hosted_domain: bool,
    names_school: bool | None,
) -> None:
    """Load a SAML school's IdP metadata again (a new certificate, moved endpoints) and say
    what changed, or set its name, town or aliases (in one write), or an OIDC school's hosted
    domain, or whether logins through its IdP must name their school; running brokers use
    each without a restart."""
    given = (metadata, name, town, domain, names_school)
    if all(v is None for v in given) and not (aliases or clear_aliases or clear_hosted_domain):
        raise click.UsageError(
            "give --saml-metadata, --name, --town, --alias, --clear-aliases, --hosted-domain, "
            "--clear-hosted-domain or --[no-]idp-names-school"
        )
    if aliases and clear_aliases:
        raise click.UsageError("give --alias or --clear-aliases, not both")
    if domain is not None and clear_hosted_domain:
        raise click.UsageError("give --hosted-domain or --clear-hosted-domain, not both")
    town = _town(town) if town is not None else None
    settings, registry = open_registry(config_path)
    school = registry.school(school_id)
    if school is None:
        raise click.ClickException(f"no school with id {school_id!r}")
    # Every check before any write: a name and aliases are checked together, as they will be.
    new_aliases: tuple[str, ...] | None = None
    if aliases or clear_aliases:
        new_aliases = _aliases(name or school.name, aliases)
    elif name is not None:
        _aliases(name, school.aliases, given=False)
    new_domain = _hosted_domain(school, "" if clear_hosted_domain else domain)
    if names_school is not None:
        registry.check_idp_names_school(school_id, names_school)
    if metadata is not None:
        if school.oidc is not None:
            raise click.ClickException(
                f"School {school_id} signs in with OpenID Connect ({school.oidc.issuer}), "
                "not SAML: it has no metadata to update"
            )
        _update_school_metadata(settings, registry, school, metadata)
    if new_domain is not None and school.oidc is not None:
        # The domain alone, under the issuer it was checked against: a portal edit of the
        # provider's secret since the read above is kept (sql_registry.set_school_hosted_domain).
        registry.set_school_hosted_domain(school_id, school.oidc.issuer, new_domain)
        said = f"hosted domain set to {new_domain}" if new_domain else "hosted domain cleared"
        click.echo(f"School {school_id}: {said}.")
    if names_school is not None:
        _set_names_school(registry, school_id, names_school)
    if name is None and town is None and new_aliases is None:
        return
    registry.set_school_details(school_id, name, town, new_aliases)
    if name is not None:
        click.echo(f"School {school_id}: name set to {name}.")
    if town is not None:
        said = f"town set to {town}" if town else "town cleared"
        click.echo(f"School {school_id}: {said}.")
    if new_aliases is not None:
        listed = ", ".join(new_aliases)
        said = f"aliases set to {listed}" if new_aliases else "aliases cleared"
        click.echo(f"School {school_id}: {said}.")


def _set_names_school(registry: SqlRegistry, school_id: str, wanted: bool) -> None:
    entity_id, changed = registry.set_idp_names_school(school_id, wanted)
    others = _others_on_idp(registry, entity_id, school_id)
    also = f" (and school(s) {', '.join(others)})" if others else ""
    said = names_school_said(wanted, changed)
    click.echo(f"School {school_id}{also}: logins through IdP {entity_id} {said}.")


def _hosted_domain(school: School, domain: str | None) -> str | None:
    """The school's new hosted domain as stored ("": none; None: not changed), checked before
    any write. Another change to a school on a shared issuer without one goes ahead (a new name
    makes no login less safe), with a warning: its every login is refused until it has one
    (core/hosted_domain.py), and the operator changing it is the one to hear so."""
    upstream = school.oidc
    if domain is None:
        if upstream is not None and lacks_hosted_domain(upstream):
            click.echo(
                f"Warning: school {school.id} signs in with {upstream.issuer}, which signs in "
                "every Google account, and has no hosted domain: its logins are refused until "
                "it has one. Give --hosted-domain with the school's Google Workspace domain.",
                err=True,
            )
        return None
    if upstream is None:
        raise click.ClickException(
            f"School {school.id} signs in with SAML: a hosted domain is an OpenID provider's"
        )
    from broker.cli.school_oidc import hosted_domain

    return hosted_domain(upstream.issuer, domain)


@school_group.command("privacy-contact")
@config_option
@click.option("--id", "school_id", required=True)
@click.option(
    "--contact", required=True, help="an https:// page, or an e-mail address (stored as mailto:)"
)
@reports_errors
def school_privacy_contact(config_path: Path, school_id: str, contact: str) -> None:
    """Where students and parents ask the school about their data (shown on my-data pages)."""
    contact = privacy_contact_link(contact)
    problem = privacy_contact_problem(contact)
    if problem:
        raise click.BadParameter(problem)
    _, registry = open_registry(config_path)
    registry.set_privacy_contact(school_id, contact)
    click.echo(f"School {school_id}: privacy contact set.")


school_group.add_command(school_list)
school_group.add_command(school_remove)
school_group.add_command(school_update_idp)
