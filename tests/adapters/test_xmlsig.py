"""The in-process pysaml2 crypto backend, end to end with real keys and no xmlsec1 program."""

from __future__ import annotations

import base64
import gc
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import saml2.sigver
import xmlsec
from cryptography.utils import CryptographyDeprecationWarning
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import IdPConfig, SPConfig
from saml2.metadata import create_metadata_string
from saml2.response import IncorrectlySigned
from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID
from saml2.sigver import SignatureError

from broker.certificates import write_pair
from broker.saml.xmlsig import (
    CRYPTO_BACKEND_NAME,
    InProcessCryptoBackend,
    check_libxml2_pairing,
    enable_inprocess_crypto,
    signing_key,
)
from broker.saml.xmlsig_policy import parse_document

# pysaml2 7.5.5 still names cryptography's CFB mode at import (saml2.cryptography.symmetric), which
# cryptography 48 warns about; pyproject only silences DeprecationWarning from saml2, and this is a
# UserWarning subclass. Silenced for this one import only.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2.server import Server

# pysaml2 writes metadata certificates and keys to NamedTemporaryFile objects (sigver.make_temp)
# and leaves closing them to the garbage collector, which warns; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_pysaml2_temp_files() -> Iterator[None]:
    # Collect them while the warning is still ignored, not at session end where it would turn into
    # an unraisable-exception error under filterwarnings=error.
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


SP_ID = "http://sp.example.test/metadata"
IDP_ID = "http://idp.example.test/metadata"
ACS = "http://sp.example.test/acs"
SSO_POST = "http://idp.example.test/sso/post"
SSO_REDIRECT = "http://idp.example.test/sso/redirect"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
AUTHN = {"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}


def _key_pair(directory: Path, name: str) -> tuple[str, str]:
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    write_pair(key_path, cert_path, name)
    return str(key_path), str(cert_path)


def _sp_dict(keys: tuple[str, str]) -> dict[str, Any]:
    return {
        "entityid": SP_ID,
        "crypto_backend": CRYPTO_BACKEND_NAME,
        "key_file": keys[0],
        "cert_file": keys[1],
        "encryption_keypairs": [{"key_file": keys[0], "cert_file": keys[1]}],
        "signing_algorithm": RSA_SHA256,
        "digest_algorithm": SHA256,
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]},
                # Read from the service block (Config.getattr uses the "sp"/"idp" context): a
                # top-level value alone leaves pysaml2 on its RSA-SHA1 default.
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
                "want_response_signed": True,
                "want_assertions_signed": True,
                "authn_requests_signed": True,
                "allow_unsolicited": False,
            }
        },
    }


def _idp_dict(keys: tuple[str, str]) -> dict[str, Any]:
    return {
        "entityid": IDP_ID,
        "crypto_backend": CRYPTO_BACKEND_NAME,
        "key_file": keys[0],
        "cert_file": keys[1],
        "signing_algorithm": RSA_SHA256,
        "digest_algorithm": SHA256,
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [
                        (SSO_REDIRECT, BINDING_HTTP_REDIRECT),
                        (SSO_POST, BINDING_HTTP_POST),
                    ]
                },
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
                "want_authn_requests_signed": True,
                "name_id_format": [NAMEID_FORMAT_TRANSIENT],
                "policy": {"default": {"lifetime": {"minutes": 15}}},
            }
        },
    }


def _metadata(config: SPConfig | IdPConfig) -> str:
    return str(create_metadata_string(None, config=config).decode("utf-8"))


class Federation:
    """A pysaml2 SP and IdP that know each other only through generated metadata."""

    def __init__(self, directory: Path) -> None:
        self.sp_keys = _key_pair(directory, "sp")
        self.idp_keys = _key_pair(directory, "idp")
        sp_md = _metadata(SPConfig().load(_sp_dict(self.sp_keys)))
        self.idp_md = _metadata(IdPConfig().load(_idp_dict(self.idp_keys)))
        sp_conf = _sp_dict(self.sp_keys) | {"metadata": {"inline": [self.idp_md]}}
        idp_conf = _idp_dict(self.idp_keys) | {"metadata": {"inline": [sp_md]}}
        self.sp = Saml2Client(SPConfig().load(sp_conf))
        self.idp = Server(config=IdPConfig().load(idp_conf))
        self.sp_md = sp_md

    def impostor(self, directory: Path) -> Server:
        """Same entity id as the IdP, a key the SP has never seen."""
        keys = _key_pair(directory, "impostor")
        conf = _idp_dict(keys) | {"metadata": {"inline": [self.sp_md]}}
        return Server(config=IdPConfig().load(conf))

    def login_response(self, idp: Server | None = None) -> tuple[str, str]:
        """(request id, signed Response XML) for a fresh AuthnRequest."""
        req_id, request = self.sp.create_authn_request(SSO_POST, sign=True)
        issuer = idp or self.idp
        parsed = issuer.parse_authn_request(_b64(str(request)), BINDING_HTTP_POST)
        response = issuer.create_authn_response(
            identity={"uid": ["student1"]},
            name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="transient-1"),
            authn=AUTHN,
            sign_response=True,
            sign_assertion=True,
            **issuer.response_args(parsed.message),
        )
        return req_id, str(response)

    def accept(self, req_id: str, response_xml: str) -> Any:
        return self.sp.parse_authn_request_response(
            _b64(response_xml), BINDING_HTTP_POST, outstanding={req_id: "/"}
        )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    enable_inprocess_crypto()
    return Federation(tmp_path_factory.mktemp("xmlsig"))


