"""What needs the federation operator's attention, in one report: the operator portal's "Needs
attention" page and `ketenbroker registry problems` show the same one.

An operator runs the broker for thousands of schools and hundreds of services. What stops
students signing in (a school whose identity provider has no metadata in force, an SSO or ACS
URL the broker refuses to use, a source whose copy expired), what waits for them (a service to
approve) and what only weakens a part (a logout that cannot reach an entry, a stale source,
secrets still in clear) is each found by its own rule elsewhere; this module puts their
findings side by side, the kinds that refuse logins first.

Pure: the caller hands over the registry's entries and what the metadata in force says about
each entity id (saml/metadata_report.py `refused_endpoints`, read by the adapter), the sources'
health (core/federation.py) and the secrets' counts. One rule per reason, each a small function;
a kind lists its first `shown` entries (all with None: `registry problems --all`) and counts
them all, by reason too: what to do depends on the reason (web/attention_words.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from functools import partial

from broker.core.catalogue import is_brin
from broker.core.chain_ids import chain_id_problem
from broker.core.errors import (
    SchoolSecretUnreadable,
    SchoolSetupIncomplete,
    SchoolSsoNotHttps,
    ServiceAcsNotHttps,
)
from broker.core.federation import (
    ENTITY_EXPIRED,
    ENTITY_ID_REPEATED,
    ENTITY_UNUSABLE,
    LeftOut,
    SourceHealth,
    SourceState,
)
from broker.core.hosted_domain import lacks_hosted_domain
from broker.core.metadata_refresh import RefreshRecord, not_refreshed
from broker.core.model import Chain, Protocol, School, Service
from broker.core.shared_idp import must_name_school
from broker.core.subjects import lacks_realms

SHOWN = 50  # entries listed per kind; the count says how many there are in all
# How far ahead a school's IdP's last signing certificate ending is reported (the operator's
# page, `registry problems`, the gauge and the school's portal banner alike), and a service's
# SP's last signing or encryption certificate (the same, and the publisher's portal). A copy
# given as a file is never fetched again: 30 days, for someone to get the new metadata. A copy
# given by URL is fetched by every `metadata refresh`, and ADFS publishes its next certificate
# 20 days before the current one ends: within 15 days, a copy that still has no successor has a
# refresh that fails (or a server that publishes none); at 30 every healthy ADFS school would be
# reported for ten days a year.
CERTIFICATE_WARNING = timedelta(days=30)
FETCHED_CERTIFICATE_WARNING = timedelta(days=15)
# A member a source left out (core/federation.py `LeftOut.reason`), as an entry's reason after
# "school_" or "service_"; a code not among them (a newer version's) as "entry_left_out".
LEFT_OUT_REASONS = {
    ENTITY_UNUSABLE: "entry_unusable",
    ENTITY_EXPIRED: "entry_expired",
    ENTITY_ID_REPEATED: "entry_id_repeated",
}


class Severity(IntEnum):
    """The order of the report: what refuses logins first, what only weakens a part last."""

    LOGINS_REFUSED = 1
    WAITING = 2  # waits for the operator's decision (nothing breaks meanwhile)
    AT_RISK = 3  # works today; needs mending before it does not
    LOGOUT = 4  # logins work, a logout does not reach the entry


@dataclass(frozen=True)
class Entry:
    """One school, service or source that needs attention. `reason`: a short code (the
    login path's error code where it has one: school_sso_not_https, acs_not_https, ...).
    `detail`: what exactly is wrong, where the reason alone does not say (a metadata source's
    words for a member it left out: the entity id and a URL, the federation's), else empty."""

    id: str
    name: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Kind:
    code: str
    severity: Severity
    # "school", "service", "source", "chain", "secret": what an entry is (and links to)
    subject: str


@dataclass(frozen=True)
class Section:
    kind: Kind
    total: int
    entries: tuple[Entry, ...]  # the first `shown`, in the rules' order, each rule by id
    reasons: tuple[tuple[str, int], ...] = ()  # every entry's reason, counted, in that order


@dataclass(frozen=True)
class AttentionReport:
    sections: tuple[Section, ...]  # only kinds with something in them, by severity

    @property
    def needs_attention(self) -> bool:
        return bool(self.sections)


@dataclass(frozen=True)
class Facts:
    """What the report is computed from. `idp_endpoints` / `sp_endpoints`: for every entity id
    whose metadata is in force (a source's copy, else the registered one: registry
    `metadata_in_force`), the endpoints it names that the login and logout paths refuse
    ("sso", "acs", "slo"); an entity id absent from it has no metadata in force.
    `idp_held` / `sp_held`: the entity ids a metadata source holds (registry
    `federation.sources_of`): one of them with no metadata in force has only the source's
    expired copy, which the source alone mends (the copy given at registration does not come
    back, registry/reading.py `metadata_in_force`).
    `idp_left_out` / `sp_left_out`: the entity ids a source's last good download left out for a
    problem of their own, with why (registry `federation.left_out`): one of them with no
    metadata in force is held by the feed, and its entry there needs mending."""

    schools: Sequence[School]
    services: Sequence[Service]
    naming_idps: Collection[str]  # IdPs whose logins must name their school (shared_idp.py)
    idp_endpoints: Mapping[str, Collection[str]]
    sp_endpoints: Mapping[str, Collection[str]]
    sources: Sequence[SourceHealth]
    secrets_in_clear: int
    sealed_only: bool
    idp_held: Collection[str] = frozenset()
    sp_held: Collection[str] = frozenset()
    chains: Sequence[Chain] = ()
    idp_left_out: Mapping[str, LeftOut] = field(default_factory=dict)
    sp_left_out: Mapping[str, LeftOut] = field(default_factory=dict)
    # For every IdP entity id whose copy in force has a readable signing certificate: when the
    # last of them ends (saml/metadata_changes.py `signing_valid_until`); for every SP entity
    # id, likewise of its signing and its encryption certificates, the earlier.
    idp_signing_until: Mapping[str, datetime] = field(default_factory=dict)
    sp_signing_until: Mapping[str, datetime] = field(default_factory=dict)
    now: datetime | None = None  # None: no certificate is reported as ending
    # By school id, for every school given by URL: what `metadata refresh` last made of it
    # (revision 0028); by service id, for every service given by URL (revision 0029). Read on
    # every report (the refresh bumps no generation).
    school_refresh: Mapping[str, RefreshRecord] = field(default_factory=dict)
    service_refresh: Mapping[str, RefreshRecord] = field(default_factory=dict)


# -- the rules: each finds its entries (in id order) and says nothing of the others ------------
def _saml_entries(facts: Facts, role: str) -> Iterator[tuple[str, str, str]]:
    """(id, name, entity id) of the SAML schools (`role` "idp") or SAML services ("sp")."""
    if role == "idp":
        return ((s.id, s.name, s.idp_entity_id) for s in facts.schools if s.oidc is None)
    return ((s.id, s.name, s.entity_id) for s in facts.services if s.protocol is Protocol.SAML)


def _in_force(facts: Facts, role: str) -> Mapping[str, Collection[str]]:
    return facts.idp_endpoints if role == "idp" else facts.sp_endpoints


def _held(facts: Facts, role: str) -> Collection[str]:
    return facts.idp_held if role == "idp" else facts.sp_held


def _keys_until(facts: Facts, role: str) -> Mapping[str, datetime]:
    return facts.idp_signing_until if role == "idp" else facts.sp_signing_until


def _refreshes(facts: Facts, role: str) -> Mapping[str, RefreshRecord]:
    return facts.school_refresh if role == "idp" else facts.service_refresh


def _why_left_out(facts: Facts, role: str, entity_id: str) -> LeftOut | None:
    """The member a source left out, when that is why `entity_id` has no metadata in force. A
    repeated entity id is not, when a source holds the entity (the first copy, taken): that
    copy's expiry is why."""
    found = (facts.idp_left_out if role == "idp" else facts.sp_left_out).get(entity_id)
    if found is None or (found.reason == ENTITY_ID_REPEATED and entity_id in _held(facts, role)):
        return None
    return found


def _without_metadata(facts: Facts, role: str, reason: str, *, held: bool) -> Iterator[Entry]:
    """The SAML entries whose entity id is in no metadata in force: the login path finds no
    endpoint for them (saml/back.py `school_metadata_missing`; a service's AuthnRequest is not
    read, and nothing is sent to it). `held`: those a metadata source holds (its copy has
    expired), else the others (none registered, none fetched yet). Those a source left out
    are `_left_out`'s."""
    in_force = _in_force(facts, role)
    sourced = _held(facts, role)
    for entry_id, name, entity_id in _saml_entries(facts, role):
        if entity_id in in_force or (entity_id in sourced) != held:
            continue
        if _why_left_out(facts, role, entity_id) is None:
            yield Entry(entry_id, name, reason)


def _left_out(facts: Facts, role: str, prefix: str) -> Iterator[Entry]:
    """The SAML entries with no metadata in force whose entity a source's feed holds but left
    out (unusable, expired, its id repeated): registering metadata is not the mending, their
    entry in the federation is (or, for a repeated entity id, the federation's feed). Each
    with the source's reason (`LEFT_OUT_REASONS`, after `prefix`) and its words for it."""
    in_force = _in_force(facts, role)
    for entry_id, name, entity_id in _saml_entries(facts, role):
        if entity_id in in_force:
            continue
        if (left := _why_left_out(facts, role, entity_id)) is not None:
            reason = LEFT_OUT_REASONS.get(left.reason, "entry_left_out")
            yield Entry(entry_id, name, f"{prefix}_{reason}", left.detail)


def _refusing(facts: Facts, role: str, endpoint: str, reason: str) -> Iterator[Entry]:
    """The SAML entries whose copy in force names an `endpoint` URL the broker refuses."""
    in_force = _in_force(facts, role)
    for entry_id, name, entity_id in _saml_entries(facts, role):
        if endpoint in in_force.get(entity_id, ()):
            yield Entry(entry_id, name, reason)


def school_secret_unreadable(facts: Facts) -> Iterator[Entry]:
    """An OpenID school whose stored client secret this broker cannot open (oidc/back.py)."""
    for school in facts.schools:
        if school.oidc is not None and school.oidc.secret_problem:
            yield Entry(school.id, school.name, SchoolSecretUnreadable.code)


def school_without_hosted_domain(facts: Facts) -> Iterator[Entry]:
    """An OpenID school on a shared issuer (Google) with no hosted domain (rp_claims.py)."""
    for school in facts.schools:
        if lacks_hosted_domain(school.oidc):
            yield Entry(school.id, school.name, SchoolSetupIncomplete.code)


def school_not_brin_on_naming_idp(facts: Facts) -> Iterator[Entry]:
    """A school, SAML or OpenID, on a provider whose logins must name their school (marked, or
    shared by several: core/shared_idp.py) whose id is no BRIN: the named school is compared
    with its id exactly, so none of its logins can pass. Every write refuses it
    (registry/shared_idps.py); a registry written by hand, or restored, may still hold it."""
    on_idp: dict[str, list[School]] = {}
    for school in facts.schools:
        on_idp.setdefault(school.idp_entity_id, []).append(school)
    for school in facts.schools:
        naming = school.idp_entity_id in facts.naming_idps
        if must_name_school(naming, on_idp[school.idp_entity_id]) and not is_brin(school.id):
            yield Entry(school.id, school.name, "shared_idp_school_not_brin")


def school_subject_without_realm(facts: Facts) -> Iterator[Entry]:
    """A school whose students are identified by a user name or student number and that has no
    realm registered: every value is dropped (catalogue.py), so no login has a subject
    (core/subjects.py `lacks_realms`). Every write refuses it now; one registered before may
    still be so."""
    for school in facts.schools:
        if lacks_realms(school):
            yield Entry(school.id, school.name, "subject_without_realm")


def certificate_ending(until: datetime | None, now: datetime, *, fetched: bool) -> bool:
    """Whether an entity whose last signing (or encryption) certificate ends at `until` is to be
    warned about now (within CERTIFICATE_WARNING, FETCHED_CERTIFICATE_WARNING for a copy
    `metadata refresh` fetches from the entry's URL; or ended)."""
    warning = FETCHED_CERTIFICATE_WARNING if fetched else CERTIFICATE_WARNING
    return until is not None and until <= now + warning


# What an ending certificate is, in an entry's detail, by role.
_ENDING_KEYS = {"idp": "signing certificate", "sp": "signing or encryption certificate"}


def _certificate_ending(facts: Facts, role: str, reason: str) -> Iterator[Entry]:
    """A SAML school (`role` "idp") whose IdP's signing certificates, or a SAML service ("sp")
    whose SP's signing or encryption certificates, in the copy in force all end within
    CERTIFICATE_WARNING (FETCHED_CERTIFICATE_WARNING given by URL; or have ended): once they
    end the entity signs with a key the broker does not hold (or the broker encrypts to one it
    no longer uses). The copy was given as a file (nothing fetches it again), or its URL does
    not publish a successor yet."""
    if facts.now is None:
        return
    ends, fetched_ids = _keys_until(facts, role), _refreshes(facts, role)
    for entry_id, name, entity_id in _saml_entries(facts, role):
        until = ends.get(entity_id)
        fetched = entry_id in fetched_ids  # given by URL
        if until is not None and certificate_ending(until, facts.now, fetched=fetched):
            detail = f"{_ENDING_KEYS[role]} valid until {until.date().isoformat()}"
            yield Entry(entry_id, name, reason, detail)


def _metadata_not_refreshed(facts: Facts, role: str, reason: str) -> Iterator[Entry]:
    """A SAML school or service given by URL whose copy `metadata refresh` has not accepted
    for REFRESH_WARNING (core/metadata_refresh.py): the entity's next certificate will not
    reach the broker. Its server refuses or fails the download, or the timer does not run."""
    if facts.now is None:
        return
    records = _refreshes(facts, role)
    for entry_id, name, _entity_id in _saml_entries(facts, role):
        record = records.get(entry_id)
        if record is not None and (detail := not_refreshed(record, facts.now)) is not None:
            yield Entry(entry_id, name, reason, detail)


school_certificate_ending = partial(
    _certificate_ending, role="idp", reason="school_certificate_ending"
)
service_certificate_ending = partial(
    _certificate_ending, role="sp", reason="service_certificate_ending"
)
school_metadata_not_refreshed = partial(
    _metadata_not_refreshed, role="idp", reason="school_metadata_not_refreshed"
)
service_metadata_not_refreshed = partial(
    _metadata_not_refreshed, role="sp", reason="service_metadata_not_refreshed"
)


def sources_untrusted(facts: Facts) -> Iterator[Entry]:
    """Expired or missing: none of the source's entities is trusted (`metadata status`). A
    copy of a source no longer configured that expired is one of them, and says so."""
    for source in facts.sources:
        if source.untrusted:
            reason = source.state.value if source.configured else "unconfigured_expired"
            yield Entry(source.name, source.name, reason)


def sources_not_configured(facts: Facts) -> Iterator[Entry]:
    """A copy held of a source the configuration no longer names: still in force, refreshed
    by nobody, until the operator configures the source again or drops it (`metadata
    forget`). A refresh never drops it: a misspelled or renamed source would otherwise take
    its schools' metadata with it."""
    for source in facts.sources:
        if source.state is SourceState.UNCONFIGURED:
            yield Entry(source.name, source.name, source.state.value)


def services_awaiting_approval(facts: Facts) -> Iterator[Entry]:
    for service in facts.services:
        if not service.approved:
            yield Entry(service.id, service.name, "awaiting_approval")


def sources_stale(facts: Facts) -> Iterator[Entry]:
    """Refreshing has failed for too long; the last good copy is still trusted."""
    for source in facts.sources:
        if source.state is SourceState.STALE:
            yield Entry(source.name, source.name, source.reason or source.state.value)


def chains_id_not_plain(facts: Facts) -> Iterator[Entry]:
    """A chain whose id breaks the rule of core/chain_ids.py: registered before it (by a file
    or an older version). Never renamed, since the id is in every pseudonym of its chain. One
    spelled `service:<id>` of a service in no chain gives its services that service's very
    pseudonyms now; any other with a ':' would as soon as such a service is registered."""
    loose = {s.pseudonym_chain for s in facts.services if not s.chain_id}
    for chain in facts.chains:
        if chain_id_problem(chain.id) is None:
            continue
        if chain.id in loose:
            reason = "chain_pseudonyms_shared"
        elif ":" in chain.id:
            reason = "chain_id_has_colon"
        else:
            reason = "chain_id_not_plain"
        yield Entry(chain.id, chain.name, reason)


Rule = Callable[[Facts], Iterable[Entry]]

# Each kind with its rules, in the report's order (by severity, then as listed).
KINDS: tuple[tuple[Kind, tuple[Rule, ...]], ...] = (
    (
        Kind("schools_logins_refused", Severity.LOGINS_REFUSED, "school"),
        (
            partial(_without_metadata, role="idp", reason="school_metadata_missing", held=False),
            partial(_without_metadata, role="idp", reason="school_source_expired", held=True),
            partial(_left_out, role="idp", prefix="school"),
            partial(_refusing, role="idp", endpoint="sso", reason=SchoolSsoNotHttps.code),
            school_secret_unreadable,
            school_without_hosted_domain,
            school_not_brin_on_naming_idp,
            school_subject_without_realm,
        ),
    ),
    (
        Kind("services_logins_refused", Severity.LOGINS_REFUSED, "service"),
        (
            partial(_without_metadata, role="sp", reason="service_metadata_missing", held=False),
            partial(_without_metadata, role="sp", reason="service_source_expired", held=True),
            partial(_left_out, role="sp", prefix="service"),
            partial(_refusing, role="sp", endpoint="acs", reason=ServiceAcsNotHttps.code),
        ),
    ),
    (Kind("sources_untrusted", Severity.LOGINS_REFUSED, "source"), (sources_untrusted,)),
    (
        Kind("services_awaiting_approval", Severity.WAITING, "service"),
        (services_awaiting_approval,),
    ),
    (Kind("sources_stale", Severity.AT_RISK, "source"), (sources_stale,)),
    (Kind("sources_not_configured", Severity.AT_RISK, "source"), (sources_not_configured,)),
    (
        Kind("schools_certificate_ending", Severity.AT_RISK, "school"),
        (school_certificate_ending,),
    ),
    (
        Kind("schools_metadata_not_refreshed", Severity.AT_RISK, "school"),
        (school_metadata_not_refreshed,),
    ),
    (
        Kind("services_certificate_ending", Severity.AT_RISK, "service"),
        (service_certificate_ending,),
    ),
    (
        Kind("services_metadata_not_refreshed", Severity.AT_RISK, "service"),
        (service_metadata_not_refreshed,),
    ),
    (Kind("chains_id_not_plain", Severity.AT_RISK, "chain"), (chains_id_not_plain,)),
    (
        Kind("schools_logout_unreached", Severity.LOGOUT, "school"),
        (partial(_refusing, role="idp", endpoint="slo", reason="school_slo_not_https"),),
    ),
    (
        Kind("services_logout_unreached", Severity.LOGOUT, "service"),
        (partial(_refusing, role="sp", endpoint="slo", reason="service_slo_not_https"),),
    ),
)
SECRETS_IN_CLEAR = Kind("secrets_in_clear", Severity.AT_RISK, "secret")


def attention_report(facts: Facts, shown: int | None = SHOWN) -> AttentionReport:
    """Every kind with something in it, by severity: its total, its reasons counted and its
    first `shown` entries (None: all). An entry two rules of one kind find (metadata missing
    and no BRIN) is listed under each reason: each needs its own mending."""
    sections = []
    for kind, rules in KINDS:
        found = [entry for rule in rules for entry in rule(facts)]
        if found:
            reasons = Counter(entry.reason for entry in found)  # in the order first found
            sections.append(Section(kind, len(found), tuple(found[:shown]), tuple(reasons.items())))
    if facts.secrets_in_clear and not facts.sealed_only:
        # Counts only: which account's or school's secret is in clear is not the report's to say
        # (`registry seal-secrets` seals them all at once).
        sections.append(Section(SECRETS_IN_CLEAR, facts.secrets_in_clear, ()))
    return AttentionReport(tuple(sorted(sections, key=lambda s: s.kind.severity)))
