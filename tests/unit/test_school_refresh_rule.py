"""`school_metadata_not_refreshed`: a school given by URL whose copy the metadata refresh has not
accepted for 3 days, or never since it was recorded and refused now, is the operator's; a
refusal of a day, a school given as a file and an OpenID school are not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from broker.core.attention import Facts, attention_report, school_metadata_not_refreshed
from broker.core.metadata_refresh import REFRESH_WARNING, RefreshRecord, not_refreshed
from broker.core.model import OidcUpstream, School

NOW = datetime(2026, 12, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_refusal_of_a_day_waits_and_one_of_days_is_said_with_its_reason() -> None:
    assert not_refreshed(RefreshRecord(NOW - DAY), NOW) is None
    assert not_refreshed(RefreshRecord(NOW - DAY, NOW, "metadata_invalid"), NOW) is None
    assert not_refreshed(RefreshRecord(NOW - REFRESH_WARNING + DAY / 24), NOW) is None
    assert not_refreshed(RefreshRecord(NOW - 4 * DAY, NOW, "metadata_invalid"), NOW) == (
        "not refreshed since 2026-11-27; last refused 2026-12-01 (metadata_invalid)"
    )
    # No refusal either: the refresh itself does not run.
    assert "does the refresh timer run?" in (not_refreshed(RefreshRecord(NOW - 4 * DAY), NOW) or "")
    # A success after the last refusal: no refusal said.
    assert not_refreshed(RefreshRecord(NOW - 4 * DAY, NOW - 5 * DAY, "other_entity_id"), NOW) == (
        "not refreshed since 2026-11-27; no refusal recorded (does the refresh timer run?)"
    )
    # Given by URL before revision 0028: nothing known until the refresh says something.
    assert not_refreshed(RefreshRecord(), NOW) is None
    assert not_refreshed(RefreshRecord(None, NOW, "other_entity_id"), NOW) == (
        "no refresh accepted yet; last refused 2026-12-01 (other_entity_id)"
    )


def test_the_rule_lists_the_saml_schools_with_such_a_record() -> None:
    oidc = OidcUpstream("https://op.example", "client", "secret", ("RS256",))
    schools = [
        School("10AA", "Failing", "https://idp.a.example"),
        School("20BB", "Stale", "https://idp.b.example"),
        School("30CC", "Fresh", "https://idp.c.example"),
        School("40DD", "A file", "https://idp.d.example"),
        School("50EE", "OpenID", "https://op.example", oidc=oidc),
    ]
    old = RefreshRecord(NOW - 10 * DAY, NOW - DAY, "metadata_invalid")
    facts = Facts(
        schools=schools,
        services=[],
        naming_idps=frozenset(),
        idp_endpoints={s.idp_entity_id: () for s in schools},
        sp_endpoints={},
        sources=[],
        secrets_in_clear=0,
        sealed_only=False,
        now=NOW,
        school_refresh={
            "20BB": old,
            "10AA": RefreshRecord(None, NOW, "changed_meanwhile"),
            "30CC": RefreshRecord(NOW - DAY),
            "50EE": old,  # not SAML any more: nothing to refresh
        },
    )
    found = {(e.id, e.reason) for e in school_metadata_not_refreshed(facts)}
    assert found == {
        ("20BB", "school_metadata_not_refreshed"),
        ("10AA", "school_metadata_not_refreshed"),
    }
    report = attention_report(facts, shown=None)
    (section,) = [s for s in report.sections if s.kind.code == "schools_metadata_not_refreshed"]
    assert [e.id for e in section.entries] == ["10AA", "20BB"]
    assert list(school_metadata_not_refreshed(replace(facts, now=None))) == []
