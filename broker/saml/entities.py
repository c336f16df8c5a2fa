"""pysaml2's two faces of the broker, built from our Settings and the registry's metadata.

pysaml2's configuration dict is made here and never leaves this module. The Server (front, IdP
towards publishers) and Saml2Client (back, SP towards schools) are rebuilt when the registry's
generation changes, so a school or publisher added while the broker runs works on its next login.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import xmlsec
from cryptography.hazmat.primitives.asymmetric import rsa
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, md, sigver
from saml2.client import Saml2Client
from saml2.config import Config, IdPConfig, SPConfig
from saml2.extension import algsupport, mdui
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_UNSPECIFIED
from saml2.server import Server

from broker.config import Organization, Settings
from broker.core.catalogue import CATALOGUE
from broker.core.errors import ConfigurationError, UnknownService
from broker.core.key_schedule import KeyChoice, KeyFiles, KeyGeneration, KeySource
from broker.core.model import AssertionEncryption
from broker.core.ports import RegistryReader
from broker.saml import schema
from broker.saml.metadata_index import IndexedIdPConfig, IndexedSPConfig
from broker.saml.publisher_encryption import Encryption, encryption_for, offers_in_metadata
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto, rsa_key, signing_key
from broker.saml.xmlsig_enc import AES128_GCM, AES256_GCM, RSA_OAEP, RSA_OAEP_MGF1P
from broker.saml.xmlsig_policy import DIGEST_METHODS, RSA_SHA256, SHA256, SIGNING_METHODS

SSO_PATH = "/saml/idp/sso"
ACS_PATH = "/saml/sp/acs"
# Single Logout: the IdP's towards publishers, the SP's towards schools (saml/logout.py).
IDP_SLO_PATH = "/saml/idp/slo"
SP_SLO_PATH = "/saml/sp/slo"
# A school IdP's LogoutRequest server to server (SOAP binding): only in the SP metadata.
SP_SOAP_SLO_PATH = "/saml/sp/slo/soap"
IDP_METADATA_PATH = "/saml/idp/metadata"
SP_METADATA_PATH = "/saml/sp/metadata"
# Metadata Query Protocol (draft-young-md-query): GET <MDQ_PATH>/<identifier>.
MDQ_PATH = "/metadata/entities"


def sha1_identifier(entity_id: str) -> str:
    """The MDQ `{sha1}` form of an entity id: SHA-1 as an identifier, not as a security
    function (the protocol fixes it)."""
    return "{sha1}" + hashlib.sha1(entity_id.encode(), usedforsecurity=False).hexdigest()


# pysaml2 logs whole messages (assertions with names in them) at debug and info level, and some
# at error level. Logs must never carry personal data, so its loggers only pass critical lines;
# the broker logs its own reason codes instead.
logging.getLogger("saml2").setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)


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


def _configured_keys(settings: Settings) -> KeyChoice:
    """The configured key alone: for configs built outside a running broker (tests, bench)."""
    files = KeyFiles(settings.saml.signing_key, settings.saml.signing_cert)
    only = KeyGeneration(number=1, files=files, published_from=0.0, signing_from=0.0)
    return KeyChoice(only, (only,), math.inf)


def _key_entries(keys: KeyChoice) -> dict[str, Any]:
    """pysaml2's names for the keys: it signs with `key_file`, and publishes `cert_file` and
    `additional_cert_files` as signing KeyDescriptors (the next key before it signs, the
    previous one until everything it signed has expired)."""
    others = [str(g.files.saml_cert) for g in keys.published if g is not keys.signing]
    return {
        "key_file": str(keys.signing.files.saml_key),
        "cert_file": str(keys.signing.files.saml_cert),
        "additional_cert_files": others or None,
    }


def _common(
    settings: Settings, metadata: list[str], crypto_backend: str, keys: KeyChoice | None
) -> dict[str, Any]:
    org = settings.organization
    common: dict[str, Any] = {
        # validUntil of the broker's own metadata, in hours (pysaml2's unit).
        "valid_for": settings.metadata.valid_days * 24,
        "crypto_backend": crypto_backend,
        **_key_entries(keys or _configured_keys(settings)),
        "metadata": {"inline": metadata},
        "accepted_time_diff": settings.saml.clock_skew_seconds,
        "organization": {
            "name": org.name,
            "display_name": org.name,
            "url": org.url or settings.base_url,
        },
    }
    contacts = [
        {"contact_type": kind, "email_address": f"mailto:{email}"}
        for kind, email in (("technical", org.contact_email), ("support", org.support_email))
        if email
    ]
    if contacts:
        common["contact_person"] = contacts
    return common


def idp_config(
    settings: Settings,
    service_metadata: list[str],
    crypto_backend: str = CRYPTO_BACKEND_NAME,
    keys: KeyChoice | None = None,
) -> IdPConfig:
    sso = settings.url(SSO_PATH)
    conf: dict[str, Any] = _common(settings, service_metadata, crypto_backend, keys) | {
        "entityid": settings.idp_entity_id,
        "service": {
            "idp": {
                "name": settings.organization.name,
                "endpoints": {
                    "single_sign_on_service": [
                        (sso, BINDING_HTTP_REDIRECT),
                        (sso, BINDING_HTTP_POST),
                    ],
                    "single_logout_service": [
                        (settings.url(IDP_SLO_PATH), BINDING_HTTP_REDIRECT),
                        (settings.url(IDP_SLO_PATH), BINDING_HTTP_POST),
                    ],
                },
                "name_id_format": [
                    NAMEID_FORMAT_PERSISTENT,
                    NAMEID_FORMAT_UNSPECIFIED,
                    NAMEID_FORMAT_TRANSIENT,
                ],
                "scope": [settings.scope],
                # Signed requests are required per service (its metadata), checked on reading
                # each AuthnRequest (authn_request.py).
                "want_authn_requests_signed": False,
                # pysaml2 reads the algorithms from the service block; elsewhere it means SHA-1.
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
            }
        },
    }
    config = IndexedIdPConfig()
    config.load(conf)
    return config


def sp_config(
    settings: Settings,
    school_metadata: list[str],
    crypto_backend: str = CRYPTO_BACKEND_NAME,
    keys: KeyChoice | None = None,
) -> SPConfig:
    chosen = keys or _configured_keys(settings)
    conf: dict[str, Any] = _common(settings, school_metadata, crypto_backend, chosen) | {
        "entityid": settings.sp_entity_id,
        "service": {
            "sp": {
                "name": settings.organization.name,
                "endpoints": {
                    "assertion_consumer_service": [(settings.url(ACS_PATH), BINDING_HTTP_POST)],
                    "single_logout_service": [
                        (settings.url(SP_SLO_PATH), BINDING_HTTP_REDIRECT),
                        (settings.url(SP_SLO_PATH), BINDING_HTTP_POST),
                        (settings.url(SP_SOAP_SLO_PATH), BINDING_SOAP),
                    ],
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
    if settings.saml.accept_encrypted_assertions:
        # Published as encryption KeyDescriptors, and tried in turn to decrypt: a school that
        # encrypts for the next key, or still for the previous one, is understood either way.
        conf["encryption_keypairs"] = [
            {"key_file": str(g.files.saml_key), "cert_file": str(g.files.saml_cert)}
            for g in chosen.published
        ]
    config = IndexedSPConfig()
    config.load(conf)
    return config


def _requested_attributes(name: str) -> md.AttributeConsumingService:
    """Everything the broker can take from a school (the catalogue), none of it required: a
    school's IdP that reads this releases what the broker understands, nothing more."""
    requested = []
    for attribute in CATALOGUE.values():
        saml_name, name_format, friendly = attribute.saml_name("oid")
        requested.append(
            md.RequestedAttribute(
                name=saml_name, name_format=name_format, friendly_name=friendly, is_required="false"
            )
        )
    return md.AttributeConsumingService(
        index="0",
        is_default="true",
        service_name=[md.ServiceName(text=name, lang="en")],
        requested_attribute=requested,
    )


