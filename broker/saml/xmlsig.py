"""pysaml2 crypto backend on the `xmlsec` binding: no `xmlsec1` process, no temporary XML files.

pysaml2's stock backend starts `xmlsec1` for every signature (~55 ms, mostly OpenSSL loading the
CA bundle) plus `xmlsec1 --version` runs; here a sign is ~2 ms and a verify ~1 ms. The backend also
applies the broker's signature policy (see xmlsig_policy) before any cryptography, and only
AES-GCM/RSA-OAEP encryption (see xmlsig_enc).

Use: call `enable_inprocess_crypto()` once at start-up, and set
`"crypto_backend": CRYPTO_BACKEND_NAME` in every pysaml2 config dict.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from typing import Any

import saml2.sigver
import xmlsec
from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned
from saml2 import SamlBase
from saml2.sigver import (
    SIGNER_ALGS,
    CryptoBackend,
    DecryptError,
    EncryptError,
    RSACrypto,
    RSASigner,
    SignatureError,
    import_rsa_key_from_file,
    pre_encrypt_assertion,
)

from broker.saml import xmlsig_enc
from broker.saml.xmlsig_policy import (
    ALLOWED_SIGNATURE_ALGORITHMS,
    locate_signed_element,
    parse_document,
    refuse,
    serialise,
)

log = logging.getLogger(__name__)

CRYPTO_BACKEND_NAME = "ketenbroker-inprocess"

_KEY_CACHE_SIZE = 128

# Transforms libxmlsec may run at all: a second line behind the shape checks in xmlsig_policy, so
# a check we got wrong still cannot let XPath/XSLT or SHA-1 run.
REFERENCE_TRANSFORMS = (
    xmlsec.constants.TransformEnveloped,
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformSha256,
    xmlsec.constants.TransformSha384,
    xmlsec.constants.TransformSha512,
)
SIGNATURE_TRANSFORMS = (
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformRsaSha256,
    xmlsec.constants.TransformRsaSha384,
    xmlsec.constants.TransformRsaSha512,
    xmlsec.constants.TransformEcdsaSha256,
    xmlsec.constants.TransformEcdsaSha384,
    xmlsec.constants.TransformEcdsaSha512,
)


def verification_context(key: Any) -> Any:
    """A libxmlsec verification context for `key`, limited to the allowed transforms; KeyInfo
    in the message is never consulted, because the key is set before verification."""
    context = xmlsec.SignatureContext()
    context.key = key
    for transform in REFERENCE_TRANSFORMS:
        context.enable_reference_transform(transform)
    for transform in SIGNATURE_TRANSFORMS:
        context.enable_signature_transform(transform)
    return context


def check_libxml2_pairing() -> None:
    """Fail at start-up, not at the first login, when lxml and xmlsec carry different libxml2s."""
    lxml_version = tuple(etree.LIBXML_VERSION)
    xmlsec_version = tuple(xmlsec.get_libxml_version())
    if lxml_version != xmlsec_version:
        lxml_text = ".".join(map(str, lxml_version))
        xmlsec_text = ".".join(map(str, xmlsec_version))
        raise RuntimeError(
            f"lxml and the xmlsec binding use different libxml2 versions (lxml {lxml_text}, "
            f"xmlsec {xmlsec_text}); install a wheel pair built against the same libxml2 "
            "(see pitfalls.md)"
        )


class _KeyCache:
    """Loaded xmlsec.Key objects, keyed by the PEM bytes they came from.

    Keyed by content, not path: pysaml2 writes each metadata certificate (and each decryption key)
    to a fresh temporary file per message, so a path cache would never hit and would grow without
    bound, and a recycled temporary name could map to somebody else's key. Reading a 2 KB file is
    microseconds; parsing PEM into a key is what the cache saves. Bounded, and locked because
    Flask workers may run threads. ctx.key copies the key, so sharing one Key object is safe.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[int, bytes], xmlsec.Key] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: str | bytes, key_format: int) -> xmlsec.Key:
        data = _read_source(source)
        cache_key = (key_format, hashlib.sha256(data).digest())
        with self._lock:
            key = self._keys.get(cache_key)
            if key is not None:
                self._keys.move_to_end(cache_key)
                return key
        try:
            key = xmlsec.Key.from_memory(data, key_format)
        except xmlsec.Error as err:
            raise SignatureError("xmlsig: key_unreadable") from err
        with self._lock:
            self._keys[cache_key] = key
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)
        return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


