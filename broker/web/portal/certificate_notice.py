"""The school portal's banner when its SAML IdP's signing certificates in the copy in force all
end within 30 days, 15 for a copy fetched from the school's URL (core/attention.py
`certificate_ending`, the rule of the operator's "Needs
attention" page and of the `ketenbroker_school_idp_certificates_ending` gauge): once they end,
the IdP signs with a certificate the broker does not hold and every login is refused.

Read for a school administrator's pages only: the school's IdP copy in force and whether it was
given by URL, in one query (`school_idp_copy`; the copy parsed once per text, as the report's
memo does)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from broker.core.attention import certificate_ending
from broker.saml.metadata_changes import signing_valid_until
from broker.web.wiring import broker


@functools.lru_cache(maxsize=64)
def _valid_until(xml: str) -> datetime | None:
    return signing_valid_until(xml, "idp")


def school_certificate_ends(school_id: str) -> datetime | None:
    """When the last signing certificate of the school's IdP ends, if within the warning
    period (or ended); None otherwise, and for a school on OpenID Connect or without a copy."""
    copy = broker().registry.school_idp_copy(school_id)
    if copy is None:
        return None
    until = _valid_until(copy.xml) if copy.xml else None
    return until if certificate_ending(until, datetime.now(UTC), fetched=copy.fetched) else None