# What xmlsig_enc decrypts, announced with each encryption key so that an IdP that reads
# EncryptionMethod (Shibboleth does) picks AES-GCM and RSA-OAEP rather than its CBC default.
ENCRYPTION_METHODS = (AES256_GCM, AES128_GCM, RSA_OAEP_MGF1P, RSA_OAEP)


def _announce_encryption_methods(role: Any) -> None:
    for key_descriptor in role.key_descriptor or []:
        if key_descriptor.use == "encryption":
            key_descriptor.encryption_method = [
                md.EncryptionMethod(algorithm=algorithm) for algorithm in ENCRYPTION_METHODS
            ]


def _announce_signing_methods(role: Any) -> None:
    """What the broker's signature checks take (xmlsig_policy: the XML and the query signatures
    alike), in its order of preference, as the SAML V2.0 Metadata Profile for Algorithm Support
    says. SP software that signs by its peer's list signs with one of these: Shibboleth SP 3
    signs its SOAP LogoutResponse with RSA-SHA1 otherwise, which the broker refuses
    (tests/interop/test_shibboleth_sp.py)."""
    if role.extensions is None:
        role.extensions = md.Extensions()
    for digest in DIGEST_METHODS:
        role.extensions.add_extension_element(algsupport.DigestMethod(algorithm=digest))
    for signing in SIGNING_METHODS:
        role.extensions.add_extension_element(algsupport.SigningMethod(algorithm=signing))


