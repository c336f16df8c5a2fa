"""The demo's OpenID Connect publisher: registered once as a client, its secret kept in the demo
folder (the registry keeps only the hash, so the demo cannot read it back from there).

Removed from the demo's registry (`publisher remove woordwijs`), it is registered again at the
next start under its own id, as the operator's `--reuse-removed-id` would (registry/id_reuse.py):
it is the same demo client, of no publisher organisation, and its pseudonyms come back. Were the
id since given to an organisation's service (held now, or removed again), or is the service
under it not the demo's own (of an organisation, or a client whose secret is not the one the
demo keeps), the demo refuses to start, says why, and changes nothing: no registration, no
secret file, no logout URIs of someone else's client."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from broker.config import Settings
from broker.core.errors import ConfigurationError
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.demo.publisher_rp import PublisherRpSettings
from broker.oidc.registration import new_client, secret_matches
from broker.registry import SqlRegistry
from broker.registry.errors import ServiceIdUsedBefore
from broker.registry.id_reuse import IdReuse

OIDC_PUBLISHER_ID = "woordwijs"
OIDC_PUBLISHER_NAME = "Woordwijs (demo OIDC publisher)"
OIDC_PUBLISHER_CHAIN = "leermiddelen"
OIDC_PUBLISHER_PORT_OFFSET = 6
DECLARATIONS = (
    Declaration(
        "given_name",
        "Om je bij je voornaam te begroeten.",
        purpose_en="To greet you by your first name.",
    ),
    Declaration(
        "groups",
        "Om de opdrachten van je klas te tonen.",
        purpose_en="To show the assignments of your class.",
    ),
)
RELEASED = frozenset({"given_name"})


def demo_logout_registration(base_url: str) -> dict[str, Any]:
    """The logout URIs of a demo OIDC publisher (broker/demo/publisher_rp_logout.py)."""
    return {
        "post_logout_redirect_uris": (f"{base_url}/logged-out",),
        "backchannel_logout_uri": f"{base_url}/backchannel-logout",
        "backchannel_logout_session_required": True,
    }


def _register_logout(registry: SqlRegistry, service: Service, base_url: str) -> None:
    """A demo folder made before logout existed: Woordwijs gets its logout URIs now."""
    if service.oidc is None or service.oidc.backchannel_logout_uri:
        return
    registry.update_oidc_client(
        OIDC_PUBLISHER_ID, replace(service.oidc, **demo_logout_registration(base_url))
    )


def _refuse_unless_demos(service: Service, secret_file: Path) -> None:
    """The service under the demo's id is the demo's own only when it is of no publisher
    organisation and its client secret is the one the demo wrote into its folder when it
    registered it: anything else (an organisation's service, a client the operator registered
    under the id) the demo must not change."""
    kept = secret_file.read_text(encoding="utf-8").strip() if secret_file.is_file() else ""
    if service.publisher_id is not None:
        why = f"it is a service of publisher organisation {service.publisher_id}"
    elif service.oidc is None or not kept or not secret_matches(kept, service.oidc):
        why = f"its client secret is not the one the demo keeps in {secret_file}"
    else:
        return
    raise ConfigurationError(
        f"the registry's service {OIDC_PUBLISHER_ID!r} is not the demo's OIDC publisher: {why}; "
        "the demo changes nothing of it: start the demo in a new folder (--dir)"
    )


def _register(
    registry: SqlRegistry, base_url: str, secret_file: Path, school_ids: list[str]
) -> None:
    """Register the demo's client, then keep its secret in the demo folder: a refusal (its id
    given to an organisation's service since) writes no file."""
    client, secret = new_client(
        (f"{base_url}/callback",),
        ClientAuthMethod.SECRET_BASIC,
        refresh_tokens=True,
        **demo_logout_registration(base_url),
    )
    service = Service(
        OIDC_PUBLISHER_ID,
        OIDC_PUBLISHER_NAME,
        OIDC_PUBLISHER_ID,
        OIDC_PUBLISHER_CHAIN,
        declarations=DECLARATIONS,
        protocol=Protocol.OIDC,
        oidc=client,
    )
    try:
        registry.add_service(service, None, reuse=IdReuse.SAME_PUBLISHER)
    except ServiceIdUsedBefore as refused:
        raise ConfigurationError(
            f"the demo's OIDC publisher {OIDC_PUBLISHER_ID!r} cannot be registered again: "
            f"{refused.why}; start the demo in a new folder (--dir)"
        ) from None
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    secret_file.unlink(missing_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret or "")
    for school_id in school_ids:
        registry.set_policy(school_id, OIDC_PUBLISHER_ID, RELEASED, "demo")


def oidc_publisher(
    directory: Path, port: int, settings: Settings, registry: SqlRegistry, school_ids: list[str]
) -> PublisherRpSettings:
    base_url = f"http://localhost:{port}"
    secret_file = directory / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret"
    held = registry.any_service(OIDC_PUBLISHER_ID)
    if held is None:
        _register(registry, base_url, secret_file, school_ids)
    else:
        _refuse_unless_demos(held, secret_file)
        _register_logout(registry, held, base_url)
    return PublisherRpSettings(
        base_url=base_url,
        name=OIDC_PUBLISHER_NAME,
        issuer=settings.issuer,
        client_id=OIDC_PUBLISHER_ID,
        client_secret=secret_file.read_text(encoding="utf-8").strip(),
        scope="openid profile groups",
    )