def _read_source(source: str | bytes) -> bytes:
    """pysaml2 passes a file name nearly everywhere, but PEM text is accepted too."""
    if isinstance(source, bytes):
        return source
    if source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii")
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise SignatureError("xmlsig: key_file_unreadable") from err


FileVersion = tuple[int, int, int, int, int]


def _file_version(path: str) -> FileVersion:
    """What tells one version of a file from the next without reading it. ctime too: a file
    rewritten in place keeping its size and (`cp -p`, `touch -r`) its mtime still gets a new
    ctime, which no program can set back."""
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)


@functools.lru_cache(maxsize=8)
def _signing_key_cached(path: str, version: FileVersion) -> xmlsec.Key:
    del version  # the cache key only: a changed file is a new entry
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise SignatureError("xmlsig: key_file_unreadable") from err
    try:
        return xmlsec.Key.from_memory(data, int(xmlsec.constants.KeyDataFormatPem))
    except xmlsec.Error as err:
        raise SignatureError("xmlsig: key_unreadable") from err


def signing_key(path: str) -> xmlsec.Key:
    """The broker's own signing key (a file the configuration or the key set names), kept in
    memory per file version: one `stat` per message instead of reading and hashing the file
    for every signature. A key rotation names a new file, and a file replaced in place has a
    new inode, mtime or ctime, so either is picked up by the next message. Only for the broker's own
    key file (the security context's `key_file`, response_builder.py): what pysaml2 hands the
    backend may be a temporary file or PEM text, and goes through `_KeyCache`, keyed by content,
    because temporary names are reused."""
    try:
        version = _file_version(path)
    except OSError as err:
        raise SignatureError("xmlsig: key_file_unreadable") from err
    return _signing_key_cached(path, version)


def _libxmlsec_version() -> tuple[int, ...]:
    # Present in the binding since 1.3.14 but missing from its stubs.
    version = xmlsec.get_libxmlsec_version()  # type: ignore[attr-defined,unused-ignore]
    return tuple(int(part) for part in version)


def _cert_format(cert_type: str) -> int:
    if cert_type == "pem":
        return int(xmlsec.constants.KeyDataFormatCertPem)
    if cert_type == "der":
        return int(xmlsec.constants.KeyDataFormatCertDer)
    raise refuse("cert_type_unsupported")


