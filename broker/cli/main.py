"""The `ketenbroker` command. Every command validates its input and says exactly what is wrong,
changing nothing when anything is."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from broker.cli.key_commands import keys_group
from broker.cli.metadata_commands import metadata_group
from broker.cli.options import config_option, open_registry, reports_errors
from broker.cli.pseudonym_key_commands import pseudonym_key_group
from broker.cli.publisher_logout import (
    logout_options,
    publisher_update,
    saml_refuses_logout_options,
)
from broker.cli.receipt_commands import receipts_group
from broker.cli.registry_commands import registry_group
from broker.cli.serve import serve_command
from broker.cli.sources import read_source
from broker.config import load_settings
from broker.core.catalogue import CATALOGUE, is_known_attribute
from broker.core.endpoints import privacy_contact_problem
from broker.core.model import (
    Chain,
    ClientAuthMethod,
    Declaration,
    NamingProfile,
    Protocol,
    School,
    Service,
)
from broker.core.subjects import SAML_SUBJECTS
from broker.oidc.registration import new_client
from broker.registry import SqlRegistry, migrate
from broker.saml.metadata_check import idp_entity_id, sp_entity_id


def _attribute(name: str) -> str:
    if not is_known_attribute(name):
        known = ", ".join(sorted(CATALOGUE))
        raise click.BadParameter(f"unknown attribute {name!r}; known attributes: {known}")
    return name


# What can feed the pseudonym (broker/core/subjects.py).
SUBJECT_CHOICES = SAML_SUBJECTS


def _who() -> str:
    return f"cli:{getpass.getuser()}"


@click.group()
@click.version_option(package_name="ketenbroker")
def main() -> None:
    """Ketenbroker: schools' logins in, chain pseudonyms out."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--scope", default="ketenbroker.example", show_default=True, help="pairwise-id scope")
@click.option("--organization", default="Ketenbroker", show_default=True)
def init(directory: Path, base_url: str, scope: str, organization: str) -> None:
    """Create a new broker in DIRECTORY: config, keys (mode 0600), empty registry."""
    from broker.cli.instance import init_instance

    try:
        config = init_instance(directory, base_url, scope, organization)
    except FileExistsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Created {config}")
    click.echo(f"Next: ketenbroker school add --config {config} ...")


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@reports_errors
def run(config_path: Path, host: str, port: int) -> None:
    """Serve the broker (development server; production: gunicorn, see docs/operations.md)."""
    from werkzeug.serving import run_simple

    from broker.web import create_app

    settings = load_settings(config_path)
    migrate(settings.registry_url)
    run_simple(host, port, create_app(settings), threaded=True)


@main.command("migrate")
@config_option
@reports_errors
def migrate_command(config_path: Path) -> None:
    """Bring the registry's schema up to date (run once before starting new workers)."""
    settings = load_settings(config_path)
    migrate(settings.registry_url)
    click.echo("Registry schema is up to date.")


F = TypeVar("F", bound=Callable[..., object])


def _folder_option(default: str, help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--dir",
        "directory",
        default=default,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help_text,
    )


@main.command()
@click.option("--port", default=8000, show_default=True, type=int, help="the broker's port")
@_folder_option("ketenbroker-demo")
@reports_errors
def demo(port: int, directory: Path) -> None:
    """Start the broker with a demo school and demo publishers, all on this machine."""
    from broker.cli.demo import run_demo

    run_demo(directory, port)


@main.command("demo-peers")
@config_option
@_folder_option("ketenbroker-demo-peers", "where the peers keep their keys")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", default=8001, show_default=True, type=int, help="the school's port")
@reports_errors
def demo_peers(config_path: Path, directory: Path, host: str, port: int) -> None:
    """The SAML demo school (PORT) and demo publishers (the ports after it) for a broker that
    runs elsewhere on this machine (docker/compose.yaml); registers them on first start."""
    from broker.cli.demo import run_saml_peers

    run_saml_peers(load_settings(config_path), directory, host, port)


