"""OpenID Connect logout registration on the command line: the options `publisher add` takes for
it and `publisher update`, which changes them (and the redirect URIs) of a registered client,
loads a SAML service's metadata again (`--saml-metadata`, broker/cli/metadata_update.py), or
sets a SAML service's assertion encryption (`--assertion-encryption auto|off`).

The checks are `logout_problems` and `redirect_uri_problem`, the same the portal and the registry
import use; a refused update changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from broker.cli.metadata_update import Registered, update_given
from broker.cli.options import config_option, open_registry, reports_errors, who
from broker.core.model import AssertionEncryption, Protocol, Service
from broker.oidc.registration import InvalidRegistration, logout_problems, registration_problems
from broker.registry import SqlRegistry
from broker.saml.encryption_summary import REFUSED, assertions_received

F = TypeVar("F", bound=Callable[..., Any])


def logout_options(command: F) -> F:
    """--oidc-post-logout-uri (repeat), --oidc-backchannel-logout-uri and
    --oidc-backchannel-session-required, for `publisher add`."""
    command = click.option(
        "--oidc-backchannel-session-required",
        "backchannel_session_required",
        is_flag=True,
        help="the client needs `sid` in every logout token",
    )(command)
    command = click.option(
        "--oidc-backchannel-logout-uri",
        "backchannel_logout_uri",
        default=None,
        help="where the broker POSTs a logout token when the student logs out (Back-Channel"
        " Logout 1.0)",
    )(command)
    return click.option(
        "--oidc-post-logout-uri",
        "post_logout_uris",
        multiple=True,
        help="where end_session may send the browser back to, exact (repeat for more)",
    )(command)


def saml_refuses_logout_options(
    post_logout_uris: tuple[str, ...], backchannel_logout_uri: str | None, session_required: bool
) -> None:
    if post_logout_uris or backchannel_logout_uri is not None or session_required:
        raise click.UsageError(
            "--oidc-post-logout-uri, --oidc-backchannel-logout-uri and "
            "--oidc-backchannel-session-required go with --oidc-redirect-uri"
        )


@click.command("update")
@config_option
@click.option("--id", "service_id", required=True)
@click.option(
    "--saml-metadata",
    "metadata",
    default=None,
    help="file or URL: a SAML service's new metadata (same entity id)",
)
@click.option(
    "--oidc-redirect-uri",
    "redirect_uris",
    multiple=True,
    help="replace the redirect URIs with these (repeat)",
)
@click.option(
    "--oidc-post-logout-uri",
    "post_logout_uris",
    multiple=True,
    help="replace the post-logout redirect URIs with these (repeat)",
)
@click.option(
    "--oidc-no-post-logout-uris", "clear_post_logout", is_flag=True, help="remove them all"
)
@click.option(
    "--oidc-backchannel-logout-uri",
    "backchannel_logout_uri",
    default=None,
    help="the back-channel logout URI (an empty value removes it)",
)
@click.option(
    "--oidc-backchannel-session-required/--oidc-backchannel-session-optional",
    "session_required",
    default=None,
    help="whether the client needs `sid` in every logout token",
)
@click.option(
    "--assertion-encryption",
    "assertion_encryption",
    type=click.Choice([setting.value for setting in AssertionEncryption]),
    default=None,
    help="a SAML service's assertions: auto (encrypted when its metadata publishes an "
    "encryption key) or off (signed, never encrypted)",
)
@reports_errors
def publisher_update(
    config_path: Path,
    service_id: str,
    metadata: str | None,
    redirect_uris: tuple[str, ...],
    post_logout_uris: tuple[str, ...],
    clear_post_logout: bool,
    backchannel_logout_uri: str | None,
    session_required: bool | None,
    assertion_encryption: str | None,
) -> None:
    """Load a SAML service's metadata again (--saml-metadata), set its assertion encryption
    (--assertion-encryption), or change an OpenID Connect client's redirect and logout URIs;
    what is not given stays."""
    oidc_given = bool(
        redirect_uris
        or post_logout_uris
        or clear_post_logout
        or backchannel_logout_uri is not None
        or session_required is not None
    )
    if metadata is not None and oidc_given:
        raise click.UsageError("--saml-metadata and the --oidc-* options exclude")
    if assertion_encryption is not None and (oidc_given or metadata is not None):
        # One change per run: a refused metadata update then never leaves the switch changed.
        raise click.UsageError(
            "--assertion-encryption goes alone (set it first, then load the metadata)"
        )
    if post_logout_uris and clear_post_logout:
        raise click.UsageError("--oidc-post-logout-uri and --oidc-no-post-logout-uris exclude")
    settings, registry = open_registry(config_path)
    # Unapproved services too: a publisher may roll its certificate while it awaits approval.
    found = registry.any_service(service_id)
    if found is None:
        raise click.ClickException(f"no service with id {service_id!r}")
    if (metadata is not None or assertion_encryption is not None) and (
        found.protocol is not Protocol.SAML
    ):
        raise click.ClickException(
            f"Service {service_id} is an OpenID Connect client, not SAML: it has no metadata "
            "and no assertions (the --oidc-* options change it)"
        )
    if assertion_encryption is not None:
        set_assertion_encryption(registry, found, AssertionEncryption(assertion_encryption))
        return
    if metadata is not None:
        entry = Registered(
            f"Service {service_id}",
            service_id,
            found.entity_id,
            "sp",
            encrypting=found.assertion_encryption is AssertionEncryption.AUTO,
        )
        update_given(settings, registry, entry, metadata)
        return
    service = found  # a client in review too (one its publisher registered in the portal)
    if service.oidc is None:
        if found.protocol is Protocol.SAML:
            raise click.ClickException(
                f"Service {service_id} is a SAML service: the --oidc-* options change OpenID "
                "Connect clients (--saml-metadata loads its metadata again)"
            )
        raise click.ClickException(f"no OpenID Connect client with id {service_id!r}")
    client = service.oidc
    if redirect_uris:
        client = replace(client, redirect_uris=redirect_uris)
    if post_logout_uris or clear_post_logout:
        client = replace(client, post_logout_redirect_uris=post_logout_uris)
    if backchannel_logout_uri is not None:
        client = replace(client, backchannel_logout_uri=backchannel_logout_uri or None)
    if session_required is not None:
        client = replace(client, backchannel_logout_session_required=session_required)
    problems = registration_problems(
        client.redirect_uris, client.auth_method, client.jwks_uri, client.id_token_alg
    ) + logout_problems(client.post_logout_redirect_uris, client.backchannel_logout_uri)
    if problems:
        raise InvalidRegistration("; ".join(problem for _, problem in problems))
    if client == service.oidc:
        click.echo(f"Service {service_id}: nothing changed.")
        return
    registry.update_oidc_client(service_id, client)
    click.echo(f"Service {service_id} updated (OpenID Connect client).")
    for uri in client.post_logout_redirect_uris:
        click.echo(f"  post-logout redirect URI: {uri}")
    if client.backchannel_logout_uri:
        required = " (sid required)" if client.backchannel_logout_session_required else ""
        click.echo(f"  back-channel logout URI:  {client.backchannel_logout_uri}{required}")


def set_assertion_encryption(
    registry: SqlRegistry, service: Service, setting: AssertionEncryption
) -> None:
    """Write the switch and say, in one line, what the service's logins now send it. Back to
    `auto` is refused, changing nothing, while the metadata in force publishes a key the broker
    cannot encrypt for: every login of the service would be refused (as such metadata is at
    registration). The metadata is checked in the write's transaction, under the service row's
    lock (`refuse`): a metadata change cannot come between the check and the write."""

    def refuse(metadata: str | None) -> None:
        would = assertions_received(service.entity_id, metadata, setting)
        if would.startswith(REFUSED):
            raise click.ClickException(
                f"Service {service.id}: assertion encryption stays "
                f"{service.assertion_encryption.value}: with {setting.value} its logins would "
                f"be {would}; nothing changed"
            )

    changed = registry.set_assertion_encryption(service.id, setting, who(), refuse=refuse)
    metadata = registry.service_metadata(approved_only=False).get(service.entity_id)
    now = assertions_received(service.entity_id, metadata, setting)
    if not changed:
        click.echo(
            f"Service {service.id}: assertion encryption is {setting.value} already; "
            f"nothing changed (assertions: {now})."
        )
        return
    click.echo(f"Service {service.id}: assertion encryption {setting.value}; assertions: {now}.")
