"""Reading a metadata download: a federation aggregate (md:EntitiesDescriptor) or one entity.

Order matters, and each step refuses the whole download with a reason code:
1. parse with the safe parser (no DOCTYPE, no entities, no network); a truncated or broken
   download fails here (`malformed`);
2. verify the document's one enveloped signature against the pinned signer certificates only
   (any of them: two during a signer roll-over), in process with libxmlsec and the same shape
   policy as every other signature the broker checks (exclusive c14n, SHA-2, a reference to the
   root's own ID); keys inside the document are never used;
3. drop comments (the signature does not cover them, and lxml would split text at them);
4. `validUntil`: required (unless the source says otherwise), in the future, and no further
   ahead than the source's maximum validity interval (Shibboleth's `maxValidityInterval`: a
   feed signed to hold for years would let whoever keeps a copy replay it for years);
5. the publication instant (`mdrpi:PublicationInfo/@creationInstant`), when given: readable and
   not ahead of the clock. Whether the feed is older than the copy held is the store's to
   decide, in the transaction that would replace it (registry/federation.py).
Only then are entities read, from the same parsed tree that was verified, so what is trusted is
exactly what was signed: the groups' members by the metadata's structure alone (`_members`),
never an EntityDescriptor found elsewhere, such as in the signature's unsigned KeyInfo. A
source limited to some registration authorities leaves out every member another federation
registered, or that does not say, itself or by an EntitiesDescriptor around it
(registration_authority.py), before its roles are read. An entity that does not fit the
broker's role checks is skipped, not fatal: one broken member of a 5,000-entity feed must not
stop the other 4,999. So is one past its own validUntil, and one that repeats an earlier
member's entity id (the first is used). Each is named with its reason (`LeftOut`, in the log,
in `metadata refresh`'s output and in the source's record, registry/federation.py): a school
whose federation copy is left out is otherwise indistinguishable from one the feed does not
hold. A plain-http SLO URL is no reason to skip
one (it is kept and logged, `metadata_check.checked_member`): logins do not need it, and the
logout path skips it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import xmlsec
from lxml import etree
from saml2.sigver import SignatureError

from broker.core.federation import (
    ENTITY_EXPIRED,
    ENTITY_ID_REPEATED,
    ENTITY_UNUSABLE,
    PUBLISHED_SKEW,
    FederationEntity,
    FeedDates,
    LeftOut,
)
from broker.saml.metadata_check import (
    MD,
    NOT_AN_IDP,
    NOT_AN_SP,
    MetadataInvalid,
    checked_member,
)
from broker.saml.registration_authority import MDRPI, left_out_by
from broker.saml.xml_parsing import has_doctype, parse_untrusted
from broker.saml.xmlsig import verification_context
from broker.saml.xmlsig_policy import check_signature_shape, enveloped_signature

log = logging.getLogger(__name__)

ENTITIES = f"{{{MD}}}EntitiesDescriptor"
ENTITY = f"{{{MD}}}EntityDescriptor"
PUBLICATION_INFO = f"{{{MD}}}Extensions/{{{MDRPI}}}PublicationInfo"
# What a member that does not describe a role fails with: not a problem, another role.
_NOT_IN_ROLE = {NOT_AN_IDP, NOT_AN_SP}
# Per download and reason, how many of the members a source's registration_authorities leave
# out are named in the log (the count says how many in all): an interfederation feed may hold
# thousands, left out on purpose. A member left out for a problem of its own is always named.
MAX_NAMED_NOT_LISTED = 20
# An SLO URL that is not https, likewise: the entity is kept.
MAX_NAMED_SLO = 20
# A member left out for a problem of its own: `LeftOut` (core/federation.py), with its reason.


class MetadataRefused(Exception):
    """A download that must not replace the last good copy; `code` is safe to log."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ReadMetadata:
    valid_until: datetime | None
    entities: tuple[FederationEntity, ...]
    # Entity roles left out because they failed the role checks or repeated an entity id.
    skipped: int
    # The document's publication instant (mdrpi:PublicationInfo/@creationInstant), if given.
    published_at: datetime | None = None
    # Members left out because the source's registration_authorities do not list their own.
    not_listed: int = 0
    # Members left out for a problem of their own (expired, unusable, a repeated entity id), in
    # document order; those of `not_listed` are only counted.
    left_out: tuple[LeftOut, ...] = ()

    @property
    def dates(self) -> FeedDates:
        return FeedDates(self.published_at, self.valid_until)