main.add_command(registry_group)
main.add_command(receipts_group)
main.add_command(serve_command)
main.add_command(metadata_group)
main.add_command(keys_group)
main.add_command(pseudonym_key_group)


@main.group()
def school() -> None:
    """Schools and their identity providers."""


@school.command("add")
@config_option
@click.option("--id", "school_id", required=True)
@click.option("--name", required=True)
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
@click.option("--eck-id", is_flag=True, help="derive pseudonyms from the ECK iD (eck_id)")
@click.option("--scope", "scopes", multiple=True, help="the school's realm(s) for scoped values")
@reports_errors
def school_add(
    config_path: Path,
    school_id: str,
    name: str,
    metadata: str | None,
    federated_id: str | None,
    issuer: str | None,
    client_id: str | None,
    secret_file: Path | None,
    algorithms: tuple[str, ...],
    subject: str | None,
    eck_id: bool,
    scopes: tuple[str, ...],
) -> None:
    """Register a school with its SAML identity provider or its OpenID provider."""
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
            timeout=settings.oidc.http_timeout_seconds if settings.oidc else 5.0,
            allow_loopback=settings.peers_on_loopback,
        )
        _, registry = open_registry(config_path)
        registry.add_school(school, "")
        click.echo(f"School {school_id} added (OpenID provider {issuer}).")
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
    if client_id is not None or secret_file is not None or algorithms:
        raise click.UsageError("--client-id, --client-secret-file and --alg go with --oidc-issuer")
    subject = subject or "name_id"
    if subject not in SUBJECT_CHOICES:
        raise click.BadParameter(
            f"{subject!r} cannot identify a student; choose one of {', '.join(SUBJECT_CHOICES)}"
            " (or --eck-id)"
        )
    settings, registry = open_registry(config_path)
    if federated_id is not None:
        entity_id, xml = federated_id, _federated_metadata(registry, federated_id, "idp")
    else:
        assert metadata is not None
        xml = read_source(metadata, allow_loopback=settings.peers_on_loopback)
        entity_id = idp_entity_id(xml)
    registry.add_school(School(school_id, name, entity_id, subject, eck_id, scopes), xml)
    click.echo(f"School {school_id} added (IdP {entity_id}).")


@school.command("privacy-contact")
@config_option
@click.option("--id", "school_id", required=True)
@click.option("--contact", required=True, help="an https:// page or a mailto: address")
@reports_errors
def school_privacy_contact(config_path: Path, school_id: str, contact: str) -> None:
    """Where students and parents ask the school about their data (shown on my-data pages)."""
    problem = privacy_contact_problem(contact)
    if problem:
        raise click.BadParameter(problem)
    _, registry = open_registry(config_path)
    registry.set_privacy_contact(school_id, contact)
    click.echo(f"School {school_id}: privacy contact set.")


def _federated_metadata(registry: SqlRegistry, entity_id: str, role: str) -> str:
    """The metadata a source holds for `entity_id` now, or "" (it may come with a refresh).
    Either way the source's copy is what logins use from then on (docs/operations.md)."""
    held = registry.federation.entity(entity_id, role)
    if held is None:
        click.echo(
            f"No metadata source holds {entity_id} yet: logins start working once "
            "`ketenbroker metadata refresh` brings its metadata."
        )
        return ""
    return held.xml


@main.group()
def chain() -> None:
    """Chains: services that see the same pseudonym."""


@chain.command("add")
@config_option
@click.option("--id", "chain_id", required=True)
@click.option("--name", required=True)
@reports_errors
def chain_add(config_path: Path, chain_id: str, name: str) -> None:
    _, registry = open_registry(config_path)
    registry.add_chain(Chain(chain_id, name))
    click.echo(f"Chain {chain_id} added.")


