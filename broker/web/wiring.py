"""The composition root: one `Broker` holding every part a request needs, built once per app, and
`broker()`, the way a request reaches it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app

from broker.config import Settings
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeySource
from broker.core.model import Protocol
from broker.core.ports import KeyValueStore, StoreOp
from broker.keys.live import LiveKeySet
from broker.login.flow import LoginFlow
from broker.login.logout import SingleLogout
from broker.login.logout_start import LogoutStart
from broker.login.participants import SessionServiceBook
from broker.login.receipting import Receipting
from broker.login.replay import ReplayGuard, new_history_epochs
from broker.login.school_logout import SchoolBackChannelLogout
from broker.login.school_sessions import SchoolSessionIndex
from broker.oidc.back import OidcBack
from broker.oidc.backchannel import BackChannelLogout, ServerPost
from broker.oidc.grants import new_history_since
from broker.oidc.logout_channel import (
    OidcSchoolChannel,
    OidcServiceChannel,
    token_revocations,
)
from broker.oidc.provider import OidcProvider
from broker.pseudonym_key_file import PseudonymKeyFile
from broker.registry import SqlRegistry
from broker.registry.cached import CachedRegistryReader
from broker.registry.database import StatementTimeouts
from broker.registry.receipts import SqlReceiptBook
from broker.saml.authn_request import AuthnRequestReader
from broker.saml.back import SamlBack
from broker.saml.entities import SamlEntities
from broker.saml.front import SamlFront
from broker.saml.logout import SamlSchoolLogout, SamlServiceLogout
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME
from broker.store import open_store
from broker.web.metrics import CountingStore, subject_scope_spelled_otherwise

# A logout run (and the answers it waits for) lives this long: the student's way through the
# propagation page, the school and back.
LOGOUT_RUN_SECONDS = 600


@dataclass(frozen=True)
class Broker:
    """`registry` is the SQL registry (reads and administrators' writes); `view` is this
    worker's cached view of it, which everything on the login path reads."""

    settings: Settings
    registry: SqlRegistry
    view: CachedRegistryReader
    store: KeyValueStore
    flow: LoginFlow
    receipts: SqlReceiptBook
    receipting: Receipting
    # The services of each SSO session (notice marks, logout handles) and logout runs.
    session_services: SessionServiceBook
    logout: SingleLogout
    # Every logout run starts here: the batch that ends the session and files the run.
    logout_start: LogoutStart
    # A school's OpenID provider ending a session by back channel (login/school_logout.py).
    school_logout: SchoolBackChannelLogout
    saml_service_logout: SamlServiceLogout
    saml_school_logout: SamlSchoolLogout
    replay: ReplayGuard
    saml_entities: SamlEntities
    # The SAML front: AuthnRequests in, Responses out.
    saml_requests: AuthnRequestReader
    saml_front: SamlFront
    saml_back: SamlBack
    oidc_back: OidcBack
    # None on an instance made before OIDC (no keys in its configuration): OIDC routes say so.
    oidc_front: OidcProvider | None
    # The signing key set as this worker sees it (broker/keys/live.py): SAML and OIDC sign with
    # its current key and publish every key in it.
    keys: KeySource


def broker() -> Broker:
    """The Broker of the app serving this request (built once by create_app)."""
    value: Broker = current_app.extensions["ketenbroker"]
    return value


def oidc_front() -> OidcProvider:
    provider = broker().oidc_front
    if provider is None:
        raise ConfigurationError("OpenID Connect keys are not configured")
    return provider


def build_broker(
    settings: Settings,
    *,
    saml_crypto_backend: str = CRYPTO_BACKEND_NAME,
    store: KeyValueStore | None = None,
    keys: KeySource | None = None,
) -> Broker:
    """`store`: an already open login store to share (tests that play several workers in one
    process with `memory://`); by default the one `settings.store_url` names. `keys`: the
    signing key set (tests pass one on a clock of their own); by default the one on disk."""
    keys = LiveKeySet(settings) if keys is None else keys
    # Every PostgreSQL call of a request is bounded (docs/operations.md, "Failure behaviour").
    registry = SqlRegistry(
        settings.registry_url,
        seal=settings.secret_seal(),
        timeouts=StatementTimeouts(
            request=settings.registry_statement_timeout_seconds,
            portal_read=settings.registry_portal_statement_timeout_seconds,
        ),
    )
    view = CachedRegistryReader(registry)
    # Every part shares the one store; its failures are counted for /metrics on the way out.
    if store is None:
        # A Redis that may have been rolled back (failover, restart from a file) moves every
        # replay bucket's epoch to now and refuses the OIDC codes issued before: docs/security.md,
        # the store epoch rule.
        skew = settings.saml.clock_skew_seconds
        store = open_store(
            settings.store_url,
            on_new_history=lambda: _new_history(time.time(), skew),
        )
    store = CountingStore(store)
    entities = SamlEntities(settings, view, crypto_backend=saml_crypto_backend, keys=keys)
    keys_file = settings.pseudonym_keys_file
    # SSO sessions filed under an OIDC school's sid, for its back-channel logout.
    school_sessions = SchoolSessionIndex(
        store, settings.secret_key, session_ttl=settings.sso_session_seconds
    )
    flow = LoginFlow(
        view,
        store,
        # From a file, a key version added by a rotation is read without a restart.
        PseudonymKeyFile(keys_file, settings.pseudonym_keys)
        if keys_file
        else settings.pseudonym_keys,
        login_ttl=settings.login_ttl_seconds,
        sso_ttl=settings.sso_session_seconds,
        assurance=settings.assurance,
        clock_skew=settings.saml.clock_skew_seconds,
        school_sessions=school_sessions,
        scope_spelling_counted=subject_scope_spelled_otherwise,
    )
    receipts = registry.receipt_book(settings.receipts.keys)
    session_services = SessionServiceBook(store, session_ttl=settings.sso_session_seconds)
    logout = SingleLogout(
        store,
        session_services,
        run_ttl=LOGOUT_RUN_SECONDS,
        wait_seconds=settings.logout_wait_seconds,
    )
    # SAML services with a SOAP SLO endpoint are told under the OIDC back channel's rules.
    soap = ServerPost(allow_loopback=settings.peers_on_loopback)
    saml_service_logout = SamlServiceLogout(settings, view, entities, logout, soap)
    saml_school_logout = SamlSchoolLogout(settings, view, entities, logout)
    logout.register(Protocol.SAML.value, saml_service_logout, saml_school_logout)
    oidc_front = OidcProvider(settings, view, store, keys) if settings.oidc else None
    oidc_back = OidcBack(settings)
    register_oidc_logout(logout, settings, view, oidc_front, oidc_back)
    school_logout = SchoolBackChannelLogout(
        flow,
        school_sessions,
        logout,
        wait_seconds=settings.logout_wait_seconds,
    )
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
            # Per service, not per pair: "" for the school.
            purposes_since=lambda service_id: view.per_pair(
                "purposes_since", "", service_id, lambda: registry.purposes_since(service_id)
            ),
            notice_mode=lambda school_id, service_id: view.per_pair(
                "notice_mode",
                school_id,
                service_id,
                lambda: receipts.notice_mode(school_id, service_id),
            ),
        ),
        session_services=session_services,
        logout=logout,
        logout_start=LogoutStart(logout, flow),
        school_logout=school_logout,
        saml_service_logout=saml_service_logout,
        saml_school_logout=saml_school_logout,
        replay=ReplayGuard(store, skew=settings.saml.clock_skew_seconds),
        saml_entities=entities,
        saml_requests=AuthnRequestReader(settings, view, entities),
        saml_front=SamlFront(settings, entities),
        saml_back=SamlBack(entities, view),
        oidc_front=oidc_front,
        keys=keys,
        oidc_back=oidc_back,
    )


def register_oidc_logout(
    logout: SingleLogout,
    settings: Settings,
    view: CachedRegistryReader,
    oidc_front: OidcProvider | None,
    oidc_back: OidcBack,
) -> None:
    """OIDC platforms hear of a logout by back channel; OIDC schools by end_session."""
    sender = None
    if oidc_front is not None:
        sender = BackChannelLogout(
            oidc_front.logout_tokens, allow_loopback=settings.peers_on_loopback
        )
    logout.register(
        Protocol.OIDC.value,
        OidcServiceChannel(view, sender),
        OidcSchoolChannel(settings, view, oidc_back),
        token_revocations(oidc_front.vault) if oidc_front is not None else None,
    )


def _new_history(now: float, skew: float) -> list[StoreOp]:
    """The writes for a Redis that may have been rolled back: replay epochs and codes."""
    return [*new_history_epochs(now, skew), new_history_since(now)]