def parse_time(value: str) -> datetime:
    """An xs:dateTime as SAML writes it (`2026-12-01T10:00:00Z`, fractions allowed), in UTC."""
    moment = datetime.fromisoformat(value.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _valid_until(element: etree._Element) -> datetime | None:
    value = element.get("validUntil")
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise MetadataRefused("bad_valid_until") from None


def _document_until(
    root: etree._Element, now: datetime, required: bool, max_validity: timedelta
) -> datetime | None:
    until = _valid_until(root)
    if until is None:
        if required:
            raise MetadataRefused("no_valid_until")
        return None
    if until <= now:
        raise MetadataRefused("expired")
    if until > now + max_validity:
        raise MetadataRefused("valid_until_too_far")
    return until


def _published_at(root: etree._Element, now: datetime) -> datetime | None:
    """The document's own publication instant: of the root's Extensions only (a member entity's
    PublicationInfo says when that entity was registered, not when the feed was made). The
    attribute is optional in mdrpi (only `publisher` is required): a PublicationInfo without
    it is a feed that does not say, not a broken one (refused, it would leave the federation
    on its last good copy until that expired)."""
    info = root.find(PUBLICATION_INFO)
    instant = info.get("creationInstant") if info is not None else None
    if instant is None:
        return None
    try:
        published = parse_time(instant)
    except ValueError:
        raise MetadataRefused("bad_creation_instant") from None
    if published > now + PUBLISHED_SKEW:
        raise MetadataRefused("published_in_future")
    return published


def _verify(root: etree._Element, certificates: Sequence[bytes]) -> None:
    try:
        signature = enveloped_signature(root)
    except SignatureError:
        raise MetadataRefused("unsigned") from None
    try:
        check_signature_shape(signature, root)
    except SignatureError as err:
        raise MetadataRefused(str(err).removeprefix("xmlsig: ")) from None
    for pem in certificates:
        try:
            key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem)
        except xmlsec.Error:
            raise MetadataRefused("signer_certificate_unreadable") from None
        context = verification_context(key)
        try:
            context.register_id(root, "ID")
            context.verify(signature)
        except xmlsec.VerificationError:
            continue  # perhaps the other pinned signer (roll-over)
        except xmlsec.Error:
            raise MetadataRefused("signature_refused") from None
        return
    raise MetadataRefused("signature_invalid")


def _members(group: etree._Element) -> Iterator[etree._Element]:
    """The entities of an EntitiesDescriptor, in document order: its EntityDescriptor children
    and, recursively, those of its EntitiesDescriptor children (SAML metadata 2.3.1), nothing
    else. Not every EntityDescriptor anywhere below it: the root's enveloped signature covers
    everything but itself, so one written into its `ds:KeyInfo` (in no Reference) verified
    with the feed and, first in document order, displaced the federation's own copy of that
    entity id; one inside an `md:Extensions` is extension content, not a registered entity."""
    for child in group:
        if child.tag == ENTITY:
            yield child
        elif child.tag == ENTITIES:
            yield from _members(child)


def _listed(
    members: Sequence[etree._Element], authorities: frozenset[str]
) -> tuple[list[etree._Element], dict[str, list[str]]]:
    """The members `authorities` takes, and the entity ids of the others by reason code."""
    taken: list[etree._Element] = []
    left_out: dict[str, list[str]] = {}
    for member in members:
        reason = left_out_by(authorities, member)
        if reason is None:
            taken.append(member)
        else:
            left_out.setdefault(reason, []).append(member.get("entityID") or "-")
    return taken, left_out


def _entities(
    members: Sequence[etree._Element],
    roles: Sequence[str],
    document_until: datetime | None,
    now: datetime,
) -> tuple[list[FederationEntity], int, list[LeftOut]]:
    """The usable entities in their roles, how many roles were left out, and each member (in a
    role) left out with its reason. An entity kept with a plain-http SLO URL is logged here
    (`_log_slo_refused`)."""
    entities: list[FederationEntity] = []
    seen: set[tuple[str, str]] = set()
    skipped = 0
    left_out: list[LeftOut] = []
    slo_refused: list[tuple[str, str]] = []
    for member in members:
        named = member.get("entityID") or "-"
        # The entity's own validUntil and that of every EntitiesDescriptor around it count.
        ends = [_valid_until(member), document_until]
        ends += [_valid_until(group) for group in member.iterancestors(ENTITIES)]
        until = min((t for t in ends if t is not None), default=None)
        if until is not None and until <= now:
            skipped += 1
            ended = f"validUntil {until.isoformat(timespec='seconds')} has passed"
            left_out.append(LeftOut(named, ENTITY_EXPIRED, ended))
            continue
        xml: str | None = None
        for role in roles:
            try:
                entity_id, tolerated = checked_member(member, role)
            except MetadataInvalid as problem:
                if problem.message not in _NOT_IN_ROLE:  # in the role, not usable in it
                    skipped += 1
                    left_out.append(LeftOut(named, ENTITY_UNUSABLE, problem.detail, role))
                continue
            if (entity_id, role) in seen:
                skipped += 1
                repeated = "an earlier member has this entity id; that one is used"
                left_out.append(LeftOut(entity_id, ENTITY_ID_REPEATED, repeated, role))
                continue
            seen.add((entity_id, role))
            slo_refused += [(role, problem.detail) for problem in tolerated]
            if xml is None:
                xml = etree.tostring(member, encoding="unicode")
            entities.append(FederationEntity(entity_id, role, xml, until))
    _log_slo_refused(slo_refused)
    return entities, skipped, left_out


