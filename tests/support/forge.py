"""Messages the tests make themselves: school Responses (correct, or with one thing wrong) and
publisher AuthnRequests, built with pysaml2's own Server and client, signed in process.

The school side signs with whatever key it is given: the demo school's (a response the broker
must accept unless something else is wrong) or a stranger's.
"""

from __future__ import annotations

import base64
import uuid
import warnings
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

with warnings.catch_warnings():
    # pysaml2 7.5.5 touches cryptography's deprecated CFB mode at import.
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name, samlp
    from saml2.assertion import Policy
    from saml2.client import Saml2Client
    from saml2.config import IdPConfig, SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAMEID_FORMAT_PERSISTENT, Issuer, NameID
    from saml2.server import Server
    from saml2.sigver import pre_signature_part, signed_instance_factory
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from broker.demo.attribute_profile import OidProfileConverter
from broker.saml.xmlsig import CRYPTO_BACKEND_NAME, enable_inprocess_crypto

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS = {"samlp": SAMLP, "saml": SAML, "ds": "http://www.w3.org/2000/09/xmldsig#"}

ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

Tamper = Callable[[samlp.Response], None]


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def redirect_message(url: str) -> tuple[bytes, dict[str, str]]:
    """The inflated XML of a Redirect-binding URL's SAMLRequest, and the URL's parameters."""
    params = _query(url)
    xml = zlib.decompress(base64.b64decode(params["SAMLRequest"]), -15)
    return xml, params


def authn_request_id(url: str) -> str:
    xml, _ = redirect_message(url)
    ident = etree.fromstring(xml).get("ID")
    assert isinstance(ident, str) and ident, "AuthnRequest without ID"
    return ident


