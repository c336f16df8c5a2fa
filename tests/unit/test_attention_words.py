"""web/attention_words.py: one source of the attention report's words for the operator's page
and `registry problems`. Every kind core/attention.py reports has a title, a meaning and what to
do; every reason its rules give has words; and what to do is said per reason where the reasons
are mended in different places."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.core.attention import KINDS, LEFT_OUT_REASONS, SECRETS_IN_CLEAR, Facts, attention_report
from broker.core.federation import LeftOut, SourceHealth, SourceState, left_out_in
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import Chain, OidcUpstream, School, Service
from broker.web.attention_words import KIND_WORDS, REASON_WORDS, advice_of, reason_words

NOW = datetime(2026, 11, 30, tzinfo=UTC)
GOOGLE = "https://accounts.google.com"
NAMING = "https://idp.board.example"
ENDING = "https://adfs.ending.example/adfs/services/trust"
STALE = "https://adfs.stale.example/adfs/services/trust"
# A member left out for each reason a source gives (and one a newer version might), by the
# entity id of a school and a service each.
LEFT_OUT = [
    LeftOut(f"https://{code}.example", code, "what", None)
    for code in [*LEFT_OUT_REASONS, "entity_from_the_future"]
]


def _everything() -> Facts:
    """Facts giving every reason every rule knows."""
    saml = [
        School("11AA", "Missing", "https://idp.missing.example"),
        School("22BB", "Expired source", "https://idp.held.example"),
        School("33CC", "Plain http", "https://idp.http.example"),
        School("oost", "Not a BRIN", NAMING),
        School("77GG", "Certificate ending", ENDING),
        School("88HH", "Not refreshed", STALE),
        *(School(f"L{n}", "Left out", m.entity_id) for n, m in enumerate(LEFT_OUT)),
    ]
    oidc = [
        School("44DD", "Secret", "https://op.example", oidc=OidcUpstream(
            "https://op.example", "c", "s", secret_problem="key_unknown")),
        School("55EE", "Google", GOOGLE, oidc=OidcUpstream(GOOGLE, "c", "s")),
        School("66FF", "No realm", "https://op.realm.example", "username", oidc=OidcUpstream(
            "https://op.realm.example", "c", "s")),
    ]  # fmt: skip
    services = [
        Service("missing", "Missing", "https://sp.missing.example", None),
        Service("held", "Held", "https://sp.held.example", None),
        Service("http", "Http", "https://sp.http.example", None, approved=False),
        Service("ending", "Certificate ending", "https://sp.ending.example", None),
        Service("stale", "Not refreshed", "https://sp.stale.example", None),
        *(Service(f"l{n}", "Left out", m.entity_id, None) for n, m in enumerate(LEFT_OUT)),
    ]
    return Facts(
        schools=[*saml, *oidc],
        services=services,
        naming_idps=frozenset({NAMING}),
        idp_endpoints={
            "https://idp.http.example": ("sso", "slo"),
            NAMING: (),
            ENDING: (),
            STALE: (),
        },
        sp_endpoints={
            "https://sp.http.example": ("acs", "slo"),
            "https://sp.ending.example": (),
            "https://sp.stale.example": (),
        },
        sources=[
            SourceHealth("weg", SourceState.EXPIRED, "metadata_expired", NOW, NOW),
            SourceHealth("nooit", SourceState.MISSING, None, None, None),
            SourceHealth("oud", SourceState.STALE, "fetch_failed", None, NOW),
            SourceHealth("hernoemd", SourceState.UNCONFIGURED, "source_not_configured", NOW, NOW),
        ],
        secrets_in_clear=1,
        sealed_only=False,
        idp_held=frozenset({"https://idp.held.example"}),
        sp_held=frozenset({"https://sp.held.example"}),
        idp_left_out=left_out_in(LEFT_OUT, "idp"),
        sp_left_out=left_out_in(LEFT_OUT, "sp"),
        chains=[
            Chain("service:missing", "Shares the pseudonyms of the service missing"),
            Chain("service:gone", "Colon"),
            Chain("Toetsen", "Upper case"),
        ],
        idp_signing_until={ENDING: NOW + timedelta(days=12), NAMING: NOW + timedelta(days=400)},
        now=NOW,
        school_refresh={"88HH": RefreshRecord(NOW - timedelta(days=4))},
        sp_signing_until={"https://sp.ending.example": NOW + timedelta(days=3)},
        service_refresh={"stale": RefreshRecord(NOW - timedelta(days=4))},
    )


def test_every_kind_has_a_title_a_meaning_and_what_to_do() -> None:
    for kind in [*(kind for kind, _ in KINDS), SECRETS_IN_CLEAR]:
        words = KIND_WORDS[kind.code]
        assert str(words.title) and str(words.meaning) and str(words.advice), kind.code


def test_every_reason_the_rules_give_has_words_and_every_section_advice() -> None:
    report = attention_report(_everything(), shown=None)
    # Every kind is in the report: the reasons below are every rule's.
    assert {s.kind.code for s in report.sections} == set(KIND_WORDS)
    given = {e.reason for s in report.sections for e in s.entries}
    # A stale source's reason is its last refusal's code, said as is.
    assert given - set(REASON_WORDS) == {"fetch_failed"}
    assert reason_words("fetch_failed") == "refresh failing (fetch_failed)"
    for section in report.sections:
        assert advice_of(section), section.kind.code
        assert all(text for _, text in advice_of(section))


def test_what_to_do_is_said_per_reason_where_it_differs() -> None:
    report = attention_report(_everything(), shown=1)  # the advice covers unlisted entries too
    schools = next(s for s in report.sections if s.kind.code == "schools_logins_refused")
    advice = advice_of(schools)
    by_reason = {code: text for codes, text in advice for code in codes}
    # Eleven reasons, mended in nine places; every reason, not only the one entry listed.
    assert set(by_reason) == {code for code, _ in schools.reasons} and len(advice) == 9
    assert "metadata refresh" in by_reason["school_source_expired"]
    assert "does not help" in by_reason["school_source_expired"]
    assert "Only you can mend this" in by_reason["shared_idp_school_not_brin"]
    assert "--hosted-domain" in by_reason["hosted_domain_missing"]
    assert "scopes" in by_reason["subject_without_realm"]
    # A member its source left out: its federation entry is mended, not the registration.
    for code in ("school_entry_unusable", "school_entry_expired", "school_entry_left_out"):
        assert "entry in its federation corrected" in by_reason[code]
        assert "does not mend it" in by_reason[code]
    assert "only its federation can mend" in by_reason["school_entry_id_repeated"]
    assert "register" in by_reason["school_metadata_missing"]
    sources = next(s for s in report.sections if s.kind.code == "sources_untrusted")
    assert advice_of(sources) == [
        (("expired", "missing"), str(KIND_WORDS["sources_untrusted"].advice))
    ]