class InProcessCryptoBackend(CryptoBackend):  # type: ignore[misc]  # saml2 ships no type hints
    """pysaml2 CryptoBackend doing XML signature and encryption through libxmlsec in process."""

    def __init__(self) -> None:
        super().__init__()
        self._keys = _KeyCache(_KEY_CACHE_SIZE)

    @property
    def version(self) -> str:
        # Defined so pysaml2 never asks a binary; it is the libxmlsec version the binding links.
        return ".".join(str(part) for part in _libxmlsec_version())

    @property
    def version_nums(self) -> tuple[int, ...]:
        return _libxmlsec_version()

    def sign_statement(
        self, statement: Any, node_name: str, key_file: str, node_id: str | None
    ) -> str:
        """Fill in the signature template pysaml2 put in the element with ID `node_id`."""
        return self.sign_elements(statement, key_file, [(node_name, node_id)])

    def sign_elements(
        self, statement: Any, key_file: str, targets: list[tuple[str, str | None]]
    ) -> str:
        """Fill in the templates of several elements, in the order given (inner first, so an
        outer signature covers the inner one), with one parse and one serialisation: pysaml2's
        own route re-parses and re-serialises the whole message for every signature."""
        if isinstance(statement, SamlBase):
            statement = str(statement)
        key = self._keys.get(key_file, int(xmlsec.constants.KeyDataFormatPem))
        return self.sign_tree(parse_document(statement), key, targets)

    def sign_tree(
        self, tree: etree._ElementTree, key: xmlsec.Key, targets: list[tuple[str, str | None]]
    ) -> str:
        """`sign_elements` on a tree the broker built itself (response_builder.py, with the key
        from `signing_key`): no parse."""
        self.sign_in_place(tree, key, targets)
        return serialise(tree)

    @staticmethod
    def sign_in_place(
        tree: etree._ElementTree, key: xmlsec.Key, targets: list[tuple[str, str | None]]
    ) -> None:
        """`sign_tree` without the serialisation: for work between two signatures (the
        assertion's encryption, between its signature and the Response's)."""
        for node_name, node_id in targets:
            # The template must already satisfy the verification policy: pysaml2's defaults are
            # RSA-SHA1/SHA-1, and we refuse to emit a signature we would refuse to accept.
            element, signature = locate_signed_element(tree, node_name, node_id)
            ctx = xmlsec.SignatureContext()
            ctx.key = key
            try:
                ctx.register_id(element, "ID")
                ctx.sign(signature)
            except xmlsec.Error as err:
                raise refuse("sign_failed") from err

    def validate_signature(
        self,
        signedtext: str | bytes,
        cert_file: str,
        cert_type: str,
        node_name: str,
        node_id: str | None,
    ) -> bool:
        """Verify the enveloped signature of the element with ID `node_id` against `cert_file` only.

        Policy violations raise SignatureError (pysaml2 logs it and tries the next metadata cert,
        then refuses); a signature that does not verify returns False. KeyInfo in the message is
        never consulted: the context gets its key before verification, so libxmlsec skips it.
        """
        key = self._keys.get(cert_file, _cert_format(cert_type))
        tree = parse_document(signedtext)
        element, signature = locate_signed_element(tree, node_name, node_id)
        ctx = verification_context(key)
        try:
            # Only the element under scrutiny gets an ID, so "#id" cannot resolve anywhere else.
            ctx.register_id(element, "ID")
            ctx.verify(signature)
        except xmlsec.VerificationError:
            log.info("xml signature did not verify", extra={"reason": "signature_invalid"})
            return False
        except xmlsec.Error as err:
            raise refuse("verify_failed") from err
        return True

    def decrypt(self, enctext: str | bytes, key_file: str) -> str:
        try:
            key = self._keys.get(key_file, int(xmlsec.constants.KeyDataFormatPem))
        except SignatureError as err:
            raise DecryptError("xmlenc: key_unreadable") from err
        try:
            return xmlsig_enc.decrypt_document(enctext, key)
        except DecryptError as err:
            # pysaml2 replaces this with "no key was able to decrypt"; keep the reason in our log.
            log.warning("assertion decryption refused", extra={"reason": str(err)})
            raise

    def encrypt_assertion(  # pysaml2 calls it positionally
        self,
        statement: Any,
        enc_key: str,
        template: Any,
        key_type: str = "des-192",
        node_xpath: str | None = None,
        node_id: str | None = None,
    ) -> str:
        """Encrypt the Response's Assertion for the holder of the certificate in `enc_key`.

        `template` (pysaml2's 3DES EncryptedData) is deliberately unused, see xmlsig_enc.
        """
        del template, node_id
        if isinstance(statement, SamlBase):
            statement = str(pre_encrypt_assertion(statement))
        try:
            cert = self._keys.get(enc_key, int(xmlsec.constants.KeyDataFormatCertPem))
        except SignatureError as err:
            raise EncryptError("xmlenc: cert_unreadable") from err
        return xmlsig_enc.encrypt_document(str(statement), cert, key_type, node_xpath)

    def encrypt(self, text: str, recv_key: str, template: str, key_type: str) -> str:
        # Whole-message encryption is unused by SAML Web SSO; refuse rather than half-implement.
        raise EncryptError("xmlenc: whole_message_encryption_unsupported")


