"""Whether, and how, the broker encrypts the assertion it sends a publisher's service.

A service asks for encryption by publishing a key for it in its SP metadata: a KeyDescriptor
with `use="encryption"`, or without `use` (SAML metadata 2.4.1.1: usable for both). The broker
then encrypts for the first such key that is an RSA key of at least 2048 bits in an
X509Certificate, and never sends that service a readable assertion: a key it cannot use, or an
algorithm list it cannot meet, is refused at registration (`metadata_check.sp_entity_id`, the
portal's report) and, for metadata that arrived another way (a federation aggregate, a
registration from before this check), at the service's AuthnRequest (`encryption_unusable`).

Algorithms (docs/saml-profile.md, "Encrypted assertions"):
- data: AES-GCM only, AES-256-GCM unless the key's `md:EncryptionMethod` list names GCM
  algorithms, then the first of those listed (SAML V2.0 Metadata Profile for Algorithm
  Support). A list that names only CBC (or 3DES) is refused, not met: the broker signs the
  assertion before encrypting it, and with CBC that is the combination the 2011 padding-oracle
  attack on XML Encryption decrypts, by whoever holds the ciphertext (what passes through the
  browser is what encryption is for) stripping the Response's signature and asking the
  service's decryption. GCM's tag refuses any changed ciphertext before it is decrypted.
- key transport: RSA-OAEP-MGF1P (`xmlenc#rsa-oaep-mgf1p`, SHA-1 inside OAEP, which is sound
  there), the one OAEP identifier Shibboleth SP 3, SimpleSAMLphp 2 (xmlseclibs) and pysaml2
  with either backend all read; xmlenc11#rsa-oaep is missing from older xmlseclibs and
  xmlsec1 1.2. A list naming key transports without it (RSA PKCS#1 v1.5 only) is refused.

The choice is kept per (service, key offers): the parsed key, for as long as the metadata says
the same, so a login costs a dictionary walk and a cache lookup.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned

from broker.core.errors import N_, UnsupportedRequest
from broker.saml.metadata_keys import metadata_public_key
from broker.saml.xmlsig_enc import AES256_GCM, GCM_KEY_BYTES, RSA_OAEP, RSA_OAEP_MGF1P
from broker.saml.xmlsig_policy import DS_NS, XENC_NS

log = logging.getLogger(__name__)

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
CBC_ALGORITHMS = frozenset(
    f"{XENC_NS}{name}" for name in ("aes128-cbc", "aes192-cbc", "aes256-cbc", "tripledes-cbc")
)
RSA_1_5 = f"{XENC_NS}rsa-1_5"
MIN_RSA_BITS = 2048

DEFAULT_DATA_ALGORITHM = AES256_GCM
KEY_TRANSPORT = RSA_OAEP_MGF1P
_KNOWN_DATA = CBC_ALGORITHMS | GCM_KEY_BYTES.keys()
_KNOWN_KEY_TRANSPORT = frozenset({RSA_1_5, RSA_OAEP_MGF1P, RSA_OAEP})

# What is wrong, in words an administrator acts on (translated in the portals, web/labels.py).
KEY_UNREADABLE = N_(
    "the encryption key in the metadata of %(entity_id)s is not an X509Certificate the broker "
    'can read; a KeyDescriptor without use="signing" is an encryption key'
)
KEY_NOT_RSA = N_(
    "the encryption key in the metadata of %(entity_id)s is not an RSA key, and the broker "
    'encrypts for RSA keys only; mark a key that is for signatures only use="signing"'
)
KEY_TOO_SMALL = N_(
    "the encryption key in the metadata of %(entity_id)s is RSA of %(bits)s bits; the broker "
    "encrypts for RSA keys of at least 2048 bits"
)
ONLY_CBC = N_(
    "the metadata of %(entity_id)s lists only data encryption algorithms the broker does not "
    "use (%(algorithms)s): list http://www.w3.org/2009/xmlenc11#aes256-gcm, or remove the "
    "encryption key to receive signed assertions unencrypted"
)
NO_OAEP = N_(
    "the metadata of %(entity_id)s lists only key transport algorithms the broker does not "
    "use (%(algorithms)s): list http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
)


class EncryptionUnusable(UnsupportedRequest):
    """The service asked for encrypted assertions in a way the broker cannot meet. Its
    `message` and `params` are an administrator's (metadata_check turns them into a
    MetadataInvalid at registration); at a login the student's page says the platform asked
    for a sign-in the broker does not offer, and the service gets RequestUnsupported."""

    code = "encryption_unusable"


@dataclass(frozen=True)
class KeyOffer:
    """One KeyDescriptor of the service's SPSSODescriptor, as far as encryption goes."""

    use: str | None
    certificate: str | None  # the first X509Certificate's base64 text
    methods: tuple[str, ...]  # its md:EncryptionMethod algorithms, in order

    @property
    def for_encryption(self) -> bool:
        return self.use in (None, "encryption")