def _declarations(declare: tuple[str, ...], require: tuple[str, ...]) -> tuple[Declaration, ...]:
    out: dict[str, Declaration] = {}
    for value, required in [(v, False) for v in declare] + [(v, True) for v in require]:
        name, sep, purpose = value.partition("=")
        if not sep or not purpose.strip():
            raise click.BadParameter(
                f"{value!r}: write ATTRIBUTE=PURPOSE (the purpose a parent reads)"
            )
        _attribute(name.strip())
        if name.strip() in out:
            raise click.BadParameter(f"attribute {name.strip()!r} declared twice")
        out[name.strip()] = Declaration(name.strip(), purpose.strip(), required)
    return tuple(out.values())


@main.group()
def publisher() -> None:
    """Publishers' services (SAML service providers and OpenID Connect clients)."""


@publisher.command("add")
@config_option
@click.option("--id", "service_id", required=True)
@click.option("--name", required=True)
@click.option("--saml-metadata", "metadata", default=None, help="file or URL (a SAML service)")
@click.option(
    "--saml-entity-id",
    "federated_id",
    default=None,
    help="a SAML service whose metadata comes from a [[metadata.sources]] source",
)
@click.option(
    "--oidc-redirect-uri",
    "redirect_uris",
    multiple=True,
    help="an OIDC client's redirect URI, exact (repeat for more)",
)
@click.option(
    "--oidc-auth",
    "auth_method",
    type=click.Choice([m.value for m in ClientAuthMethod]),
    default=ClientAuthMethod.SECRET_BASIC.value,
    show_default=True,
    help="how the client authenticates at the token endpoint (none: a public client, PKCE)",
)
@click.option(
    "--oidc-jwks-uri", "jwks_uri", default=None, help="the client's keys (private_key_jwt)"
)
@click.option(
    "--oidc-id-token-alg",
    "id_token_alg",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
)
@click.option("--oidc-refresh-tokens", "refresh_tokens", is_flag=True, help="issue refresh tokens")
@logout_options
@click.option("--chain", "chain_id", default=None)
@click.option("--naming", type=click.Choice(["oid", "plain"]), default="oid", show_default=True)
@click.option("--declare", multiple=True, help="ATTRIBUTE=PURPOSE, an optional attribute")
@click.option("--require", multiple=True, help="ATTRIBUTE=PURPOSE, a required attribute")
@reports_errors
def publisher_add(
    config_path: Path,
    service_id: str,
    name: str,
    metadata: str | None,
    federated_id: str | None,
    redirect_uris: tuple[str, ...],
    auth_method: str,
    jwks_uri: str | None,
    id_token_alg: str,
    refresh_tokens: bool,
    post_logout_uris: tuple[str, ...],
    backchannel_logout_uri: str | None,
    backchannel_session_required: bool,
    chain_id: str | None,
    naming: str,
    declare: tuple[str, ...],
    require: tuple[str, ...],
) -> None:
    """Register a publisher's service (SAML metadata, or an OIDC client with redirect URIs)
    and the attributes it needs, with purposes."""
    if [metadata, federated_id, redirect_uris or None].count(None) != 2:
        raise click.UsageError(
            "give either --saml-metadata or --oidc-redirect-uri, or --saml-entity-id "
            "(metadata from a metadata source): exactly one"
        )
    declarations = _declarations(declare, require)
    if not redirect_uris:
        saml_refuses_logout_options(
            post_logout_uris, backchannel_logout_uri, backchannel_session_required
        )
    if federated_id is not None:
        _, registry = open_registry(config_path)
        registry.add_service(
            Service(service_id, name, federated_id, chain_id, NamingProfile(naming), declarations),
            _federated_metadata(registry, federated_id, "sp") or None,
        )
        click.echo(f"Service {service_id} added (SP {federated_id}, from a metadata source).")
        return
    if metadata is not None:
        settings, registry = open_registry(config_path)
        xml = read_source(metadata, allow_loopback=settings.peers_on_loopback)
        entity_id = sp_entity_id(xml)
        registry.add_service(
            Service(service_id, name, entity_id, chain_id, NamingProfile(naming), declarations),
            xml,
        )
        click.echo(f"Service {service_id} added (SP {entity_id}).")
        return
    client, secret = new_client(
        redirect_uris,
        ClientAuthMethod(auth_method),
        jwks_uri=jwks_uri,
        id_token_alg=id_token_alg,
        refresh_tokens=refresh_tokens,
        post_logout_redirect_uris=post_logout_uris,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_session_required,
    )
    settings, registry = open_registry(config_path)
    # The client id is the service id: readable in the publisher's configuration and logs.
    service = Service(
        service_id,
        name,
        service_id,
        chain_id,
        NamingProfile(naming),
        declarations,
        protocol=Protocol.OIDC,
        oidc=client,
    )
    registry.add_service(service, None)
    click.echo(f"Service {service_id} added (OpenID Connect client).")
    click.echo(f"  issuer:        {settings.issuer}")
    click.echo(f"  client_id:     {service_id}")
    if secret is not None:
        click.echo(f"  client_secret: {secret}")
        click.echo("  The secret is shown this once; the broker keeps only its hash.")