UI_LANGUAGES = ("nl", "en")


def _ui_info(org: Organization) -> mdui.UIInfo:
    """How registries and discovery services show the broker (the MDUI profile): its display
    name in Dutch and English, and the configured information and privacy pages and logo. A URL
    is given for both languages: the same page serves either."""
    ui = mdui.UIInfo(
        display_name=[
            mdui.DisplayName(text=org.display_name(lang), lang=lang) for lang in UI_LANGUAGES
        ]
    )
    if org.logo is not None:
        ui.logo = [
            mdui.Logo(text=org.logo.url, width=str(org.logo.width), height=str(org.logo.height))
        ]
    if org.information_url:
        ui.information_url = [
            mdui.InformationURL(text=org.information_url, lang=lang) for lang in UI_LANGUAGES
        ]
    if org.privacy_statement_url:
        ui.privacy_statement_url = [
            mdui.PrivacyStatementURL(text=org.privacy_statement_url, lang=lang)
            for lang in UI_LANGUAGES
        ]
    return ui


def _roles(*found: Any) -> list[Any]:
    """The roles of a descriptor's role attributes (pysaml2 gives one object or a list of them,
    or None)."""
    roles: list[Any] = []
    for role in found:
        roles += role if isinstance(role, list) else [role] if role is not None else []
    return roles