def test_signed_response_and_assertion_are_accepted(federation: Federation) -> None:
    req_id, response_xml = federation.login_response()
    assert len(etree.fromstring(response_xml.encode()).findall(".//{*}SignatureValue")) == 2
    assert RSA_SHA256 in response_xml and RSA_SHA1 not in response_xml
    result = federation.accept(req_id, response_xml)
    assert result is not None
    assert result.ava["uid"] == ["student1"]
    assert result.response.signature is not None and result.assertion.signature is not None


def test_one_changed_byte_in_the_assertion_is_refused(federation: Federation) -> None:
    req_id, response_xml = federation.login_response()
    tampered = response_xml.replace("student1", "student2", 1)
    assert tampered != response_xml
    with pytest.raises(SignatureError):
        federation.accept(req_id, tampered)


def test_response_signed_by_an_unrelated_key_is_refused(
    federation: Federation, tmp_path: Path
) -> None:
    req_id, response_xml = federation.login_response(federation.impostor(tmp_path))
    with pytest.raises(SignatureError):
        federation.accept(req_id, response_xml)


def test_no_process_is_spawned_for_sign_and_verify(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was spawned")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(saml2.sigver, "Popen", forbidden)
    req_id, response_xml = federation.login_response()
    assert federation.accept(req_id, response_xml) is not None


def test_signed_post_authn_request_is_verified(federation: Federation) -> None:
    _, request = federation.sp.create_authn_request(SSO_POST, sign=True)
    request_xml = str(request)
    assert RSA_SHA256 in request_xml
    parsed = federation.idp.parse_authn_request(_b64(request_xml), BINDING_HTTP_POST)
    assert parsed.message.signature is not None
    tampered = request_xml.replace(ACS, ACS + "-evil", 1)
    with pytest.raises(IncorrectlySigned):
        federation.idp.parse_authn_request(_b64(tampered), BINDING_HTTP_POST)


def _redirect_query(federation: Federation) -> dict[str, str]:
    _, info = federation.sp.prepare_for_authenticate(
        entityid=IDP_ID,
        relay_state="rs-1",
        binding=BINDING_HTTP_REDIRECT,
        sign=True,
        sigalg=RSA_SHA256,
    )
    location = dict(info["headers"])["Location"]
    return {key: values[0] for key, values in parse_qs(urlparse(location).query).items()}


def test_signed_redirect_authn_request_is_verified(federation: Federation) -> None:
    query = _redirect_query(federation)
    parsed = federation.idp.parse_authn_request(
        query["SAMLRequest"],
        BINDING_HTTP_REDIRECT,
        relay_state=query["RelayState"],
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    )
    assert parsed.message is not None
    with pytest.raises(IncorrectlySigned):
        federation.idp.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state="rs-2",
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )


def test_redirect_sha1_sigalg_is_refused_even_without_the_explicit_check(
    federation: Federation,
) -> None:
    query = _redirect_query(federation)
    with pytest.raises(IncorrectlySigned):
        federation.idp.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query["RelayState"],
            sigalg=RSA_SHA1,
            signature=query["Signature"],
        )


def test_redirect_signer_refuses_sha1(federation: Federation) -> None:
    with pytest.raises(SignatureError, match="redirect_sigalg_refused"):
        federation.idp.sec.sec_backend.get_signer(RSA_SHA1)
    with pytest.raises(SignatureError, match="redirect_sigalg_refused"):
        federation.sp.sec.sec_backend.get_signer(RSA_SHA1)