publisher.add_command(publisher_update)


@main.group()
def policy() -> None:
    """What each school releases to each service."""


@policy.command("set")
@config_option
@click.option("--school", "school_id", required=True)
@click.option("--publisher", "service_id", required=True)
@click.option("--release", default="", help="ATTR[,ATTR…]; empty: the pseudonym alone")
@reports_errors
def policy_set(config_path: Path, school_id: str, service_id: str, release: str) -> None:
    names = frozenset(_attribute(a.strip()) for a in release.split(",") if a.strip())
    _, registry = open_registry(config_path)
    result = registry.set_policy(school_id, service_id, names, _who())
    shown = ", ".join(sorted(result.attributes)) or "the pseudonym alone"
    click.echo(f"Policy version {result.version}: {school_id} releases {shown} to {service_id}.")


@policy.command("show")
@config_option
@click.option("--school", "school_id", required=True)
@click.option("--publisher", "service_id", default=None)
@reports_errors
def policy_show(config_path: Path, school_id: str, service_id: str | None) -> None:
    _, registry = open_registry(config_path)
    if registry.school(school_id) is None:
        raise click.ClickException(f"unknown school {school_id!r}")
    services = registry.services()
    if service_id is not None:
        services = [s for s in services if s.id == service_id]
        if not services:
            raise click.ClickException(f"unknown publisher {service_id!r}")
    for service in services:
        current = registry.policy(school_id, service.id)
        shown = ", ".join(sorted(current.attributes)) or "(pseudonym only)"
        declared = (
            ", ".join(f"{d.attribute}{'*' if d.required else ''}" for d in service.declarations)
            or "-"
        )
        click.echo(f"{service.id}: v{current.version} releases {shown}; declared: {declared}")


@main.group()
def admin() -> None:
    """Portal administrators."""


@admin.command("create")
@config_option
@click.option("--email", required=True, help="the operator's e-mail address (their login)")
@reports_errors
def admin_create(config_path: Path, email: str) -> None:
    """Create an operator (the first one, typically); prints the TOTP key once.

    The password is asked for twice, hidden: never an option, so it stays out of the shell's
    history and the process list."""
    from broker.accounts import totp
    from broker.accounts.passwords import hash_password
    from broker.core.admins import AdminRole

    password = click.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    password_hash = hash_password(password)
    secret = totp.new_secret()
    settings, registry = open_registry(config_path)
    created = registry.accounts.add_admin(email, password_hash, secret, AdminRole.OPERATOR, None)
    issuer = settings.organization.name or "Ketenbroker"
    click.echo(f"Operator {created.id} created. Add this key to an authenticator app now;")
    click.echo("it is not shown again:")
    click.echo(
        f"\n    key: {secret}\n    uri: {totp.provisioning_uri(secret, created.email, issuer)}\n"
    )
    click.echo(f"Sign in at {settings.url('/portal/sign-in')}")