def signed_metadata(config: Config, settings: Settings | None = None) -> str:
    """Our own metadata, signed with the broker's key; with `settings`, also its cache hint,
    its UIInfo (both roles) and (for the SP) the attributes the broker can ask of schools."""
    # Looked up at call time: enable_inprocess_crypto() rebinds sigver.security_context.
    enable_inprocess_crypto()
    descriptor = entity_descriptor(config)
    if settings is not None:
        descriptor.cache_duration = f"PT{settings.metadata.cache_duration_seconds}S"
        for role in _roles(descriptor.spsso_descriptor):
            role.attribute_consuming_service = [_requested_attributes(settings.organization.name)]
            _announce_encryption_methods(role)
    for role in _roles(descriptor.idpsso_descriptor, descriptor.spsso_descriptor):
        _announce_signing_methods(role)
        if settings is not None:
            role.extensions.add_extension_element(_ui_info(settings.organization))
    _, signed = sign_entity_descriptor(
        descriptor, None, sigver.security_context(config), sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    return str(signed)


class ParsedMetadata:
    """pysaml2's parsed form of each entity's metadata, kept between rebuilds.

    pysaml2 takes ~2.5 ms to parse one entity, so rebuilding a view of 5,000 registered
    entities from scratch takes over ten seconds, in every worker, with logins waiting. A refresh
    or a registration changes a few entities: only those are parsed again; the rest are reused
    (pysaml2 only reads them after loading). Only the entities of the latest build are kept.
    """

    def __init__(self) -> None:
        self._parsed: dict[str, InMemoryMetaData] = {}

    def load(self, config: Config, documents: Iterable[str]) -> None:
        """Put every document into `config`'s metadata store, parsing only the new ones."""
        kept: dict[str, InMemoryMetaData] = {}
        for xml in documents:
            key = hashlib.sha256(xml.encode()).hexdigest()
            # `is None`, not `or`: a parsed document without entities (all expired) is falsy.
            parsed = kept.get(key)
            if parsed is None:
                parsed = self._parsed.get(key)
            if parsed is None:
                parsed = InMemoryMetaData(config.attribute_converters, xml)
                parsed.load()
            kept[key] = parsed
            config.metadata.metadata[f"inline:{key}"] = parsed
        self._parsed = kept


@dataclass(frozen=True)
class _Built:
    generation: int
    keys: tuple[int, tuple[int, ...]]
    # The earliest validUntil of the federation metadata built in: past it, rebuild without it.
    expires_at: datetime | None
    server: Server
    client: Saml2Client


def _passed(moment: datetime | None) -> bool:
    return moment is not None and datetime.now(UTC) >= moment


# What the Redirect signing key is kept by: the key choice's state and the key file.
_KeyWanted = tuple[tuple[int, tuple[int, ...]], str]

# The broker's own metadata is signed again after this long, so its validUntil keeps moving.
RESIGN_SECONDS = 3600


class SamlEntities:
    """The current pysaml2 Server and Saml2Client; rebuilt only when the registry changed."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryReader,
        *,
        crypto_backend: str = CRYPTO_BACKEND_NAME,
        keys: KeySource | None = None,
    ) -> None:
        """`crypto_backend` stays in process in every deployment; the benchmark passes pysaml2's
        stock "xmlsec1" to measure what the in-process route saves."""
        enable_inprocess_crypto()
        schema.install()
        self.crypto_backend = crypto_backend
        self.settings = settings
        self.registry = registry
        self.keys: KeySource = _StaticKeys(_configured_keys(settings)) if keys is None else keys
        self._lock = threading.Lock()
        self._built: _Built | None = None
        self._metadata: dict[tuple[str, tuple[int, tuple[int, ...]]], tuple[float, str]] = {}
        self._services = ParsedMetadata()
        self._schools = ParsedMetadata()
        self._signing_key: tuple[_KeyWanted, rsa.RSAPrivateKey] | None = None

    def _current(self) -> _Built:
        # The registry here is the worker's cached view (broker/registry/cached.py): asking for
        # the generation costs nothing, and a lookup that found a new entity already moved it on.
        # The key choice too: at a key's switch moment every worker rebuilds with the new key.
        built = self._built
        generation = self.registry.generation()
        keys = self.keys.current()
        if (
            built is not None
            and built.generation == generation
            and built.keys == keys.state
            and not _passed(built.expires_at)
        ):
            return built
        with self._lock:
            built = self._built
            if (
                built is None
                or built.generation != generation
                or built.keys != keys.state
                or _passed(built.expires_at)
            ):
                if built is not None and _passed(built.expires_at):
                    log.warning(
                        "federation metadata expired: its entities are no longer trusted",
                        extra={"reason": "metadata_expired"},
                    )
                # Read before the metadata: a copy that expires in between is caught next time.
                expires_at = self.registry.metadata_expiry()
                idp = idp_config(self.settings, [], self.crypto_backend, keys)
                self._services.load(idp, self.registry.service_metadata().values())
                server = Server(config=idp)
                server.session_db = _NoAssertionMemory()
                sp = sp_config(self.settings, [], self.crypto_backend, keys)
                self._schools.load(sp, self.registry.school_metadata().values())
                client = Saml2Client(config=sp)
                client.users = _NoIdentityMemory()
                built = _Built(generation, keys.state, expires_at, server, client)
                self._built = built
            return built

    @property
    def server(self) -> Server:
        return self._current().server

    @property
    def client(self) -> Saml2Client:
        return self._current().client

    def redirect_signing_key(self) -> rsa.RSAPrivateKey:
        """The private key that signs Redirect-binding queries now (the key of the moment).

        Kept while the key choice and its file stay the same: loading a PEM RSA key costs far
        more than the signature. At a key's switch moment the choice changes and the new key is
        loaded (through xmlsig's cache, shared with the pysaml2 entities built for that key)."""
        keys = self.keys.current()
        wanted = (keys.state, str(keys.signing.files.saml_key))
        cached = self._signing_key
        if cached is not None and cached[0] == wanted:
            return cached[1]
        key = rsa_key(wanted[1])
        if not isinstance(key, rsa.RSAPrivateKey):
            # The SigAlg the broker announces is RSA-SHA256; any other key cannot make it.
            raise ConfigurationError(f"key {keys.signing.number}: the SAML key is not RSA")
        self._signing_key = (wanted, key)
        return key

    def publisher_encryption(
        self, entity_id: str, setting: AssertionEncryption
    ) -> Encryption | None:
        """How to encrypt the assertion for the service `entity_id`, from its SP metadata as
        the Server holds it now; None when it publishes no encryption key, or when the
        operator set the service's assertion encryption `off` (`setting`, read with the
        service from the worker's registry view: no query). Raises EncryptionUnusable when it
        asks in a way the broker cannot meet (and is not `off`), UnknownService when its
        metadata is gone: never a reason to answer it unencrypted. The parsed key is kept per
        metadata content (publisher_encryption.py), so this is a lookup per login."""
        try:
            entity = self.server.metadata[entity_id]
        except KeyError:
            raise UnknownService("service no longer in the metadata") from None
        if setting is AssertionEncryption.OFF:
            # The operator's word for a platform that cannot decrypt (or that publishes a key
            # the broker would refuse): signed, unencrypted, whatever the metadata says.
            return None
        return encryption_for(entity_id, offers_in_metadata(entity))

    def decryption_keys(self) -> tuple[xmlsec.Key, ...]:
        """The private keys a school's EncryptedAssertion may be encrypted for: every published
        key (the SP metadata's encryption KeyDescriptors), none when encryption is off. Loaded
        once per key file version (`xmlsig.signing_key`: the same files sign)."""
        if not self.settings.saml.accept_encrypted_assertions:
            return ()
        return tuple(signing_key(str(g.files.saml_key)) for g in self.keys.current().published)

    def idp_metadata(self) -> str:
        keys = self.keys.current()
        return self._own("idp", keys, lambda: idp_config(self.settings, [], keys=keys))

    def sp_metadata(self) -> str:
        keys = self.keys.current()
        return self._own("sp", keys, lambda: sp_config(self.settings, [], keys=keys))

    def _own(self, which: str, keys: KeyChoice, config: Callable[[], Config]) -> str:
        # Our own metadata depends on settings and the published keys, and carries a
        # validUntil: sign it again every RESIGN_SECONDS so what is served is never close to its
        # end, and at once when a key is published, starts signing or retires.
        cache_key = (which, keys.state)
        made = self._metadata.get(cache_key)
        now = time.monotonic()
        if made is None or now - made[0] > RESIGN_SECONDS:
            made = (now, signed_metadata(config(), self.settings))
            self._metadata = {k: v for k, v in self._metadata.items() if k[1] == keys.state} | {
                cache_key: made
            }
        return made[1]


class _StaticKeys:
    def __init__(self, choice: KeyChoice) -> None:
        self._choice = choice

    def current(self) -> KeyChoice:
        return self._choice

    def now(self) -> float:
        return time.time()