def test_encrypted_assertion_round_trip(federation: Federation) -> None:
    req_id, request = federation.sp.create_authn_request(SSO_POST, sign=True)
    parsed = federation.idp.parse_authn_request(_b64(str(request)), BINDING_HTTP_POST)
    sp_cert = Path(federation.sp_keys[1]).read_text()
    response = federation.idp.create_authn_response(
        identity={"uid": ["student1"]},
        name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="transient-1"),
        authn=AUTHN,
        sign_response=True,
        sign_assertion=True,
        encrypt_assertion=True,
        encrypt_cert_assertion=sp_cert,
        **federation.idp.response_args(parsed.message),
    )
    response_xml = str(response)
    assert "aes256-gcm" in response_xml and "rsa-oaep" in response_xml
    assert "student1" not in response_xml
    result = federation.sp.parse_authn_request_response(
        _b64(response_xml), BINDING_HTTP_POST, outstanding={req_id: "/"}
    )
    assert result.ava["uid"] == ["student1"]


def test_cbc_encrypted_assertion_is_refused(federation: Federation) -> None:
    backend = InProcessCryptoBackend()
    document = (
        '<r xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"><xenc:EncryptedData>'
        '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        "</xenc:EncryptedData></r>"
    )
    with pytest.raises(saml2.sigver.DecryptError, match="content_algorithm_refused"):
        backend.decrypt(document, federation.sp_keys[0])


# --- documents signed directly with the binding, to reach the policy checks ------------------

_DOC = (
    '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" '
    'Version="2.0" IssueInstant="2024-01-01T00:00:00Z"><saml:Issuer>{issuer}</saml:Issuer>'
    '<saml:Subject ID="_s1"><saml:NameID>n</saml:NameID></saml:Subject></saml:Assertion>'
)


def _sign_by_hand(
    key_file: str,
    *,
    sign_method: Any = xmlsec.constants.TransformRsaSha256,
    digest: Any = xmlsec.constants.TransformSha256,
    uri: str = "#_a1",
    with_object: bool = False,
    cert_file: str | None = None,
) -> str:
    root = etree.fromstring(_DOC.format(issuer=IDP_ID).encode())
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, sign_method)
    root.insert(1, signature)
    ref = xmlsec.template.add_reference(signature, digest, uri=uri)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    if cert_file:
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    if with_object:
        etree.SubElement(signature, "{http://www.w3.org/2000/09/xmldsig#}Object").text = "x"
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
    if cert_file:
        key.load_cert_from_file(cert_file, xmlsec.constants.KeyDataFormatPem)
    ctx.key = key
    for element in root.iter():
        if element.get("ID"):
            ctx.register_id(element, "ID")
    ctx.sign(signature)
    return str(etree.tostring(root, encoding="unicode"))


def _verify(federation: Federation, document: str, cert: str | None = None) -> bool:
    backend = InProcessCryptoBackend()
    return bool(
        backend.validate_signature(
            document, cert or federation.idp_keys[1], "pem", ASSERTION, "_a1"
        )
    )


def test_hand_signed_sha256_document_verifies(federation: Federation) -> None:
    assert _verify(federation, _sign_by_hand(federation.idp_keys[0]))


def test_sha1_signed_document_is_refused(federation: Federation) -> None:
    document = _sign_by_hand(
        federation.idp_keys[0],
        sign_method=xmlsec.constants.TransformRsaSha1,
        digest=xmlsec.constants.TransformSha1,
    )
    with pytest.raises(SignatureError, match="signature_algorithm_refused"):
        _verify(federation, document)


def test_sha1_digest_is_refused(federation: Federation) -> None:
    document = _sign_by_hand(federation.idp_keys[0], digest=xmlsec.constants.TransformSha1)
    with pytest.raises(SignatureError, match="digest_algorithm_refused"):
        _verify(federation, document)


def test_reference_to_another_id_is_refused(federation: Federation) -> None:
    document = _sign_by_hand(federation.idp_keys[0], uri="#_s1")
    with pytest.raises(SignatureError, match="reference_not_parent"):
        _verify(federation, document)


def test_ds_object_is_refused(federation: Federation) -> None:
    document = _sign_by_hand(federation.idp_keys[0], with_object=True)
    with pytest.raises(SignatureError, match="object_present"):
        _verify(federation, document)


def test_key_info_in_the_message_is_ignored(federation: Federation, tmp_path: Path) -> None:
    attacker_key, attacker_cert = _key_pair(tmp_path, "attacker")
    document = _sign_by_hand(attacker_key, cert_file=attacker_cert)
    assert "X509Certificate" in document
    assert not _verify(federation, document)
    assert _verify(federation, document, cert=attacker_cert)


