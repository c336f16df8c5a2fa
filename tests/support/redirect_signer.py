"""A hand-built HTTP-Redirect sender, signing and URL-encoding its query the way other SAML
stacks do, so tests can send the broker what SimpleSAMLphp, ADFS or python3-saml send.

The encoders differ only where RFC 3986 leaves room (SAML bindings 3.4.4.1 makes the receiver
verify over the bytes as received):

- `python`: `urllib.parse.quote_plus` (pysaml2): `~` as is, space `+`, uppercase hex;
- `php`: PHP's `urlencode` (SimpleSAMLphp's HTTPRedirect): `~` as `%7E`, space `+`;
- `dotnet`: .NET's `HttpUtility.UrlEncode` (ADFS): lowercase hex, `!*()` as is, space `+`;
- `rfc3986`: PHP's `rawurlencode`, JavaScript's `encodeURIComponent` and the like: space `%20`.
"""

from __future__ import annotations

import base64
import datetime
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from string import ascii_letters, digits
from urllib.parse import quote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from tests.support.pki import self_signed_builder

XMLDSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ECDSA_SHA1 = f"{XMLDSIG_MORE}ecdsa-sha1"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
_DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _encoder(safe: str, *, space: str, lower: bool) -> Callable[[str], str]:
    keep = frozenset(ascii_letters + digits + safe)
    pattern = "%{:02x}" if lower else "%{:02X}"

    def encode(value: str) -> str:
        out = []
        for byte in value.encode("utf-8"):
            char = chr(byte)
            if char in keep:
                out.append(char)
            elif char == " ":
                out.append(space)
            else:
                out.append(pattern.format(byte))
        return "".join(out)

    return encode


ENCODERS: dict[str, Callable[[str], str]] = {
    "python": lambda value: quote_plus(value, safe=""),
    "php": _encoder("-_.", space="+", lower=False),
    "dotnet": _encoder("-_.!*()", space="+", lower=True),
    "rfc3986": _encoder("-_.~", space="%20", lower=False),
}


@dataclass(frozen=True)
class Signer:
    """A signing key and its self-signed certificate (base64 DER, as metadata carries it)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: str

    @property
    def sigalg(self) -> str:
        kind = "rsa" if isinstance(self.key, rsa.RSAPrivateKey) else "ecdsa"
        return f"{XMLDSIG_MORE}{kind}-sha256"

    def sign(self, octets: bytes, sigalg: str, *, der: bool = False) -> bytes:
        """The SignatureValue `sigalg` names (its hash from the URI's end); an ECDSA one as
        XML-DSig wants it (r and s concatenated), or as the DER sequence when `der`."""
        digest = _DIGESTS[sigalg.rsplit("-", 1)[-1]]()
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(octets, padding.PKCS1v15(), digest)
        signature = self.key.sign(octets, ec.ECDSA(digest))
        if der:
            return signature
        r, s = decode_dss_signature(signature)
        size = (self.key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def make_signer(kind: str) -> Signer:
    """`kind`: "rsa" (2048 bits) or an EC curve: "p256", "p384", "p521"."""
    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
    }
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(curves[kind])
    cert = self_signed_builder(key.public_key(), f"redirect test {kind}").sign(key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    return Signer(key, base64.b64encode(der).decode("ascii"))


def deflated(xml: str) -> str:
    """The binding's DEFLATE encoding: raw deflate, then base64."""
    return base64.b64encode(zlib.compress(xml.encode("utf-8"))[2:-4]).decode("ascii")


def query_parts(
    param: str, xml: str, relay_state: str | None, sigalg: str | None, encoder: str
) -> list[str]:
    """`param=…[&RelayState=…][&SigAlg=…]`, each value encoded by `encoder`, in the binding's
    order."""
    encode = ENCODERS[encoder]
    parts = [f"{param}={encode(deflated(xml))}"]
    if relay_state is not None:
        parts.append(f"RelayState={encode(relay_state)}")
    if sigalg is not None:
        parts.append(f"SigAlg={encode(sigalg)}")
    return parts


def sign_parts(parts: list[str], signer: Signer, sigalg: str, encoder: str) -> str:
    """The query: `parts` joined, signed as they stand, then `&Signature=…`."""
    signed = "&".join(parts)
    signature = base64.b64encode(signer.sign(signed.encode("ascii"), sigalg)).decode("ascii")
    return f"{signed}&Signature={ENCODERS[encoder](signature)}"


def signed_query(
    param: str,
    xml: str,
    relay_state: str | None,
    signer: Signer,
    *,
    encoder: str = "python",
    sigalg: str | None = None,
) -> str:
    """A signed Redirect query for `xml` ("SAMLRequest" or "SAMLResponse" as `param`)."""
    sigalg = sigalg or signer.sigalg
    return sign_parts(
        query_parts(param, xml, relay_state, sigalg, encoder), signer, sigalg, encoder
    )


# -- messages --------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return f"_{uuid.uuid4().hex}"


def authn_request(issuer: str, destination: str, acs_url: str, request_id: str = "") -> str:
    return (
        f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" '
        f'ID="{request_id or new_id()}" Version="2.0" IssueInstant="{_now()}" '
        f'Destination="{destination}" AssertionConsumerServiceURL="{acs_url}" '
        f'ProtocolBinding="{POST_BINDING}">'
        f"<saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>"
    )


def logout_request(
    issuer: str,
    destination: str,
    name_id: str,
    *,
    sp_name_qualifier: str = "",
    request_id: str = "",
) -> str:
    qualifier = f' SPNameQualifier="{sp_name_qualifier}"' if sp_name_qualifier else ""
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" '
        f'ID="{request_id or new_id()}" Version="2.0" IssueInstant="{_now()}" '
        f'Destination="{destination}"><saml:Issuer>{issuer}</saml:Issuer>'
        f'<saml:NameID Format="{PERSISTENT}"{qualifier}>{name_id}</saml:NameID>'
        "</samlp:LogoutRequest>"
    )


def logout_response(issuer: str, destination: str, in_response_to: str) -> str:
    return (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{new_id()}" '
        f'Version="2.0" IssueInstant="{_now()}" Destination="{destination}" '
        f'InResponseTo="{in_response_to}"><saml:Issuer>{issuer}</saml:Issuer>'
        f'<samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>'
        "</samlp:LogoutResponse>"
    )


def with_signing_certs(metadata: str, descriptor: str, certs: list[str]) -> str:
    """`metadata` with a signing KeyDescriptor per cert added to its `descriptor`
    ("SPSSODescriptor" or "IDPSSODescriptor"), before the keys it already lists."""
    root = etree.fromstring(metadata.encode("utf-8"))
    role = root.find(f"{{{MD}}}{descriptor}")
    assert role is not None, descriptor
    first = role.find(f"{{{MD}}}KeyDescriptor")
    assert first is not None
    for cert in certs:
        key = etree.Element(f"{{{MD}}}KeyDescriptor", use="signing")
        data = etree.SubElement(etree.SubElement(key, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = cert
        first.addprevious(key)
    return str(etree.tostring(root, encoding="unicode"))
