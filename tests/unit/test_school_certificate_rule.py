"""core/attention.py `school_certificate_ending`: a SAML school is reported when the last
signing certificate of its IdP's copy in force ends within 30 days (or has ended), with the date;
not when a successor valid beyond that is published beside it (ADFS, 20 days before), not for
an OpenID school, and not without a moment to compare against. saml/metadata_changes.py reads
the end of the last signing certificate (encryption-only keys do not count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.metadata_aggregate import DS, MD, certificate_body, idp_entity
from broker.certificates import self_signed_pair
from broker.core.attention import Entry, Facts, school_certificate_ending
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import OidcUpstream, School
from broker.saml.metadata_changes import signing_fingerprints, signing_valid_until

NOW = datetime(2026, 12, 1, tzinfo=UTC)
IDP = "https://adfs.school.example/adfs/services/trust"


def _facts(until: datetime, **changes: object) -> Facts:
    base: dict[str, object] = {
        "schools": [
            School("12AB", "ADFS school", IDP),
            School(
                "34CD",
                "OIDC",
                "https://op.example",
                oidc=OidcUpstream("https://op.example", "c", "s"),
            ),
        ],
        "services": [],
        "naming_idps": frozenset(),
        "idp_endpoints": {IDP: ()},
        "sp_endpoints": {},
        "sources": [],
        "secrets_in_clear": 0,
        "sealed_only": True,
        "idp_signing_until": {IDP: until, "https://op.example": NOW},
        "now": NOW,
    }
    return Facts(**{**base, **changes})  # type: ignore[arg-type]


def test_a_school_whose_last_certificate_ends_within_30_days_is_reported() -> None:
    ending = list(school_certificate_ending(_facts(NOW + timedelta(days=29))))
    assert ending == [Entry("12AB", "ADFS school", "school_certificate_ending",
                            "signing certificate valid until 2026-12-30")]  # fmt: skip
    assert list(school_certificate_ending(_facts(NOW - timedelta(days=1))))  # ended
    assert not list(school_certificate_ending(_facts(NOW + timedelta(days=31))))
    assert not list(school_certificate_ending(_facts(NOW, now=None)))


def test_a_school_given_by_url_is_reported_within_15_days_only() -> None:
    """Its copy is fetched by every refresh, and ADFS publishes the next certificate 20 days
    ahead: between 30 and 15 days a healthy school has nothing wrong (no yearly false alarm)."""
    by_url = {"school_refresh": {"12AB": RefreshRecord(NOW)}}
    assert not list(school_certificate_ending(_facts(NOW + timedelta(days=25), **by_url)))
    assert not list(school_certificate_ending(_facts(NOW + timedelta(days=16), **by_url)))
    assert list(school_certificate_ending(_facts(NOW + timedelta(days=14), **by_url)))
    assert list(school_certificate_ending(_facts(NOW + timedelta(days=25))))  # given as a file


def _entity(*bodies: str) -> str:
    """A standalone IdP document with one signing KeyDescriptor per certificate body."""
    one = idp_entity(IDP, "https://adfs.school.example/sso", bodies[0])
    start = one.index("<md:KeyDescriptor")
    end = one.index("</md:KeyDescriptor>") + len("</md:KeyDescriptor>")
    keys = "".join(one[start:end].replace(bodies[0], body) for body in bodies)
    declared = f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" '
    return (one[:start] + keys + one[end:]).replace("<md:EntityDescriptor ", declared, 1)


def test_the_last_signing_certificate_counts() -> None:
    ending = certificate_body(self_signed_pair("ending", days=10)[1])
    following = certificate_body(self_signed_pair("following", days=365)[1])
    alone = _entity(ending)
    until = signing_valid_until(alone, "idp")
    assert until is not None and until < datetime.now(UTC) + timedelta(days=11)
    both = _entity(following, ending)
    later = signing_valid_until(both, "idp")
    assert later is not None and later > datetime.now(UTC) + timedelta(days=300)
    (added,) = set(signing_fingerprints(both, "idp")) - set(signing_fingerprints(alone, "idp"))
    assert added == signing_fingerprints(_entity(following), "idp")[0]
    encryption_only = both.replace('use="signing"', 'use="encryption"', 1)
    assert signing_valid_until(encryption_only, "idp") == until
    assert signing_valid_until("", "idp") is None