def read_metadata(
    data: bytes,
    *,
    certificates: Sequence[bytes],
    require_signature: bool,
    require_valid_until: bool,
    roles: Sequence[str],
    now: datetime,
    max_validity: timedelta,
    authorities: frozenset[str] = frozenset(),
) -> ReadMetadata:
    """Check a download and split it into entities; raises MetadataRefused. `max_validity`:
    how far ahead the document's validUntil may lie; `authorities`: the registration
    authorities whose members the source takes (empty: every member)."""
    if b"<!DOCTYPE" in data:
        raise MetadataRefused("doctype")
    try:
        root = parse_untrusted(data)
    except etree.XMLSyntaxError:
        raise MetadataRefused("malformed") from None
    if has_doctype(root):
        # UTF-16 hides `<!DOCTYPE` from the byte check above; a DOCTYPE lies outside the signed
        # root, so a relayed feed could carry one and still verify.
        raise MetadataRefused("doctype")
    if root.tag not in (ENTITIES, ENTITY):
        raise MetadataRefused("not_metadata")
    if certificates:
        _verify(root, certificates)
    elif require_signature:
        raise MetadataRefused("no_signer_pinned")
    etree.strip_tags(root, etree.Comment)
    document_until = _document_until(root, now, require_valid_until, max_validity)
    published_at = _published_at(root, now)

    members = [root] if root.tag == ENTITY else list(_members(root))
    members, not_listed = _listed(members, authorities)
    entities, skipped, left_out = _entities(members, roles, document_until, now)
    if not entities:
        # A list that takes no member of a feed that has some is most likely a mistyped URI.
        raise MetadataRefused("no_listed_entities" if not_listed else "no_usable_entities")
    _log_left_out(left_out)
    for reason, entity_ids in not_listed.items():
        _log_not_listed(reason, entity_ids)
    listed_out = sum(len(ids) for ids in not_listed.values())
    return ReadMetadata(
        document_until, tuple(entities), skipped, published_at, listed_out, tuple(left_out)
    )


def _log_left_out(left_out: Sequence[LeftOut]) -> None:
    """Each member left out for a problem of its own, named with its reason (entity ids and
    URLs are the federation's, not personal), and how many per reason: a school registered
    by entity id whose logins never start shows up here, with what its federation must fix."""
    counts: dict[str, int] = {}
    for each in left_out:
        counts[each.reason] = counts.get(each.reason, 0) + 1
    for reason, count in counts.items():
        log.info("metadata entities skipped", extra={"reason": reason, "count": count})
    for each in left_out:
        fields = {"reason": each.reason, "entity": each.entity_id, "role": each.role or "-"}
        log.info("metadata entity left out", extra=fields | {"detail": each.detail})


def _log_not_listed(reason: str, entity_ids: Sequence[str]) -> None:
    """How many members the source's list left out for `reason`, and the first of them named."""
    log.info("metadata entities skipped", extra={"reason": reason, "count": len(entity_ids)})
    for entity_id in entity_ids[:MAX_NAMED_NOT_LISTED]:
        log.info("metadata entity left out", extra={"reason": reason, "entity": entity_id})


def _log_slo_refused(refused: Sequence[tuple[str, str]]) -> None:
    """Entities kept although an SLO URL of theirs is not https, as (role, detail): the detail
    names the entity and the URL (the federation's, not personal). Counted, the first named:
    a large interfederation feed may hold many, and the logout path skips each such URL."""
    if refused:
        log.info(
            "metadata entities with an SLO URL not https",
            extra={"reason": "entity_slo_not_https", "count": len(refused)},
        )
    for role, detail in refused[:MAX_NAMED_SLO]:
        log.info(
            "metadata entity kept; its SLO URL is not used",
            extra={"reason": "entity_slo_not_https", "role": role, "detail": detail},
        )
