"""core/attention.py `service_certificate_ending` and `service_metadata_not_refreshed`: a SAML
service is reported when its SP's signing or its encryption certificates in the copy in force
all end within 30 days (15 for a service given by URL), and when its URL's copy has not been
accepted for 3 days; not an OpenID client, and not without a moment to compare against.
saml/metadata_changes.py reads an SP's ending as the earlier of its signing and its encryption
certificates' last ends (a key without `use` serves both)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from broker.certificates import self_signed_pair
from broker.core.attention import (
    Entry,
    Facts,
    attention_report,
    service_certificate_ending,
    service_metadata_not_refreshed,
)
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import ClientAuthMethod, OidcClient, Protocol, Service
from broker.saml.metadata_changes import signing_fingerprints, signing_valid_until

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SP = "https://platform.uitgever.example/saml"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def _facts(until: datetime, **changes: object) -> Facts:
    base: dict[str, object] = {
        "schools": [],
        "services": [
            Service("platform", "Platform", SP, None),
            Service(
                "app",
                "App",
                "app",
                None,
                protocol=Protocol.OIDC,
                oidc=OidcClient(("https://app.example/cb",), ClientAuthMethod.NONE),
            ),
        ],
        "naming_idps": frozenset(),
        "idp_endpoints": {},
        "sp_endpoints": {SP: ()},
        "sources": [],
        "secrets_in_clear": 0,
        "sealed_only": True,
        "sp_signing_until": {SP: until, "app": NOW},
        "now": NOW,
    }
    return Facts(**{**base, **changes})  # type: ignore[arg-type]


def test_a_service_whose_certificates_end_within_30_days_is_reported() -> None:
    ending = list(service_certificate_ending(_facts(NOW + timedelta(days=29))))
    assert ending == [
        Entry(
            "platform",
            "Platform",
            "service_certificate_ending",
            "signing or encryption certificate valid until 2026-12-30",
        )
    ]
    assert list(service_certificate_ending(_facts(NOW - timedelta(days=1))))  # ended
    assert not list(service_certificate_ending(_facts(NOW + timedelta(days=31))))
    assert not list(service_certificate_ending(_facts(NOW, now=None)))
    # Given by URL: the refresh brings the next one; 15 days.
    by_url = {"service_refresh": {"platform": RefreshRecord(NOW)}}
    assert not list(service_certificate_ending(_facts(NOW + timedelta(days=16), **by_url)))
    assert list(service_certificate_ending(_facts(NOW + timedelta(days=14), **by_url)))
    kinds = attention_report(_facts(NOW + timedelta(days=3))).sections
    assert [s.kind.code for s in kinds] == ["services_certificate_ending"]


def test_a_service_not_refreshed_for_3_days_is_reported() -> None:
    facts = _facts(
        NOW + timedelta(days=400),
        service_refresh={
            "platform": RefreshRecord(NOW - timedelta(days=4), NOW, "metadata_invalid")
        },
    )
    (entry,) = service_metadata_not_refreshed(facts)
    assert (entry.id, entry.reason) == ("platform", "service_metadata_not_refreshed")
    assert "metadata_invalid" in entry.detail
    fresh = replace(facts, service_refresh={"platform": RefreshRecord(NOW - timedelta(days=1))})
    assert list(service_metadata_not_refreshed(fresh)) == []
    assert list(service_metadata_not_refreshed(replace(facts, now=None))) == []
    # The schools' records are not the services'.
    assert list(service_metadata_not_refreshed(replace(facts, service_refresh={}))) == []


def _sp(*keys: tuple[str | None, str]) -> str:
    """An SP document with a KeyDescriptor per (use, certificate body)."""
    descriptors = "".join(
        (f'<md:KeyDescriptor use="{use}">' if use else "<md:KeyDescriptor>")
        + f"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for use, body in keys
    )
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{SP}">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{descriptors}</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def _body(days: int) -> str:
    pem = self_signed_pair(f"{days} days", days=days)[1].decode()
    return "".join(line for line in pem.splitlines() if "-----" not in line)


def test_an_sps_ending_is_its_signing_or_its_encryption_keys_whichever_ends_first() -> None:
    short, long = _body(10), _body(365)
    soon = datetime.now(UTC) + timedelta(days=11)
    later = datetime.now(UTC) + timedelta(days=300)
    signing_ends = signing_valid_until(_sp(("signing", short), ("encryption", long)), "sp")
    assert signing_ends is not None and signing_ends < soon
    encryption_ends = signing_valid_until(_sp(("signing", long), ("encryption", short)), "sp")
    assert encryption_ends is not None and encryption_ends < soon
    both_rolled = _sp(("signing", long), ("signing", short), ("encryption", short), (None, long))
    rolled_until = signing_valid_until(both_rolled, "sp")
    assert rolled_until is not None and rolled_until > later
    # An SP's fingerprints count its encryption keys too (an IdP's only its signing ones).
    encryption_only = _sp(("encryption", short))
    assert len(signing_fingerprints(encryption_only, "sp")) == 1
    assert signing_valid_until("", "sp") is None
