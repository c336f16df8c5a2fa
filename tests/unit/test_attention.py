"""core/attention.py on its own: each rule finds its entries and no others, a kind counts all
and lists the first `shown`, the kinds that refuse logins come first, and secrets in clear count
only while the registry is not sealed-only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from broker.core.attention import Facts, Severity, attention_report
from broker.core.federation import (
    ENTITY_EXPIRED,
    ENTITY_ID_REPEATED,
    ENTITY_UNUSABLE,
    LeftOut,
    SourceHealth,
    SourceRecord,
    SourceState,
    left_out_in,
    unconfigured_health,
)
from broker.core.model import Chain, OidcUpstream, School, Service

NOW = datetime(2026, 11, 30, tzinfo=UTC)
GOOGLE = "https://accounts.google.com"


def _facts(**changes: object) -> Facts:
    base = Facts(
        schools=[],
        services=[],
        naming_idps=frozenset(),
        idp_endpoints={},
        sp_endpoints={},
        sources=[],
        secrets_in_clear=0,
        sealed_only=True,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _oidc_school(
    school_id: str, issuer: str, *, hosted_domain: str = "", secret_problem: str = ""
) -> School:
    upstream = OidcUpstream(
        issuer, "client", "s", hosted_domain=hosted_domain, secret_problem=secret_problem
    )
    return School(school_id, school_id.title(), issuer, oidc=upstream)


def _reasons(facts: Facts) -> dict[str, list[tuple[str, str]]]:
    return {
        s.kind.code: [(e.id, e.reason) for e in s.entries] for s in attention_report(facts).sections
    }


def test_nothing_to_report_is_an_empty_report() -> None:
    fine = _facts(
        schools=[School("12AB", "Lyceum", "https://idp.example")],
        services=[Service("dienst", "Dienst", "https://sp.example", None)],
        idp_endpoints={"https://idp.example": ()},
        sp_endpoints={"https://sp.example": ()},
        sources=[SourceHealth("fed", SourceState.OK, None, None, NOW)],
        secrets_in_clear=3,  # sealed-only: each is refused, and shows as its school's problem
    )
    report = attention_report(fine)
    assert report.sections == () and not report.needs_attention


def test_openid_schools_refused_for_their_secret_their_hosted_domain_or_no_brin() -> None:
    facts = _facts(
        schools=[
            _oidc_school("12AB", "https://login.board.example", secret_problem="key_unknown"),
            _oidc_school("34CD", GOOGLE),
            _oidc_school("56EF", GOOGLE, hosted_domain="school.example"),
            # Two schools on one issuer must be named by BRIN: "oost" can never be.
            _oidc_school("oost", "https://login.shared.example"),
            _oidc_school("78GH", "https://login.shared.example"),
        ],
    )
    assert _reasons(facts) == {
        "schools_logins_refused": [
            ("12AB", "client_secret_unreadable"),
            ("34CD", "hosted_domain_missing"),
            ("oost", "shared_idp_school_not_brin"),
        ]
    }
    # One school on a marked issuer is held to the rule too; OpenID schools need no metadata.
    alone = _facts(
        schools=[_oidc_school("oost", "https://login.one.example")],
        naming_idps=frozenset({"https://login.one.example"}),
    )
    assert _reasons(alone) == {"schools_logins_refused": [("oost", "shared_idp_school_not_brin")]}


def test_a_school_identified_by_a_scoped_value_without_a_realm_has_its_logins_refused() -> None:
    # Every user name or student number is dropped without a realm to check it against
    # (catalogue.py), so no login has a subject; with a realm, or on the ECK iD, it is fine.
    idp = "https://idp.example"
    facts = _facts(
        schools=[
            School("12AB", "Zonder realm", idp, "username"),
            School("34CD", "Met realm", "https://idp2.example", "student_number", scopes=("x.nl",)),
            School("56EF", "ECK iD", "https://idp3.example", "username", use_eck_id=True),
            School("78GH", "NameID", "https://idp4.example"),
        ],
        idp_endpoints={u: () for u in (idp, *(f"https://idp{n}.example" for n in (2, 3, 4)))},
    )
    assert _reasons(facts) == {"schools_logins_refused": [("12AB", "subject_without_realm")]}


def test_a_kind_counts_all_lists_the_first_and_comes_in_severity_order() -> None:
    schools = [School(f"{n:02d}AB", f"School {n}", f"https://idp{n}.example") for n in range(60)]
    facts = _facts(
        schools=schools,
        services=[Service("wacht", "Wacht", "https://sp.example", None, approved=False)],
        sp_endpoints={"https://sp.example": ("slo",)},
        sources=[
            SourceHealth("oud", SourceState.STALE, "fetch_failed", None, NOW),
            SourceHealth("weg", SourceState.EXPIRED, "metadata_expired", NOW, NOW),
        ],
        secrets_in_clear=2,
        sealed_only=False,
    )
    report = attention_report(facts, shown=50)
    assert [(s.kind.code, s.kind.severity, s.total, len(s.entries)) for s in report.sections] == [
        ("schools_logins_refused", Severity.LOGINS_REFUSED, 60, 50),
        ("sources_untrusted", Severity.LOGINS_REFUSED, 1, 1),
        ("services_awaiting_approval", Severity.WAITING, 1, 1),
        ("sources_stale", Severity.AT_RISK, 1, 1),
        ("secrets_in_clear", Severity.AT_RISK, 2, 0),
        ("services_logout_unreached", Severity.LOGOUT, 1, 1),
    ]
    assert report.sections[0].entries[0].reason == "school_metadata_missing"
    assert report.sections[1].entries[0].reason == "expired"
    assert report.sections[3].entries[0].reason == "fetch_failed"


def test_chain_ids_from_before_the_rule_are_named_with_what_they_risk() -> None:
    """A chain id of another shape than core/chain_ids.py's, registered before the rule (never
    renamed): one that is a service's own chain input while that service is in no chain shares
    its pseudonyms now; one with another ':' could; an upper-case one only breaks the shape."""
    facts = _facts(
        chains=[
            Chain("leermiddelen", "Leermiddelen"),
            Chain("service:los", "Los"),
            Chain("service:weg", "Weg"),
            Chain("Toetsen", "Toetsen"),
        ],
        services=[
            Service("los", "Los", "https://los.example", None),
            Service("weg", "Weg", "https://weg.example", "leermiddelen"),
        ],
        sp_endpoints={"https://los.example": (), "https://weg.example": ()},
    )
    report = attention_report(facts)
    (section,) = report.sections
    assert (section.kind.code, section.kind.severity, section.kind.subject, section.total) == (
        "chains_id_not_plain", Severity.AT_RISK, "chain", 3
    )  # fmt: skip
    assert [(e.id, e.name, e.reason) for e in section.entries] == [
        ("service:los", "Los", "chain_pseudonyms_shared"),
        ("service:weg", "Weg", "chain_id_has_colon"),
        ("Toetsen", "Toetsen", "chain_id_not_plain"),
    ]


def test_an_entity_whose_source_copy_expired_is_told_from_one_with_no_metadata() -> None:
    """Both have no metadata in force; one a metadata source holds (its copy expired: only the
    source mends it), the other none (nothing registered, or not fetched yet). Each reason is
    counted over all entries, also past the ones listed."""
    facts = _facts(
        schools=[
            School("12AB", "Held", "https://idp.held.example"),
            School("34CD", "Bare", "https://idp.bare.example"),
            School("56EF", "Held too", "https://idp.held.example"),
        ],
        services=[
            Service("held", "Held", "https://sp.held.example", None),
            Service("bare", "Bare", "https://sp.bare.example", None),
        ],
        idp_held=frozenset({"https://idp.held.example"}),
        sp_held=frozenset({"https://sp.held.example"}),
    )
    assert _reasons(facts) == {
        "schools_logins_refused": [
            ("34CD", "school_metadata_missing"),
            ("12AB", "school_source_expired"),
            ("56EF", "school_source_expired"),
        ],
        "services_logins_refused": [
            ("bare", "service_metadata_missing"),
            ("held", "service_source_expired"),
        ],
    }
    schools = attention_report(facts, shown=1).sections[0]
    assert len(schools.entries) == 1
    assert schools.reasons == (("school_metadata_missing", 1), ("school_source_expired", 2))
    every = attention_report(facts, shown=None).sections[0]
    assert len(every.entries) == every.total == 3


def test_an_expired_copy_of_a_source_no_longer_configured_is_untrusted() -> None:
    """Its entities are no longer trusted: reported as expired (the page alert's state, the
    untrusted sources), still saying it is no longer configured; one that holds stays a
    ticket's `unconfigured`."""
    day = timedelta(days=1)
    lapsed = SourceRecord("hernoemd", NOW - 2 * day, NOW - day, 3, NOW, None)
    expired = unconfigured_health(lapsed, NOW)
    assert (expired.state, expired.untrusted, expired.configured) == (
        SourceState.EXPIRED,
        True,
        False,
    )
    holding = unconfigured_health(dataclasses.replace(lapsed, valid_until=NOW + day), NOW)
    assert (holding.state, holding.untrusted, holding.configured) == (
        SourceState.UNCONFIGURED,
        False,
        False,
    )
    reasons = _reasons(_facts(sources=[expired, holding]))
    assert reasons["sources_untrusted"] == [("hernoemd", "unconfigured_expired")]
    assert reasons["sources_not_configured"] == [("hernoemd", "unconfigured")]


