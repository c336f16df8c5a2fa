"""The composition root: one `Broker` holding every part a request needs, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import Settings
from broker.core.ports import KeyValueStore, RegistryReader
from broker.login.flow import LoginFlow
from broker.login.receipting import Receipting
from broker.login.replay import ReplayGuard
from broker.oidc.back import OidcBack
from broker.oidc.provider import OidcProvider
from broker.registry import SqlRegistry
from broker.registry.cached import CachedRegistryReader
from broker.registry.receipts import SqlReceiptBook
from broker.saml.back import SamlBack
from broker.saml.entities import SamlEntities
from broker.saml.front import SamlFront
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME
from broker.store import open_store
from broker.web.metrics import CountingStore


@dataclass(frozen=True)
class Broker:
    """`registry` is the SQL registry (reads and administrators' writes); `view` is this
    worker's cached view of it, which everything on the login path reads."""

    settings: Settings
    registry: SqlRegistry
    view: RegistryReader
    store: KeyValueStore
    flow: LoginFlow
    receipts: SqlReceiptBook
    receipting: Receipting
    replay: ReplayGuard
    saml_entities: SamlEntities
    saml_front: SamlFront
    saml_back: SamlBack
    oidc_back: OidcBack
    # None on an instance made before OIDC (no keys in its configuration): OIDC routes say so.
    oidc_front: OidcProvider | None


def build_broker(
    settings: Settings,
    *,
    saml_crypto_backend: str = CRYPTO_BACKEND_NAME,
    store: KeyValueStore | None = None,
) -> Broker:
    """`store`: an already open login store to share (tests that play several workers in one
    process with `memory://`); by default the one `settings.store_url` names."""
    registry = SqlRegistry(settings.registry_url)
    view = CachedRegistryReader(registry)
    # Every part shares the one store; its failures are counted for /metrics on the way out.
    store = CountingStore(open_store(settings.store_url) if store is None else store)
    entities = SamlEntities(settings, view, crypto_backend=saml_crypto_backend)
    flow = LoginFlow(
        view,
        store,
        settings.pseudonym_keys,
        login_ttl=settings.login_ttl_seconds,
        sso_ttl=settings.sso_session_seconds,
        assurance=settings.assurance,
        clock_skew=settings.saml.clock_skew_seconds,
    )
    receipts = registry.receipt_book(settings.receipts.keys)
    return Broker(
        settings=settings,
        registry=registry,
        view=view,
        store=store,
        flow=flow,
        receipts=receipts,
        receipting=Receipting(
            receipts,
            settings.receipts.keys,
            store,
            pending_ttl=settings.login_ttl_seconds,
            session_ttl=max(settings.sso_session_seconds, 1),
            notice_mode=lambda school_id, service_id: view.per_pair(
                "notice_mode",
                school_id,
                service_id,
                lambda: receipts.notice_mode(school_id, service_id),
            ),
        ),
        replay=ReplayGuard(store, skew=settings.saml.clock_skew_seconds),
        saml_entities=entities,
        saml_front=SamlFront(settings, view, entities),
        saml_back=SamlBack(entities, view),
        oidc_front=OidcProvider(settings, view, store) if settings.oidc else None,
        oidc_back=OidcBack(settings),
    )
