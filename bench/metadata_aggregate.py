"""A synthetic signed federation aggregate, and how long the broker takes to read one.

    python bench/metadata_aggregate.py [-n 5000] [--repeat 3] [--keep FILE]

Builds an md:EntitiesDescriptor of N entities (half school IdPs, half publisher SPs, each with
its own certificate, organisation and contact, about 2 KB apiece, like a national
federation's feed), signs it with RSA-SHA256 through the `xmlsec` binding directly (not the
broker's code), then times the broker's `read_metadata` on it: parse, verify the signature
against the pinned certificate, split and check every entity. It also times storing the result
in a fresh SQLite registry (what `ketenbroker metadata refresh` does after reading) and prints
medians. The tests use the builders below for their own small aggregates.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import statistics
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from broker.certificates import self_signed_pair
from broker.core.federation import FederationEntity

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
MDRPI = "urn:oasis:names:tc:SAML:metadata:rpi"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_body(cert_pem: bytes) -> str:
    """The base64 DER of a PEM certificate, as metadata's ds:X509Certificate carries it."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return base64.b64encode(der).decode()


def _common(entity_id: str, name: str, cert: str) -> tuple[str, str]:
    key = (
        f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )
    tail = (
        f'<md:Organization><md:OrganizationName xml:lang="en">{name}</md:OrganizationName>'
        f'<md:OrganizationDisplayName xml:lang="en">{name}</md:OrganizationDisplayName>'
        f'<md:OrganizationURL xml:lang="en">{entity_id}</md:OrganizationURL></md:Organization>'
        '<md:ContactPerson contactType="technical"><md:GivenName>Service desk</md:GivenName>'
        "<md:EmailAddress>mailto:servicedesk@example.org</md:EmailAddress></md:ContactPerson>"
    )
    return key, tail


def sp_entity(entity_id: str, acs_url: str, cert: str, name: str = "Publisher") -> str:
    """A publisher's SP EntityDescriptor (namespace prefixes bound by the aggregate)."""
    key, tail = _common(entity_id, name, cert)
    return (
        f'<md:EntityDescriptor entityID="{entity_id}">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'AuthnRequestsSigned="false">{key}'
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>"
        f'<md:AssertionConsumerService Binding="{POST}" Location="{acs_url}" index="0"/>'
        f"</md:SPSSODescriptor>{tail}</md:EntityDescriptor>"
    )


def idp_entity(entity_id: str, sso_url: str, cert: str, name: str = "School") -> str:
    """A school's IdP EntityDescriptor."""
    key, tail = _common(entity_id, name, cert)
    return (
        f'<md:EntityDescriptor entityID="{entity_id}">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key}"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>"
        f'<md:SingleSignOnService Binding="{REDIRECT}" Location="{sso_url}"/>'
        f"</md:IDPSSODescriptor>{tail}</md:EntityDescriptor>"
    )


def with_slo(
    entity: str, location: str, *, response: str | None = None, binding: str = REDIRECT
) -> str:
    """`entity` (sp_entity, idp_entity) with a SingleLogoutService, where the schema puts it
    (before NameIDFormat); `response`: its ResponseLocation."""
    extra = f' ResponseLocation="{response}"' if response is not None else ""
    slo = f'<md:SingleLogoutService Binding="{binding}" Location="{location}"{extra}/>'
    return entity.replace("<md:NameIDFormat>", slo + "<md:NameIDFormat>", 1)


def registered_by(entity: str, authority: str) -> str:
    """`entity` (sp_entity, idp_entity) with its own mdrpi:RegistrationInfo, where the schema
    puts Extensions (the EntityDescriptor's first child)."""
    info = (
        f'<md:Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="{MDRPI}" '
        f'registrationAuthority="{authority}"/></md:Extensions>'
    )
    opening = entity.index(">") + 1
    return entity[:opening] + info + entity[opening:]