@dataclass(frozen=True)
class Encryption:
    """How to encrypt for one service: its public key (immutable, shared by threads) and the
    algorithms."""

    key: rsa.RSAPublicKey
    bits: int
    data_algorithm: str
    key_transport: str = KEY_TRANSPORT


def offers_in_metadata(entity: Mapping[str, Any]) -> tuple[KeyOffer, ...]:
    """The KeyDescriptors of an entity as pysaml2's metadata store holds it."""
    offers = []
    for descriptor in entity.get("spsso_descriptor", []):
        for key in descriptor.get("key_descriptor", []):
            x509 = (key.get("key_info") or {}).get("x509_data") or [{}]
            certificate = (x509[0].get("x509_certificate") or {}).get("text")
            methods = tuple(m.get("algorithm", "") for m in key.get("encryption_method", []))
            offers.append(KeyOffer(key.get("use"), certificate, methods))
    return tuple(offers)


def offers_in_descriptor(descriptor: etree._Element) -> tuple[KeyOffer, ...]:
    """The KeyDescriptors of an SPSSODescriptor as parsed from the metadata document."""
    offers = []
    for key in descriptor.findall(f"{{{MD_NS}}}KeyDescriptor"):
        certificate = key.find(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate")
        methods = tuple(m.get("Algorithm", "") for m in key.findall(f"{{{MD_NS}}}EncryptionMethod"))
        text = None if certificate is None else certificate.text
        offers.append(KeyOffer(key.get("use"), text, methods))
    return tuple(offers)


def encryption_for(entity_id: str, offers: tuple[KeyOffer, ...]) -> Encryption | None:
    """None when the service publishes no encryption key; else how to encrypt for its first
    usable one. Raises EncryptionUnusable (the first key's reason) when none is usable."""
    return _encryption_for(entity_id, offers)


@functools.lru_cache(maxsize=1024)
def _encryption_for(entity_id: str, offers: tuple[KeyOffer, ...]) -> Encryption | None:
    # Kept per content: a service's next metadata (another key, another list) is a new entry.
    chosen = chosen_encryption(entity_id, offers)
    if chosen is not None:
        log.info(
            "assertions encrypted for service=%s with %s and %s, RSA %d bits",
            entity_id,
            chosen.data_algorithm,
            chosen.key_transport,
            chosen.bits,
        )
    return chosen


def chosen_encryption(entity_id: str, offers: tuple[KeyOffer, ...]) -> Encryption | None:
    """`encryption_for` without its cache and its log line (which says what logins do): for
    a listing of what each service receives (encryption_summary.py)."""
    asked = [offer for offer in offers if offer.for_encryption]
    if not asked:
        return None
    problems: list[EncryptionUnusable] = []
    for offer in asked:
        try:
            return _usable(entity_id, offer)
        except EncryptionUnusable as problem:
            problems.append(problem)
    raise problems[0]


def _usable(entity_id: str, offer: KeyOffer) -> Encryption:
    data_algorithm = _data_algorithm(entity_id, offer.methods)
    _check_key_transport(entity_id, offer.methods)
    public_key = metadata_public_key(offer.certificate) if offer.certificate else None
    if public_key is None:
        raise EncryptionUnusable(KEY_UNREADABLE, entity_id=entity_id)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise EncryptionUnusable(KEY_NOT_RSA, entity_id=entity_id)
    if public_key.key_size < MIN_RSA_BITS:
        raise EncryptionUnusable(KEY_TOO_SMALL, entity_id=entity_id, bits=public_key.key_size)
    return Encryption(public_key, public_key.key_size, data_algorithm)


def _data_algorithm(entity_id: str, methods: Iterable[str]) -> str:
    listed = [m for m in methods if m in _KNOWN_DATA]
    if not listed:
        return DEFAULT_DATA_ALGORITHM
    for method in listed:
        if method in GCM_KEY_BYTES:
            return method
    raise EncryptionUnusable(ONLY_CBC, entity_id=entity_id, algorithms=" ".join(listed))


def _check_key_transport(entity_id: str, methods: Iterable[str]) -> None:
    listed = [m for m in methods if m in _KNOWN_KEY_TRANSPORT]
    if listed and KEY_TRANSPORT not in listed:
        raise EncryptionUnusable(NO_OAEP, entity_id=entity_id, algorithms=" ".join(listed))