def test_duplicate_id_is_refused(federation: Federation) -> None:
    document = _sign_by_hand(federation.idp_keys[0]).replace('ID="_s1"', 'ID="_a1"')
    with pytest.raises(SignatureError, match="id_not_unique"):
        _verify(federation, document)


def test_doctype_is_refused(federation: Federation) -> None:
    document = "<!DOCTYPE x>" + _sign_by_hand(federation.idp_keys[0])
    with pytest.raises(SignatureError, match="doctype_present"):
        _verify(federation, document)


@pytest.mark.parametrize("doctype", ['<!DOCTYPE x [<!ENTITY e "y">]>', ""], ids=["DOCTYPE", "none"])
def test_doctype_in_a_utf16_document_is_refused(doctype: str) -> None:
    """A document in UTF-16 (bytes, as a caller may hand it) hides `<!DOCTYPE` from any byte
    search; the parsed tree's DOCTYPE is refused all the same, and without one (the control)
    the same document parses."""
    text = '<?xml version="1.0" encoding="UTF-16"?>' + doctype + _DOC.format(issuer=IDP_ID)
    document = text.encode("utf-16")
    if doctype:
        with pytest.raises(SignatureError, match="doctype_present"):
            parse_document(document)
    else:
        assert parse_document(document).getroot().get("ID") == "_a1"


def test_signing_refuses_a_sha1_template(federation: Federation) -> None:
    root = etree.fromstring(_DOC.format(issuer=IDP_ID).encode())
    signature = xmlsec.template.create(
        root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha1
    )
    root.insert(1, signature)
    ref = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha1, uri="#_a1")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    with pytest.raises(SignatureError, match="signature_algorithm_refused"):
        InProcessCryptoBackend().sign_statement(
            etree.tostring(root, encoding="unicode"), ASSERTION, federation.idp_keys[0], "_a1"
        )


def test_other_crypto_backends_keep_pysaml2_behaviour(tmp_path: Path) -> None:
    enable_inprocess_crypto()
    enable_inprocess_crypto()
    conf = SPConfig().load(
        _sp_dict(_key_pair(tmp_path, "stock")) | {"crypto_backend": "XMLSecurity"}
    )
    context = saml2.sigver.security_context(conf)
    assert type(context.crypto) is saml2.sigver.CryptoBackendXMLSecurity
    conf = SPConfig().load(_sp_dict(_key_pair(tmp_path, "ours")))
    assert isinstance(saml2.sigver.security_context(conf).crypto, InProcessCryptoBackend)


def test_backend_reports_a_version_without_a_binary() -> None:
    backend = InProcessCryptoBackend()
    assert backend.version_nums >= (1, 2)
    assert backend.version == ".".join(map(str, backend.version_nums))


def test_libxml2_pairing_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    check_libxml2_pairing()
    monkeypatch.setattr(xmlsec, "get_libxml_version", lambda: (2, 9, 1))
    with pytest.raises(RuntimeError, match="libxml2"):
        check_libxml2_pairing()


def test_redirect_signers_do_not_share_their_key(tmp_path: Path) -> None:
    """pysaml2's own get_signer sets the key on one module-level signer per algorithm; two keys
    in one process (a rollover, the demo's peers) must never sign with each other's key."""
    from saml2.sigver import import_rsa_key_from_file

    from broker.saml.xmlsig import _AllowListRSACrypto

    first_key = import_rsa_key_from_file(_key_pair(tmp_path, "first")[0])
    second_key = import_rsa_key_from_file(_key_pair(tmp_path, "second")[0])
    first = _AllowListRSACrypto(first_key).get_signer(RSA_SHA256)
    second = _AllowListRSACrypto(second_key).get_signer(RSA_SHA256)
    assert first is not second
    signature = first.sign(b"message")
    assert first.verify(b"message", signature, first_key.public_key())
    assert not second.verify(b"message", signature, second_key.public_key())


def test_own_signing_key_is_kept_until_its_file_changes(tmp_path: Path) -> None:
    # Kept in memory (no read per signature), yet a key file replaced in place is used at the
    # next message: its inode, mtime or size changed.
    key_path, _ = _key_pair(tmp_path, "own")
    first = signing_key(key_path)
    assert signing_key(key_path) is first
    replacement = tmp_path / "replacement"
    write_pair(replacement / "own.key", replacement / "own.crt", "own")
    (replacement / "own.key").replace(key_path)
    second = signing_key(key_path)
    assert second is not first and signing_key(key_path) is second
    Path(key_path).unlink()
    with pytest.raises(SignatureError, match="key_file_unreadable"):
        signing_key(key_path)
