"""The portals' banner when a SAML entity's certificates in the copy in force all end within 30
days, 15 for a copy fetched from the entry's URL (core/attention.py `certificate_ending`, the
rule of the operator's "Needs attention" page and of the `ketenbroker_school_idp_certificates_
ending` and `ketenbroker_service_sp_certificates_ending` gauges): on the school portal for its
IdP's signing certificates (once they end, the IdP signs with a certificate the broker does not
hold and every login is refused), on the publisher portal for each of its SAML services' signing
or encryption certificates (once they end, the platform's requests are refused, or it cannot
open the assertions encrypted to it).

Read for a school's or publisher's administrator's pages only: per entry its row, its copy in
force and its URL, one query each (a publisher's services: a handful), the copy parsed once per
text, as the report's memo does."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from broker.core.attention import certificate_ending
from broker.core.model import Protocol
from broker.saml.metadata_changes import signing_valid_until
from broker.web.wiring import broker


@functools.lru_cache(maxsize=64)
def _valid_until(xml: str, role: str) -> datetime | None:
    return signing_valid_until(xml, role)


def _ending(role: str, entry_id: str, xml: str | None, now: datetime) -> datetime | None:
    """When the entry's copy `xml`'s certificates end, if within the warning period (or ended)."""
    until = _valid_until(xml, role) if xml else None
    fetched = broker().registry.metadata_url(role, entry_id) is not None
    return until if certificate_ending(until, now, fetched=fetched) else None


def school_certificate_ends(school_id: str) -> datetime | None:
    """When the last signing certificate of the school's IdP ends, if within the warning
    period (or ended); None otherwise, and for a school on OpenID Connect or without a copy."""
    registry = broker().registry
    school = registry.school(school_id)
    if school is None or school.oidc is not None:
        return None
    xml = registry.school_metadata(idp_entity_id=school.idp_entity_id).get(school.idp_entity_id)
    return _ending("idp", school_id, xml, datetime.now(UTC))


def service_certificates_ending(publisher_id: str) -> list[tuple[str, datetime]]:
    """(name, end) of each of the publisher's SAML services whose SP's signing or encryption
    certificates end within the warning period (or ended), by name."""
    registry, now = broker().registry, datetime.now(UTC)
    ending = []
    for service in registry.all_services(publisher_id):
        if service.protocol is not Protocol.SAML:
            continue
        copies = registry.service_metadata(approved_only=False, entity_id=service.entity_id)
        if (until := _ending("sp", service.id, copies.get(service.entity_id), now)) is not None:
            ending.append((service.name, until))
    return sorted(ending)
