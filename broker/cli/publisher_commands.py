"""`ketenbroker publisher`: register a publisher's service (SAML metadata, or an OpenID Connect
client) with the attributes it declares; `publisher update` is in publisher_logout.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from broker.cli.entry_commands import (
    publisher_list,
    publisher_organisations,
    publisher_remove,
    publisher_remove_organisation,
)
from broker.cli.id_reuse_options import id_reuse, reuse_options
from broker.cli.metadata_update import say_refreshed
from broker.cli.options import (
    catalogue_attribute,
    checked_name,
    config_option,
    open_registry,
    reports_errors,
)
from broker.cli.publisher_logout import (
    logout_options,
    publisher_update,
    saml_refuses_logout_options,
)
from broker.cli.sources import given_url, read_source, warn_unless_federated
from broker.core.model import ClientAuthMethod, Declaration, NamingProfile, Protocol, Service
from broker.oidc.registration import new_client
from broker.saml.metadata_check import sp_entity_id


def _attribute_text(value: str, expected: str) -> tuple[str, str]:
    name, sep, text = value.partition("=")
    if not sep or not text.strip():
        raise click.BadParameter(f"{value!r}: write {expected}")
    return name.strip(), text.strip()


def _declarations(
    declare: tuple[str, ...], require: tuple[str, ...], purpose_en: tuple[str, ...]
) -> tuple[Declaration, ...]:
    """`--declare`/`--require` give the Dutch purpose (every page's default), `--purpose-en`
    the English one of an attribute declared by either; without it English pages show the
    Dutch text."""
    out: dict[str, Declaration] = {}
    for value, required in [(v, False) for v in declare] + [(v, True) for v in require]:
        name, purpose = _attribute_text(value, "ATTRIBUTE=PURPOSE (the purpose a parent reads)")
        catalogue_attribute(name)
        if name in out:
            raise click.BadParameter(f"attribute {name!r} declared twice")
        out[name] = Declaration(name, purpose, required)
    english: dict[str, str] = {}
    for value in purpose_en:
        name, text = _attribute_text(value, "ATTRIBUTE=PURPOSE IN ENGLISH")
        if name not in out:
            raise click.BadParameter(
                f"--purpose-en {name}: declare {name!r} with --declare or --require first"
            )
        if name in english:
            raise click.BadParameter(f"--purpose-en {name}: given twice")
        english[name] = text
        out[name] = replace(out[name], purpose_en=text)
    return tuple(out.values())


@click.group("publisher")
def publisher_group() -> None:
    """Publishers' services (SAML service providers and OpenID Connect clients)."""


@publisher_group.command("add")
@config_option
@click.option("--id", "service_id", required=True)
@click.option("--name", required=True, callback=checked_name)
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
@click.option(
    "--declare", multiple=True, help="ATTRIBUTE=PURPOSE (in Dutch), an optional attribute"
)
@click.option("--require", multiple=True, help="ATTRIBUTE=PURPOSE (in Dutch), a required attribute")
@click.option(
    "--purpose-en",
    multiple=True,
    help="ATTRIBUTE=PURPOSE in English, for an attribute given with --declare or --require",
)
@reports_errors
@reuse_options("publisher add")
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
    purpose_en: tuple[str, ...],
    reuse_removed_id: bool,
    pseudonyms_carry_over: bool,
) -> None:
    """Register a publisher's service (SAML metadata, or an OIDC client with redirect URIs)
    and the attributes it needs, with purposes. An id a removed service had only with
    --reuse-removed-id (docs/cli.md)."""
    reuse = id_reuse(reuse_removed_id, pseudonyms_carry_over)
    if [metadata, federated_id, redirect_uris or None].count(None) != 2:
        raise click.UsageError(
            "give either --saml-metadata or --oidc-redirect-uri, or --saml-entity-id "
            "(metadata from a metadata source): exactly one"
        )
    declarations = _declarations(declare, require, purpose_en)
    if not redirect_uris:
        saml_refuses_logout_options(
            post_logout_uris, backchannel_logout_uri, backchannel_session_required
        )
    if federated_id is not None:
        _, registry = open_registry(config_path)
        warn_unless_federated(registry, federated_id, "sp")
        registry.add_service(
            Service(service_id, name, federated_id, chain_id, NamingProfile(naming), declarations),
            None,  # no metadata of its own: the source's (sources.py)
            reuse=reuse,
        )
        click.echo(f"Service {service_id} added (SP {federated_id}, from a metadata source).")
        return
    if metadata is not None:
        settings, registry = open_registry(config_path)
        xml = read_source(metadata, allow_loopback=settings.peers_on_loopback)
        entity_id, url = sp_entity_id(xml), given_url(metadata)
        registry.add_service(
            Service(service_id, name, entity_id, chain_id, NamingProfile(naming), declarations),
            xml,
            reuse=reuse,
            url=url,
        )
        click.echo(f"Service {service_id} added (SP {entity_id}).")
        say_refreshed(url, "sp")
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
    registry.add_service(service, None, reuse=reuse)
    click.echo(f"Service {service_id} added (OpenID Connect client).")
    click.echo(f"  issuer:        {settings.issuer}")
    click.echo(f"  client_id:     {service_id}")
    if secret is not None:
        click.echo(f"  client_secret: {secret}")
        click.echo("  The secret is shown this once; the broker keeps only its hash.")


publisher_group.add_command(publisher_update)

publisher_group.add_command(publisher_list)
publisher_group.add_command(publisher_organisations)
publisher_group.add_command(publisher_remove)
publisher_group.add_command(publisher_remove_organisation)
