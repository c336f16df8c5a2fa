"""pysaml2's two faces of the broker, built from our Settings and the registry's metadata.

pysaml2's configuration dict is made here and never leaves this module. The Server (front, IdP
towards publishers) and Saml2Client (back, SP towards schools) are rebuilt when the registry's
generation changes, so a school or publisher added while the broker runs works on its next login.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, sigver
from saml2.client import Saml2Client
from saml2.config import Config, IdPConfig, SPConfig
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_UNSPECIFIED
from saml2.server import Server

from broker.config import Settings
from broker.core.ports import RegistryReader
from broker.saml import schema
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SSO_PATH = "/saml/idp/sso"
ACS_PATH = "/saml/sp/acs"
IDP_METADATA_PATH = "/saml/idp/metadata"
SP_METADATA_PATH = "/saml/sp/metadata"

# pysaml2 logs whole messages (assertions with names in them) at debug and info level, and some
# at error level. Logs must never carry personal data, so its loggers only pass critical lines;
# the broker logs its own reason codes instead.
logging.getLogger("saml2").setLevel(logging.CRITICAL)


class _NoIdentityMemory:
    """pysaml2's Saml2Client files every school response's NameID and attributes in a
    process-local cache (for its own logout bookkeeping). The broker keeps no personal data at
    rest, in memory neither, so that cache is switched off."""

    def add_information_about_person(self, session_info: Any) -> None:
        return None


class _NoAssertionMemory:
    """pysaml2's Server remembers every assertion it issues in a process-local dict; the broker
    keeps no personal data and must not grow without bound, so that memory is switched off."""

    def store_assertion(self, assertion: Any, to_sign: Any) -> None:
        return None

    def store_authn_statement(self, *args: Any, **kwargs: Any) -> None:
        return None


def _common(settings: Settings, metadata: list[str], crypto_backend: str) -> dict[str, Any]:
    org = settings.organization
    common: dict[str, Any] = {
        "crypto_backend": crypto_backend,
        "key_file": str(settings.saml.signing_key),
        "cert_file": str(settings.saml.signing_cert),
        "metadata": {"inline": metadata},
        "accepted_time_diff": settings.saml.clock_skew_seconds,
        "organization": {
            "name": org.name,
            "display_name": org.name,
            "url": org.url or settings.base_url,
        },
    }
    if org.contact_email:
        common["contact_person"] = [
            {"contact_type": "technical", "email_address": org.contact_email}
        ]
    return common


def idp_config(
    settings: Settings, service_metadata: list[str], crypto_backend: str = CRYPTO_BACKEND_NAME
) -> IdPConfig:
    sso = settings.url(SSO_PATH)
    conf: dict[str, Any] = _common(settings, service_metadata, crypto_backend) | {
        "entityid": settings.idp_entity_id,
        "service": {
            "idp": {
                "name": settings.organization.name,
                "endpoints": {
                    "single_sign_on_service": [
                        (sso, BINDING_HTTP_REDIRECT),
                        (sso, BINDING_HTTP_POST),
                    ]
                },
                "name_id_format": [
                    NAMEID_FORMAT_PERSISTENT,
                    NAMEID_FORMAT_UNSPECIFIED,
                    NAMEID_FORMAT_TRANSIENT,
                ],
                "scope": [settings.scope],
                # Signed requests are required per service (its metadata), checked in front.py.
                "want_authn_requests_signed": False,
                # pysaml2 reads the algorithms from the service block; elsewhere it means SHA-1.
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
            }
        },
    }
    config = IdPConfig()
    config.load(conf)
    return config


def sp_config(
    settings: Settings, school_metadata: list[str], crypto_backend: str = CRYPTO_BACKEND_NAME
) -> SPConfig:
    conf: dict[str, Any] = _common(settings, school_metadata, crypto_backend) | {
        "entityid": settings.sp_entity_id,
        "service": {
            "sp": {
                "name": settings.organization.name,
                "endpoints": {
                    "assertion_consumer_service": [(settings.url(ACS_PATH), BINDING_HTTP_POST)]
                },
                "authn_requests_signed": True,
                "want_assertions_or_response_signed": True,
                "want_response_signed": False,
                "want_assertions_signed": False,
                "allow_unsolicited": False,
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "only_use_keys_in_metadata": True,
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
            }
        },
    }
    config = SPConfig()
    config.load(conf)
    return config


def signed_metadata(config: Config) -> str:
    """Our own metadata, signed with the broker's key."""
    # Looked up at call time: enable_inprocess_crypto() rebinds sigver.security_context.
    enable_inprocess_crypto()
    descriptor = entity_descriptor(config)
    _, signed = sign_entity_descriptor(
        descriptor, None, sigver.security_context(config), sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    return str(signed)


@dataclass(frozen=True)
class _Built:
    generation: int
    server: Server
    client: Saml2Client


class SamlEntities:
    """The current pysaml2 Server and Saml2Client; rebuilt only when the registry changed."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryReader,
        *,
        crypto_backend: str = CRYPTO_BACKEND_NAME,
    ) -> None:
        """`crypto_backend` stays in process in every deployment; the benchmark passes pysaml2's
        stock "xmlsec1" to measure what the in-process route saves."""
        enable_inprocess_crypto()
        schema.install()
        self.crypto_backend = crypto_backend
        self.settings = settings
        self.registry = registry
        self._lock = threading.Lock()
        self._built: _Built | None = None
        self._metadata: dict[str, str] = {}

    def _current(self) -> _Built:
        # The registry here is the worker's cached view (broker/registry/cached.py): asking for
        # the generation costs nothing, and a lookup that found a new entity already moved it on.
        built = self._built
        generation = self.registry.generation()
        if built is not None and built.generation == generation:
            return built
        with self._lock:
            if self._built is None or self._built.generation != generation:
                server = Server(
                    config=idp_config(
                        self.settings,
                        list(self.registry.service_metadata().values()),
                        self.crypto_backend,
                    )
                )
                server.session_db = _NoAssertionMemory()
                client = Saml2Client(
                    config=sp_config(
                        self.settings,
                        list(self.registry.school_metadata().values()),
                        self.crypto_backend,
                    )
                )
                client.users = _NoIdentityMemory()
                self._built = _Built(generation, server, client)
            return self._built

    @property
    def server(self) -> Server:
        return self._current().server

    @property
    def client(self) -> Saml2Client:
        return self._current().client

    def idp_metadata(self) -> str:
        # Our own metadata depends only on settings: sign it once per process.
        if "idp" not in self._metadata:
            self._metadata["idp"] = signed_metadata(idp_config(self.settings, []))
        return self._metadata["idp"]

    def sp_metadata(self) -> str:
        if "sp" not in self._metadata:
            self._metadata["sp"] = signed_metadata(sp_config(self.settings, []))
        return self._metadata["sp"]