class _AllowListRSACrypto(RSACrypto):  # type: ignore[misc]  # saml2 ships no type hints
    """pysaml2's Redirect-binding signer/verifier, minus SHA-1 and SHA-224.

    pysaml2 uses `sec_backend.get_signer` to sign the broker's Redirect logout messages, and to
    verify theirs where pysaml2 itself checks a query signature (the demo's peers do: they
    stand in for plain pysaml2 deployments). The broker's own check of a peer's query signature
    is redirect_signature.check_redirect_signature, over the query as received, with ECDSA.
    Refusing here keeps SHA-1 out of any pysaml2 path all the same.

    pysaml2's own get_signer hands out one module-level signer per algorithm and sets *its* key
    on every call, so two threads (two keys during a rollover, or the demo's peers in the same
    process) could sign with each other's key. A fresh signer per call shares nothing.
    """

    def get_signer(self, sigalg: str, sigkey: Any = None) -> Any:
        if sigalg not in ALLOWED_SIGNATURE_ALGORITHMS:
            raise refuse("redirect_sigalg_refused")
        template = SIGNER_ALGS.get(sigalg)
        if template is None:
            return None  # ECDSA over the Redirect binding: pysaml2 has no signer for it
        return RSASigner(template.digest, sigkey or self.key)


class _BackendOverride:
    """A read-through view of a pysaml2 Config that names pysaml2's XMLSecurity backend.

    Lets pysaml2's own security_context() build the SecurityContext (metadata, encryption key
    pairs, cert handler, only_use_keys_in_metadata...) so we do not copy its argument mapping; its
    XMLSecurity branch merely instantiates a class and needs nothing installed. We then swap the
    crypto object. A view, not a mutation, so a Config shared between threads is never changed.
    """

    crypto_backend = "XMLSecurity"

    def __init__(self, conf: Any) -> None:
        self._conf = conf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conf, name)


_BACKEND = InProcessCryptoBackend()
_ENABLE_LOCK = threading.Lock()
# The modules that did `from saml2.sigver import security_context`; scanning sys.modules below
# also catches any other saml2 module that did the same.
_CALLER_MODULES = ("saml2.entity", "saml2.metadata", "saml2.mdstore", "saml2.response")
_ORIGINAL_SECURITY_CONTEXT: Any = getattr(
    saml2.sigver.security_context, "__wrapped__", saml2.sigver.security_context
)


@functools.lru_cache(maxsize=16)
def _rsa_key_cached(path: str, version: FileVersion) -> Any:
    del version  # the cache key only
    return import_rsa_key_from_file(path)


def rsa_key(path: str) -> Any:
    """The private key for Redirect-binding signatures, loaded once per file version: loading
    validates the RSA key (~90 ms), and pysaml2 builds a security context for every metadata
    load and entity, so without this a broker start or registry change pays it many times.
    SamlEntities.redirect_signing_key shares it, so a key switch loads the new key once."""
    return _rsa_key_cached(path, _file_version(path))


def _inprocess_security_context(conf: Any) -> Any:
    context = _ORIGINAL_SECURITY_CONTEXT(_BackendOverride(conf))
    context.crypto = _BACKEND
    key_file = getattr(conf, "key_file", None)
    if key_file:
        # The xmlsec1 branch sets this up for Redirect-binding signatures; XMLSecurity does not.
        context.sec_backend = _AllowListRSACrypto(rsa_key(key_file))
    return context


@functools.wraps(_ORIGINAL_SECURITY_CONTEXT)
def _security_context(conf: Any) -> Any:
    if conf and getattr(conf, "crypto_backend", None) == CRYPTO_BACKEND_NAME:
        return _inprocess_security_context(conf)
    return _ORIGINAL_SECURITY_CONTEXT(conf)


def enable_inprocess_crypto() -> None:
    """Make pysaml2 honour `"crypto_backend": CRYPTO_BACKEND_NAME`; idempotent.

    pysaml2 hard-codes its backends in saml2.sigver.security_context(), and entity, metadata,
    mdstore and response each bound that function by name at import. Rebinding the name in those
    modules is the smallest change that reaches every SecurityContext pysaml2 builds (Server,
    Saml2Client, MetadataStore, response parsing) without subclassing each of them or patching
    pysaml2 on disk; every other crypto_backend value goes to pysaml2's own function unchanged.
    """
    check_libxml2_pairing()
    with _ENABLE_LOCK:
        for name in _CALLER_MODULES:
            importlib.import_module(name)
        saml2.sigver.security_context = _security_context
        for name, module in list(sys.modules.items()):
            if (name == "saml2" or name.startswith("saml2.")) and getattr(
                module, "security_context", None
            ) is _ORIGINAL_SECURITY_CONTEXT:
                module.security_context = _security_context  # type: ignore[attr-defined]