def verify_redirect_signature(url: str, cert_file: Path, kind: str = "SAMLRequest") -> None:
    """Check a Redirect-binding URL's query signature (RSA-SHA256) against the certificate, over
    the query's own octets in the order SAML bindings 3.4.4.1 fixes; raises
    cryptography's InvalidSignature when it does not verify."""
    params = _query(url)
    assert params["SigAlg"] == SIG_RSA_SHA256, params["SigAlg"]
    raw = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    signed = "&".join(f"{k}={raw[k]}" for k in (kind, "RelayState", "SigAlg") if k in raw)
    key = x509.load_pem_x509_certificate(cert_file.read_bytes()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        base64.b64decode(params["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def verify_signature(xml: bytes, cert_file: Path, element_id: str) -> None:
    """Check the enveloped signature over the element with `element_id` against the certificate
    (raises xmlsec.Error when it does not verify)."""
    doc = etree.fromstring(xml)
    xmlsec.tree.add_ids(doc, ["ID"])
    target = doc if doc.get("ID") == element_id else doc.find(f".//*[@ID='{element_id}']")
    assert target is not None, f"no element with ID {element_id}"
    signature = target.find("ds:Signature", NS)
    assert signature is not None, f"element {element_id} is not signed"
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(cert_file), xmlsec.constants.KeyDataFormatCertPem)
    context.verify(signature)


class SchoolForger:
    """Answers as the school IdP `entity_id` would, signed with `key_file`."""

    def __init__(
        self, entity_id: str, key_file: Path, cert_file: Path, broker_sp_metadata: str
    ) -> None:
        enable_inprocess_crypto()
        config = IdPConfig()
        config.load(
            {
                "entityid": entity_id,
                "key_file": str(key_file),
                "cert_file": str(cert_file),
                "crypto_backend": CRYPTO_BACKEND_NAME,
                "metadata": {"inline": [broker_sp_metadata]},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(f"{entity_id}/sso", BINDING_HTTP_REDIRECT)]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    }
                },
            }
        )
        config.attribute_converters.insert(0, OidProfileConverter())
        self.entity_id = entity_id
        self.server = Server(config=config)

    def metadata(self) -> str:
        return str(entity_descriptor(self.server.config))

    def _unsigned(
        self,
        in_response_to: str,
        destination: str,
        audience: str,
        subject: str,
        attributes: dict[str, list[str]] | None,
    ) -> samlp.Response:
        name_id = NameID(
            format=NAMEID_FORMAT_PERSISTENT,
            text=subject,
            name_qualifier=self.entity_id,
            sp_name_qualifier=audience,
        )
        response: samlp.Response = self.server.create_authn_response(
            attributes if attributes is not None else {"givenName": ["Sanne"]},
            in_response_to=in_response_to,
            destination=destination,
            sp_entity_id=audience,
            name_id=name_id,
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": self.entity_id},
            sign_response=False,
            sign_assertion=False,
            release_policy=Policy(restrictions=None, mds=None),
        )
        return response

    def _signed(self, response: samlp.Response, assertions: list[Any]) -> str:
        """Sign each assertion, then the response over them; base64 of the XML."""
        cert = self.server.sec.my_cert
        to_sign = []
        for number, assertion in enumerate(assertions, start=2):
            assertion.signature = pre_signature_part(
                assertion.id, cert, number, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
            )
            to_sign.append((class_name(assertion), assertion.id))
        response.signature = pre_signature_part(
            response.id, cert, 1, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
        )
        to_sign.append((class_name(response), response.id))
        signed = signed_instance_factory(response, self.server.sec, to_sign)
        return base64.b64encode(str(signed).encode()).decode()

    def response(
        self,
        *,
        in_response_to: str,
        destination: str,
        audience: str,
        subject: str,
        attributes: dict[str, list[str]] | None = None,
        sign: bool = True,
        tamper: Tamper | None = None,
    ) -> str:
        """A base64 SAMLResponse, Response and Assertion both signed unless `sign` is off;
        `tamper` changes the message before it is signed."""
        response = self._unsigned(in_response_to, destination, audience, subject, attributes)
        if tamper is not None:
            tamper(response)
        if not sign:
            return base64.b64encode(str(response).encode()).decode()
        return self._signed(response, [response.assertion])

    def response_with_two_assertions(
        self, *, in_response_to: str, destination: str, audience: str, subjects: tuple[str, str]
    ) -> str:
        """One Response carrying two assertions (two people), each signed, and signed itself."""
        first = self._unsigned(in_response_to, destination, audience, subjects[0], None)
        second = self._unsigned(in_response_to, destination, audience, subjects[1], None)
        assertions = [first.assertion, second.assertion]
        first.assertion = assertions
        return self._signed(first, assertions)

    def error_response(
        self, *, in_response_to: str, destination: str, status: str, message: str, sign: bool
    ) -> str:
        """A base64 error Response: top-level Responder with `status` under it, and the school's
        own `message`; signed (the Response, RSA-SHA256) only if `sign`."""
        response = self.server.create_error_response(
            in_response_to,
            destination,
            (status, message),
            sign=sign,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        return base64.b64encode(str(response).encode()).decode()

    def logout_request(
        self,
        *,
        destination: str | None,
        name_id: NameID,
        session_indexes: tuple[str, ...],
        issued: datetime | None = None,
        sign: bool = True,
    ) -> str:
        """A LogoutRequest as the school's IdP sends it over SOAP (no XML declaration: it goes
        into an envelope), issued `issued` (now), signed with the key unless `sign` is off."""
        moment = issued or datetime.now(UTC)
        message = samlp.LogoutRequest(
            id="_" + uuid.uuid4().hex,
            version="2.0",
            issue_instant=saml_time(moment),
            not_on_or_after=saml_time(moment + timedelta(minutes=5)),
            destination=destination,
            issuer=Issuer(text=self.entity_id, format=ENTITY_FORMAT),
            name_id=name_id,
            session_index=[samlp.SessionIndex(text=index) for index in session_indexes],
        )
        return for_envelope(message, self.server.sec if sign else None)

    def logout_response(
        self, in_response_to: str, status: str, *, second: str | None, destination: str
    ) -> str:
        """The school IdP's signed LogoutResponse, by POST to the broker's `destination`."""
        return logout_response(
            self.server.sec,
            self.entity_id,
            in_response_to,
            status,
            second=second,
            destination=destination,
        )


def logout_response(
    security: Any | None,
    issuer: str,
    in_response_to: str,
    status: str,
    *,
    second: str | None = None,
    destination: str | None = None,
) -> str:
    """A LogoutResponse of `issuer` with the top-level `status` (and the second-level
    `second`), signed with the key of `security` (None: unsigned); no XML declaration."""
    code = samlp.StatusCode(value=status)
    if second:
        code.status_code = samlp.StatusCode(value=second)
    message = samlp.LogoutResponse(
        id="_" + uuid.uuid4().hex,
        version="2.0",
        issue_instant=saml_time(datetime.now(UTC)),
        in_response_to=in_response_to,
        destination=destination,
        issuer=Issuer(text=issuer, format=ENTITY_FORMAT),
        status=samlp.Status(status_code=code),
    )
    return for_envelope(message, security)


def for_envelope(message: Any, security: Any | None) -> str:
    """`message` as it goes into a SOAP envelope (no XML declaration), signed with the key of
    `security` (a pysaml2 security context), or unsigned when it is None."""
    if security is None:
        return str(message.to_string().decode())
    message.signature = pre_signature_part(
        message.id, security.my_cert, 1, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
    )
    xml = str(signed_instance_factory(message, security, [(class_name(message), message.id)]))
    return xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml


def expire(seconds_ago: int, *, subject_confirmation: bool = True) -> Tamper:
    """Let the assertion's validity end `seconds_ago` (Conditions, and the bearer
    confirmation too when `subject_confirmation`)."""
    moment = saml_time(datetime.now(UTC) - timedelta(seconds=seconds_ago))
    start = saml_time(datetime.now(UTC) - timedelta(seconds=seconds_ago + 300))

    def tamper(response: samlp.Response) -> None:
        assertion = response.assertion
        assertion.conditions.not_before = start
        assertion.conditions.not_on_or_after = moment
        if subject_confirmation:
            for confirmation in assertion.subject.subject_confirmation:
                confirmation.subject_confirmation_data.not_on_or_after = moment

    return tamper


def set_audience(audience: str) -> Tamper:
    def tamper(response: samlp.Response) -> None:
        for restriction in response.assertion.conditions.audience_restriction:
            for item in restriction.audience:
                item.text = audience

    return tamper


def with_doctype(saml_response: str) -> str:
    """The same message with an internal DTD subset (entity declarations) in front."""
    xml = base64.b64decode(saml_response).decode()
    if xml.startswith("<?xml"):
        declaration, rest = xml.split("?>", 1)
        xml = declaration + "?>" + '<!DOCTYPE x [<!ENTITY e "boom">]>' + rest
    else:
        xml = '<!DOCTYPE x [<!ENTITY e "boom">]>' + xml
    return base64.b64encode(xml.encode()).decode()


class PublisherForger:
    """A SAML client speaking as the service `entity_id` (its key: metadata stays truthful)."""

    def __init__(
        self, entity_id: str, acs_url: str, key_file: Path, cert_file: Path, idp_metadata: str
    ) -> None:
        enable_inprocess_crypto()
        config = SPConfig()
        config.load(
            {
                "entityid": entity_id,
                "key_file": str(key_file),
                "cert_file": str(cert_file),
                "crypto_backend": CRYPTO_BACKEND_NAME,
                "metadata": {"inline": [idp_metadata]},
                "service": {
                    "sp": {
                        "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
                        "authn_requests_signed": False,
                    }
                },
            }
        )
        self.client = Saml2Client(config=config)

    def metadata(self) -> str:
        return str(entity_descriptor(self.client.config))

    def request_url(self, sso_url: str, *, acs_url: str | None = None, **extra: Any) -> str:
        """A Redirect-binding AuthnRequest URL to `sso_url`; `acs_url` names an explicit
        AssertionConsumerServiceURL."""
        if acs_url is not None:
            extra["assertion_consumer_service_url"] = acs_url
        _, request = self.client.create_authn_request(
            sso_url, nameid_format=NAMEID_FORMAT_PERSISTENT, **extra
        )
        info = self.client.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), sso_url, relay_state="state-1"
        )
        return str(dict(info["headers"])["Location"])

    def logout_response(
        self,
        in_response_to: str,
        status: str,
        *,
        issuer: str | None = None,
        sign: bool = True,
        second: str | None = None,
        destination: str | None = None,
    ) -> str:
        """A LogoutResponse as the service would send it over SOAP (no XML declaration: it
        goes into an envelope) or, naming the broker's `destination`, by POST; signed with
        its key unless `sign` is False; `second`: a second-level status code."""
        entity_id = str(self.client.config.entityid)
        return logout_response(
            self.client.sec if sign else None,
            issuer or entity_id,
            in_response_to,
            status,
            second=second,
            destination=destination,
        )
