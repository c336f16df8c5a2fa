"""What changed between a school's or publisher's registered SAML metadata and a new copy, in
lines an operator can check against what the school or publisher sent: certificates by SHA-256
fingerprint and end of validity, endpoints by kind, binding and URL.

Both copies are metadata the broker already accepted or has just checked (`metadata_check`);
this module only reads them. A copy that is empty (an entry registered without metadata of its
own) has nothing: everything in the new copy is then "added".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from lxml import etree

from broker.saml.metadata_check import MD
from broker.saml.xml_parsing import parse_untrusted

DS = "http://www.w3.org/2000/09/xmldsig#"
BINDING_PREFIX = "urn:oasis:names:tc:SAML:2.0:bindings:"
# A KeyDescriptor without `use` serves both (SAML metadata 2.4.1.1).
BOTH_USES = "signing and encryption"


@dataclass(frozen=True, order=True)
class _Certificate:
    use: str
    fingerprint: str
    not_after: datetime | None


@dataclass(frozen=True, order=True)
class _Endpoint:
    kind: str
    binding: str
    index: str
    location: str


def _fingerprint(der: bytes) -> str:
    # As `openssl x509 -fingerprint -sha256` and `keys status` show it (colon hex, upper case).
    return hashlib.sha256(der).digest().hex(":").upper()


def _certificates(descriptor: etree._Element) -> set[_Certificate]:
    found: set[_Certificate] = set()
    for key in descriptor.findall(f"{{{MD}}}KeyDescriptor"):
        use = key.get("use") or BOTH_USES
        for element in key.iter(f"{{{DS}}}X509Certificate"):
            try:
                der = base64.b64decode("".join((element.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                der = (element.text or "").encode()
            try:
                not_after: datetime | None = x509.load_der_x509_certificate(der).not_valid_after_utc
            except ValueError:
                not_after = None  # not a certificate the broker could read: shown as such
            found.add(_Certificate(use, _fingerprint(der), not_after))
    return found


def _endpoints(descriptor: etree._Element) -> set[_Endpoint]:
    found: set[_Endpoint] = set()
    for element in descriptor:
        location = element.get("Location") if isinstance(element.tag, str) else None
        if location is None:
            continue
        response = element.get("ResponseLocation")
        found.add(
            _Endpoint(
                etree.QName(element).localname,
                element.get("Binding", "").removeprefix(BINDING_PREFIX),
                element.get("index", ""),
                location + (f" (responses to {response})" if response else ""),
            )
        )
    return found


def _descriptor(xml: str, role: str) -> etree._Element | None:
    if not xml:
        return None
    tag = "IDPSSODescriptor" if role == "idp" else "SPSSODescriptor"
    try:
        return parse_untrusted(xml.encode()).find(f"{{{MD}}}{tag}")
    except etree.XMLSyntaxError:
        # A registered copy from before today's checks: it had nothing the broker could use.
        return None


def _certificate_line(change: str, cert: _Certificate, now: datetime) -> str:
    if cert.not_after is None:
        until = "not a readable X.509 certificate"
    else:
        expired = " (EXPIRED)" if cert.not_after <= now else ""
        until = f"valid until {cert.not_after.date().isoformat()}{expired}"
    return f"{cert.use} certificate {change}: SHA-256 {cert.fingerprint}, {until}"


def _endpoint_name(endpoint: _Endpoint) -> str:
    index = f" index {endpoint.index}" if endpoint.index else ""
    return f"{endpoint.kind} ({endpoint.binding or 'no binding'}{index})"


def metadata_changes(
    old_xml: str, new_xml: str, role: str, now: datetime | None = None
) -> list[str]:
    """The certificate and endpoint differences between two copies of one entity's metadata
    (`role` "idp" or "sp"); empty when neither changed (other content may have)."""
    moment = now or datetime.now(UTC)
    old, new = _descriptor(old_xml, role), _descriptor(new_xml, role)
    old_certs = _certificates(old) if old is not None else set()
    new_certs = _certificates(new) if new is not None else set()
    lines = [_certificate_line("added", c, moment) for c in sorted(new_certs - old_certs)]
    lines += [_certificate_line("removed", c, moment) for c in sorted(old_certs - new_certs)]
    old_points = _endpoints(old) if old is not None else set()
    new_points = _endpoints(new) if new is not None else set()
    lines += [
        _endpoint_line(*pair) for pair in _paired(old_points - new_points, new_points - old_points)
    ]
    return lines


def _paired(
    gone: set[_Endpoint], came: set[_Endpoint]
) -> list[tuple[_Endpoint | None, _Endpoint | None]]:
    """(before, after) pairs: one endpoint of a kind, binding and index gone and one come is a
    move; the rest stand alone (after None: removed; before None: added)."""
    pairs: list[tuple[_Endpoint | None, _Endpoint | None]] = []
    for key in sorted({_slot(e) for e in gone | came}):
        was = sorted(e for e in gone if _slot(e) == key)
        now = sorted(e for e in came if _slot(e) == key)
        if len(was) == len(now) == 1:
            pairs.append((was[0], now[0]))
        else:
            pairs += [(e, None) for e in was] + [(None, e) for e in now]
    return pairs


def _slot(endpoint: _Endpoint) -> tuple[str, str, str]:
    return endpoint.kind, endpoint.binding, endpoint.index


def _endpoint_line(before: _Endpoint | None, after: _Endpoint | None) -> str:
    if before is not None and after is not None:
        return f"endpoint moved: {_endpoint_name(after)} {before.location} -> {after.location}"
    if after is not None:
        return f"endpoint added: {_endpoint_name(after)} {after.location}"
    assert before is not None
    return f"endpoint removed: {_endpoint_name(before)} {before.location}"


# What the certificates that break logins when the broker holds an old one are for, by role:
# an IdP's signing ones (its Responses); an SP's signing ones (its AuthnRequests and
# LogoutRequests) and its encryption ones (the assertions the broker encrypts to it).
KEY_USES = {"idp": ("signing",), "sp": ("signing", "encryption")}


def _keys(xml: str, role: str, use: str | None = None) -> set[_Certificate]:
    """The copy's certificates for one `use` of KEY_USES (None: any of them)."""
    descriptor = _descriptor(xml, role)
    if descriptor is None:
        return set()
    uses = KEY_USES[role] if use is None else (use,)
    return {c for c in _certificates(descriptor) if c.use in (*uses, BOTH_USES)}


def signing_fingerprints(xml: str, role: str) -> tuple[str, ...]:
    """The SHA-256 fingerprints of the copy's certificates of KEY_USES, sorted: what a refresh
    that changed an entity's keys logs (url_refresh.py)."""
    return tuple(sorted(c.fingerprint for c in _keys(xml, role)))


def signing_valid_until(xml: str, role: str) -> datetime | None:
    """When the last of the copy's certificates for a use of KEY_USES ends, the earliest such
    end of the uses: after it no certificate the copy holds for that use is in its validity
    (ADFS publishes the next one 20 days before the current one ends, so during a roll-over
    the new one's end counts). None: no readable certificate for any of them."""
    held = _keys(xml, role)  # the copy parsed once, for every use
    ends = []
    for use in KEY_USES[role]:
        last = [c.not_after for c in held if c.use in (use, BOTH_USES) and c.not_after]
        if last:
            ends.append(max(last))
    return min(ends) if ends else None
