"""The demo's OpenID Connect publisher: registered once as a client, its secret kept in the demo
folder (the registry keeps only the hash, so the demo cannot read it back from there).

Removed from the demo's registry (`publisher remove woordwijs`), it is registered again at the
next start under its own id, as the operator's `--reuse-removed-id` would (registry/id_reuse.py):
it is the same demo client, of no publisher organisation, and its pseudonyms come back. Were the
id since given to an organisation's service, the demo refuses to start and says why."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from broker.config import Settings
from broker.core.errors import ConfigurationError
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.demo.publisher_rp import PublisherRpSettings
from broker.oidc.registration import new_client
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
        "Om de leerling bij de voornaam te begroeten.",
        purpose_en="To greet the student by first name.",
    ),
    Declaration(
        "groups",
        "Om de opdrachten van de klas van de leerling te tonen.",
        purpose_en="To show the assignments of the student's class.",
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


def _register_logout(registry: SqlRegistry, base_url: str) -> None:
    """A demo folder made before logout existed: Woordwijs gets its logout URIs now."""
    service = registry.service(OIDC_PUBLISHER_ID)
    if service is None or service.oidc is None or service.oidc.backchannel_logout_uri:
        return
    registry.update_oidc_client(
        OIDC_PUBLISHER_ID, replace(service.oidc, **demo_logout_registration(base_url))
    )


def oidc_publisher(
    directory: Path, port: int, settings: Settings, registry: SqlRegistry, school_ids: list[str]
) -> PublisherRpSettings:
    base_url = f"http://localhost:{port}"
    secret_file = directory / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret"
    if registry.service(OIDC_PUBLISHER_ID) is None:
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
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.unlink(missing_ok=True)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret or "")
        try:
            registry.add_service(service, None, reuse=IdReuse.SAME_PUBLISHER)
        except ServiceIdUsedBefore as refused:
            raise ConfigurationError(
                f"the demo's OIDC publisher {OIDC_PUBLISHER_ID!r} cannot be registered again: "
                f"{refused.why}; start the demo in a new folder (--dir)"
            ) from None
        for school_id in school_ids:
            registry.set_policy(school_id, OIDC_PUBLISHER_ID, RELEASED, "demo")
    _register_logout(registry, base_url)
    return PublisherRpSettings(
        base_url=base_url,
        name=OIDC_PUBLISHER_NAME,
        issuer=settings.issuer,
        client_id=OIDC_PUBLISHER_ID,
        client_secret=secret_file.read_text(encoding="utf-8").strip(),
        scope="openid profile groups",
    )