def test_an_entity_its_source_left_out_is_told_from_one_no_source_holds() -> None:
    """The feed holds them, but left them out (core/federation.py `LeftOut`): their entry in
    the federation needs mending, not their metadata registered. Each with the source's reason
    and words; one left out before its roles were read (expired) in either role; one in force
    all the same (registered, or another source's copy) is fine; a repeated entity id whose
    first copy a source holds is that copy's expiry."""
    unusable = LeftOut("https://idp.http.example", ENTITY_UNUSABLE, "SSO URL 'http://…'", "idp")
    expired = LeftOut("https://both.example", ENTITY_EXPIRED, "validUntil … has passed")
    repeated = LeftOut("https://sp.twice.example", ENTITY_ID_REPEATED, "an earlier …", "sp")
    newer = LeftOut("https://sp.new.example", "entity_from_the_future", "", "sp")
    left_out = [unusable, expired, repeated, newer]
    facts = _facts(
        schools=[
            School("12AB", "Http", "https://idp.http.example"),
            School("34CD", "Both", "https://both.example"),
            School("56EF", "Bare", "https://idp.bare.example"),
            School("78GH", "Registered", "https://idp.registered.example"),
        ],
        services=[
            Service("both", "Both", "https://both.example", None),
            Service("twice", "Twice", "https://sp.twice.example", None),
            Service("new", "New", "https://sp.new.example", None),
            Service("http", "Http", "https://idp.http.example", None),
        ],
        idp_endpoints={"https://idp.registered.example": ()},
        sp_held=frozenset({"https://sp.twice.example"}),
        idp_left_out=left_out_in([*left_out, dataclasses.replace(
            unusable, entity_id="https://idp.registered.example")], "idp"),
        sp_left_out=left_out_in(left_out, "sp"),
    )  # fmt: skip
    report = attention_report(facts)
    schools, services = report.sections[0].entries, report.sections[1].entries
    assert [(e.id, e.reason, e.detail) for e in schools] == [
        ("56EF", "school_metadata_missing", ""),
        ("12AB", "school_entry_unusable", unusable.detail),
        ("34CD", "school_entry_expired", expired.detail),
    ]
    assert [(e.id, e.reason) for e in services] == [
        # Left out as an idp only: as a service it is simply missing.
        ("http", "service_metadata_missing"),
        ("twice", "service_source_expired"),
        ("both", "service_entry_expired"),
        ("new", "service_entry_left_out"),
    ]
    # Not held: a repeated entity id is the federation's to mend, and said so.
    alone = dataclasses.replace(facts, sp_held=frozenset())
    assert ("twice", "service_entry_id_repeated") in _reasons(alone)["services_logins_refused"]
