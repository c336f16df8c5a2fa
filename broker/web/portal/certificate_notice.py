"""The portals' banner when a SAML entity's certificates in the copy in force all end within 30
days, 15 for a copy fetched from the entry's URL (core/attention.py `certificate_ending`, the
rule of the operator's "Needs attention" page and of the `ketenbroker_school_idp_certificates_
ending` and `ketenbroker_service_sp_certificates_ending` gauges): on the school portal for its
IdP's signing certificates (once they end, the IdP signs with a certificate the broker does not
hold and every login is refused), on the publisher portal for each of its SAML services' signing
or encryption certificates (once they end, the platform's requests are refused, or it cannot
open the assertions encrypted to it).

Read for a school's or publisher's administrator's pages only: a school's IdP copy in force and
whether it was given by URL, in one query (`school_idp_copy`); a publisher's SAML services'
copies in force and URLs in two (`publisher_sp_copies`); each copy parsed once per text, as the
report's memo does."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from broker.core.attention import certificate_ending
from broker.saml.metadata_changes import signing_valid_until
from broker.web.wiring import broker


@functools.lru_cache(maxsize=64)
def _valid_until(xml: str, role: str) -> datetime | None:
    return signing_valid_until(xml, role)


def _ending(role: str, xml: str | None, fetched: bool, now: datetime) -> datetime | None:
    """When the copy `xml`'s certificates end, if within the warning period (or ended)."""
    until = _valid_until(xml, role) if xml else None
    return until if certificate_ending(until, now, fetched=fetched) else None


def school_certificate_ends(school_id: str) -> datetime | None:
    """When the last signing certificate of the school's IdP ends, if within the warning
    period (or ended); None otherwise, and for a school on OpenID Connect or without a copy."""
    copy = broker().registry.school_idp_copy(school_id)
    if copy is None:
        return None
    return _ending("idp", copy.xml, copy.fetched, datetime.now(UTC))


def service_certificates_ending(publisher_id: str) -> list[tuple[str, datetime]]:
    """(name, end) of each of the publisher's SAML services whose SP's signing or encryption
    certificates end within the warning period (or ended), by name."""
    now = datetime.now(UTC)
    ending = []
    for name, copy in broker().registry.publisher_sp_copies(publisher_id):
        if (until := _ending("sp", copy.xml, copy.fetched, now)) is not None:
            ending.append((name, until))
    return sorted(ending)