def signed_aggregate(
    entities: Iterable[str],
    key_pem: bytes,
    *,
    valid_until: datetime,
    name: str = "https://federation.example/metadata",
    published: datetime | None = None,
) -> bytes:
    """An md:EntitiesDescriptor around `entities`, enveloped-signed (RSA-SHA256, exclusive
    c14n, SHA-256) with `key_pem`, the signature as its first child. `published`: its
    mdrpi:PublicationInfo/@creationInstant, as federations publish it (none by default)."""
    body = "".join(entities)
    if published is not None:
        body = (
            f'<md:Extensions><mdrpi:PublicationInfo xmlns:mdrpi="{MDRPI}" '
            f'creationInstant="{saml_time(published)}" publisher="{name}"/></md:Extensions>' + body
        )
    text = (
        f'<md:EntitiesDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" ID="_agg{int(time.time())}" '
        f'Name="{name}" validUntil="{saml_time(valid_until)}">{body}</md:EntitiesDescriptor>'
    )
    root = etree.fromstring(text.encode(), parser=etree.XMLParser(huge_tree=True))
    signature = xmlsec.template.create(
        root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256
    )
    root.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.constants.TransformSha256, uri=f"#{root.get('ID')}"
    )
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    context.register_id(root, "ID")
    context.sign(signature)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def synthetic_entities(count: int) -> list[str]:
    """`count` entities, alternately IdP and SP, each with a certificate of its own (a handful
    of real ones reused: generating 5,000 RSA keys would time the generator, not the reader)."""
    certs = [certificate_body(self_signed_pair(f"member-{i}")[1]) for i in range(8)]
    entities = []
    for i in range(count):
        cert = certs[i % len(certs)]
        if i % 2:
            base = f"https://sp{i}.publisher.example"
            entities.append(sp_entity(f"{base}/metadata", f"{base}/acs", cert, f"Publisher {i}"))
        else:
            base = f"https://idp{i}.school.example"
            entities.append(idp_entity(f"{base}/metadata", f"{base}/sso", cert, f"School {i}"))
    return entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="entities in the aggregate")
    parser.add_argument("--repeat", type=int, default=3, help="timed reads")
    parser.add_argument("--keep", type=Path, default=None, help="also write the aggregate here")
    args = parser.parse_args()

    from broker.registry import SqlRegistry, migrate
    from broker.saml.aggregate import read_metadata

    key_pem, cert_pem = self_signed_pair("federation signer")
    started = time.perf_counter()
    data = signed_aggregate(
        synthetic_entities(args.n), key_pem, valid_until=datetime.now(UTC) + timedelta(days=7)
    )
    built = time.perf_counter() - started
    if args.keep:
        args.keep.write_bytes(data)
    print(f"aggregate: {args.n} entities, {len(data) / 2**20:.1f} MiB (built in {built:.1f} s)")

    reads: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        read = read_metadata(
            data,
            certificates=[cert_pem],
            require_signature=True,
            require_valid_until=True,
            roles=("idp", "sp"),
            now=datetime.now(UTC),
            max_validity=timedelta(days=28),  # the default; the feed is valid for 7
        )
        reads.append(time.perf_counter() - started)
    print(
        f"read (parse + verify signature + check {len(read.entities)} entities): "
        f"median {statistics.median(reads):.2f} s, min {min(reads):.2f} s over {args.repeat}"
    )

    with tempfile.TemporaryDirectory(prefix="kb-bench-aggregate-") as folder:
        url = f"sqlite:///{folder}/registry.sqlite3"
        migrate(url)
        registry = SqlRegistry(url)
        digest = hashlib.sha256(data).hexdigest()
        started = time.perf_counter()
        registry.federation.store("bench", digest, read.dates, read.entities, datetime.now(UTC))
        stored = time.perf_counter() - started
        registry.close()
        print(f"store in the registry (SQLite, one transaction): {stored:.2f} s")
        print(f"refresh total (read + store): {statistics.median(reads) + stored:.2f} s")
        rebuild(folder, read.entities)


def rebuild(folder: str, entities: Iterable[FederationEntity]) -> None:
    """What each worker pays to (re)build its pysaml2 views, in the worst case that every entity
    of the aggregate is registered: at its first request, and after a refresh that changed one
    entity (the parsed form of the others is reused)."""
    from broker.cli.instance import init_instance
    from broker.config import load_settings
    from broker.saml.entities import ParsedMetadata, idp_config, sp_config
    from broker.saml.xmlsig import enable_inprocess_crypto

    enable_inprocess_crypto()
    settings = load_settings(init_instance(Path(folder) / "kb", "https://kb.example", "kb", "KB"))
    services = [e.xml for e in entities if e.role == "sp"]
    schools = [e.xml for e in entities if e.role == "idp"]
    views = (ParsedMetadata(), ParsedMetadata())

    def build(service_xml: list[str]) -> float:
        started = time.perf_counter()
        views[0].load(idp_config(settings, []), service_xml)
        views[1].load(sp_config(settings, []), schools)
        return time.perf_counter() - started

    first = build(services)
    changed = build([services[0].replace("Publisher", "Publisher (renamed)"), *services[1:]])
    print(
        f"worker view with all {len(services)} services and {len(schools)} schools registered: "
        f"first build {first:.2f} s, rebuild after one entity changed {changed:.2f} s"
    )


if __name__ == "__main__":
    main()
