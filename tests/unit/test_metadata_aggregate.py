"""Reading a metadata download (broker/saml/aggregate.py): what is accepted, what is refused and
with which reason code. Aggregates are built and signed with the `xmlsec` binding directly
(bench/metadata_aggregate.py), not with the broker's code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.metadata_aggregate import (
    certificate_body,
    idp_entity,
    signed_aggregate,
    sp_entity,
    with_slo,
)
from broker.certificates import self_signed_pair
from broker.core.federation import FeedDates, LeftOut, is_older
from broker.saml.aggregate import MetadataRefused, ReadMetadata, read_metadata

NOW = datetime.now(UTC)
SIGNER = self_signed_pair("federation signer")
NEXT_SIGNER = self_signed_pair("federation signer 2027")
STRANGER = self_signed_pair("not the federation")
MEMBER_CERT = certificate_body(self_signed_pair("member")[1])


def members() -> list[str]:
    return [
        sp_entity("https://sp.example/metadata", "https://sp.example/acs", MEMBER_CERT),
        idp_entity("https://idp.example/metadata", "https://idp.example/sso", MEMBER_CERT),
    ]


def aggregate(
    entities: list[str] | None = None,
    *,
    key: bytes = SIGNER[0],
    valid_until: datetime = NOW + timedelta(days=7),
    published: datetime | None = None,
) -> bytes:
    return signed_aggregate(
        members() if entities is None else entities,
        key,
        valid_until=valid_until,
        published=published,
    )


def read(data: bytes, certificates: list[bytes] | None = None, **options: object) -> ReadMetadata:
    settings: dict[str, object] = {
        "certificates": [SIGNER[1]] if certificates is None else certificates,
        "require_signature": True,
        "require_valid_until": True,
        "roles": ("idp", "sp"),
        "now": NOW,
        "max_validity": timedelta(days=14),
    }
    settings.update(options)
    return read_metadata(data, **settings)  # type: ignore[arg-type]


def refused(
    data: bytes, code: str, certificates: list[bytes] | None = None, **options: object
) -> None:
    with pytest.raises(MetadataRefused) as caught:
        read(data, certificates, **options)
    assert caught.value.code == code


def test_a_signed_aggregate_gives_its_entities_in_their_roles() -> None:
    result = read(aggregate())
    entities = {(e.entity_id, e.role): e for e in result.entities}
    assert set(entities) == {
        ("https://sp.example/metadata", "sp"),
        ("https://idp.example/metadata", "idp"),
    }
    sp = entities[("https://sp.example/metadata", "sp")]
    assert (
        sp.xml.startswith("<md:EntityDescriptor")
        and 'entityID="https://sp.example/metadata"' in sp.xml
    )
    assert sp.valid_until is not None and abs(
        sp.valid_until - (NOW + timedelta(days=7))
    ) < timedelta(seconds=2)


def test_either_pinned_signer_is_accepted_during_a_roll_over() -> None:
    both = [SIGNER[1], NEXT_SIGNER[1]]
    assert read(aggregate(key=SIGNER[0]), both)
    assert read(aggregate(key=NEXT_SIGNER[0]), both)
    refused(aggregate(key=NEXT_SIGNER[0]), "signature_invalid")


def test_a_signature_by_another_key_is_refused() -> None:
    refused(aggregate(key=STRANGER[0]), "signature_invalid")


def test_content_changed_after_signing_is_refused() -> None:
    data = aggregate().replace(b"https://sp.example/acs", b"https://evil.example/acs")
    refused(data, "signature_invalid")


def test_an_unsigned_aggregate_is_refused() -> None:
    data = aggregate()
    start = data.index(b"<ds:Signature")
    end = data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    refused(data[:start] + data[end:], "unsigned")


def test_unsigned_is_accepted_only_when_the_source_says_so() -> None:
    data = aggregate()
    start = data.index(b"<ds:Signature")
    end = data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    result = read(data[:start] + data[end:], [], require_signature=False)
    assert len(result.entities) == 2


def test_a_truncated_download_is_refused() -> None:
    data = aggregate()
    refused(data[: len(data) // 2], "malformed")
    refused(data[:-5], "malformed")


def test_expired_and_missing_valid_until_are_refused() -> None:
    refused(aggregate(valid_until=NOW - timedelta(seconds=1)), "expired")
    data = aggregate()
    undated = data.replace(b'validUntil="', b'xmlns:x="urn:x" x:gone="', 1)
    # Removing the attribute breaks the signature first; an unsigned file source shows the rule.
    start = undated.index(b"<ds:Signature")
    end = undated.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    refused(
        undated[:start] + undated[end:], "no_valid_until", certificates=[], require_signature=False
    )


def test_an_expired_member_is_skipped_the_rest_kept() -> None:
    old = sp_entity("https://old.example/metadata", "https://old.example/acs", MEMBER_CERT)
    old = old.replace(
        "<md:EntityDescriptor ", '<md:EntityDescriptor validUntil="2020-01-01T00:00:00Z" ', 1
    )
    result = read(aggregate([old, *members()]))
    assert {e.entity_id for e in result.entities} == {
        "https://sp.example/metadata",
        "https://idp.example/metadata",
    }
    assert result.skipped == 1


def test_a_member_that_fails_the_role_checks_is_left_out() -> None:
    plain_http = sp_entity("https://bad.example/metadata", "http://bad.example/acs", MEMBER_CERT)
    result = read(aggregate([plain_http, *members()]))
    assert "https://bad.example/metadata" not in {e.entity_id for e in result.entities}


def test_a_school_whose_sso_url_is_not_https_is_left_out_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain_http = idp_entity("https://bad.example/metadata", "http://bad.example/sso", MEMBER_CERT)
    caplog.set_level("INFO", logger="broker.saml.aggregate")
    result = read(aggregate([plain_http, *members()]))
    assert "https://bad.example/metadata" not in {e.entity_id for e in result.entities}
    assert result.skipped == 1
    (named,) = [r for r in caplog.records if r.getMessage() == "metadata entity left out"]
    assert named.__dict__["detail"] == (
        "SSO URL 'http://bad.example/sso' of https://bad.example/metadata must be https "
        "(plain http only on loopback)"
    )


def test_each_member_left_out_is_named_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A school whose federation copy is left out must be findable by its entity id: the
    # operator cannot otherwise tell it from a school the feed does not hold.
    later = sp_entity("https://sp.example/metadata", "https://sp.example/later-acs", MEMBER_CERT)
    old = sp_entity("https://old.example/metadata", "https://old.example/acs", MEMBER_CERT)
    old = old.replace(
        "<md:EntityDescriptor ", '<md:EntityDescriptor validUntil="2020-01-01T00:00:00Z" ', 1
    )
    http_sso = idp_entity("https://bad.example/metadata", "http://bad.example/sso", MEMBER_CERT)
    caplog.set_level("INFO", logger="broker.saml.aggregate")
    result = read(aggregate([*members(), later, old, http_sso]))
    kept = next(e for e in result.entities if e.entity_id == "https://sp.example/metadata")
    assert "later-acs" not in kept.xml  # the first copy is used
    sso_problem = (
        "SSO URL 'http://bad.example/sso' of https://bad.example/metadata must be https "
        "(plain http only on loopback)"
    )
    assert result.left_out == (
        LeftOut(
            "https://sp.example/metadata",
            "entity_id_repeated",
            "an earlier member has this entity id; that one is used",
            "sp",
        ),
        LeftOut(
            "https://old.example/metadata",
            "entity_expired",
            "validUntil 2020-01-01T00:00:00+00:00 has passed",
        ),
        LeftOut("https://bad.example/metadata", "entity_unusable", sso_problem, "idp"),
    )
    assert result.skipped == 3
    named = [
        (r.__dict__["reason"], r.__dict__["entity"], r.__dict__["role"], r.__dict__["detail"])
        for r in caplog.records
        if r.getMessage() == "metadata entity left out"
    ]
    assert named == [(e.reason, e.entity_id, e.role or "-", e.detail) for e in result.left_out]
    counted = {
        r.__dict__["reason"]: r.__dict__["count"]
        for r in caplog.records
        if r.getMessage() == "metadata entities skipped"
    }
    assert counted == {"entity_id_repeated": 1, "entity_expired": 1, "entity_unusable": 1}


def test_an_entity_whose_slo_url_is_not_https_is_kept_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Unlike an SSO or ACS URL: logins need no SLO endpoint and the logout path skips such a
    # URL, while leaving the entity out would put it back on its registration copy, or none.
    service = sp_entity(
        "https://bad-sp.example/metadata", "https://bad-sp.example/acs", MEMBER_CERT
    )
    school = idp_entity(
        "https://bad-idp.example/metadata", "https://bad-idp.example/sso", MEMBER_CERT
    )
    bad = [
        with_slo(service, "http://bad-sp.example/slo"),
        with_slo(school, "https://bad-idp.example/slo", response="http://bad-idp.example/answer"),
    ]
    caplog.set_level("INFO", logger="broker.saml.aggregate")
    result = read(aggregate([*bad, *members()]))
    assert {(e.entity_id, e.role) for e in result.entities} == {
        ("https://bad-sp.example/metadata", "sp"),
        ("https://bad-idp.example/metadata", "idp"),
        ("https://sp.example/metadata", "sp"),
        ("https://idp.example/metadata", "idp"),
    }
    kept = next(e for e in result.entities if e.entity_id == "https://bad-sp.example/metadata")
    assert "http://bad-sp.example/slo" in kept.xml  # as published: the logout path skips it
    assert result.skipped == 0
    assert not [r for r in caplog.records if r.getMessage() == "metadata entity left out"]
    named = [
        (r.__dict__["reason"], r.__dict__["role"], r.__dict__["detail"])
        for r in caplog.records
        if r.getMessage() == "metadata entity kept; its SLO URL is not used"
    ]
    assert named == [
        (
            "entity_slo_not_https",
            "sp",
            "SLO URL 'http://bad-sp.example/slo' of https://bad-sp.example/metadata must be "
            "https (plain http only on loopback)",
        ),
        (
            "entity_slo_not_https",
            "idp",
            "SLO response URL 'http://bad-idp.example/answer' of https://bad-idp.example/metadata "
            "must be https (plain http only on loopback)",
        ),
    ]


def test_a_plain_http_slo_url_does_not_excuse_a_plain_http_sso_or_acs_url() -> None:
    # SSO and ACS problems stay fatal in a feed, whatever else the entity has.
    school = idp_entity("https://bad.example/metadata", "http://bad.example/sso", MEMBER_CERT)
    service = sp_entity("https://bad-sp.example/metadata", "http://bad-sp.example/acs", MEMBER_CERT)
    bad = [
        with_slo(school, "http://bad.example/slo"),
        with_slo(service, "http://bad-sp.example/slo"),
    ]
    result = read(aggregate([*bad, *members()]))
    assert {e.entity_id for e in result.entities} == {
        "https://sp.example/metadata",
        "https://idp.example/metadata",
    }
    assert result.skipped == 2


def test_roles_restrict_what_a_source_may_deliver() -> None:
    result = read(aggregate(), roles=("sp",))
    assert {e.role for e in result.entities} == {"sp"}


def test_doctype_and_foreign_roots_are_refused() -> None:
    refused(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + aggregate()[38:], "doctype")
    refused(b"<html><body>maintenance</body></html>", "not_metadata")
    refused(b"", "malformed")


def test_an_aggregate_without_usable_entities_is_refused() -> None:
    refused(aggregate([]), "no_usable_entities")


def test_comments_cannot_shorten_what_was_signed() -> None:
    # c14n drops comments; lxml would stop text at one. The reader strips them after verifying.
    entity = sp_entity("https://sp.example/metadata", "https://sp.example/acs", MEMBER_CERT)
    commented = entity.replace(MEMBER_CERT, MEMBER_CERT[:40] + "<!-- x -->" + MEMBER_CERT[40:])
    result = read(aggregate([commented]))
    (only,) = result.entities
    assert MEMBER_CERT in only.xml and "<!--" not in only.xml


def test_a_nested_group_past_its_valid_until_takes_its_members_along() -> None:
    inner_sp = sp_entity("https://inner.example/metadata", "https://inner.example/acs", MEMBER_CERT)
    group = (
        '<md:EntitiesDescriptor validUntil="2020-01-01T00:00:00Z">'
        f"{inner_sp}</md:EntitiesDescriptor>"
    )
    result = read(aggregate([group, *members()]))
    assert "https://inner.example/metadata" not in {e.entity_id for e in result.entities}
    assert result.skipped == 1


ATTACKER_CERT = certificate_body(self_signed_pair("attacker")[1])


def _attacker_idp() -> str:
    """The federation's school IdP again, with the attacker's key and SSO endpoint."""
    return idp_entity("https://idp.example/metadata", "https://evil.example/sso", ATTACKER_CERT)


def test_an_entity_slipped_into_the_signatures_key_info_is_not_read() -> None:
    # The enveloped signature covers everything but itself, and its KeyInfo is in no Reference:
    # whoever relays the feed (a mirror, a file copied in) can write there and the signature
    # still verifies. An entity there came first in document order, so it took the place of
    # the federation's own copy of that entity id: the attacker's key for a school's IdP.
    data = aggregate()
    at = data.index(b"</ds:SignatureValue>") + len(b"</ds:SignatureValue>")
    tampered = data[:at] + f"<ds:KeyInfo>{_attacker_idp()}</ds:KeyInfo>".encode() + data[at:]
    result = read(tampered)
    idps = [e for e in result.entities if e.role == "idp"]
    assert [e.entity_id for e in idps] == ["https://idp.example/metadata"]
    assert MEMBER_CERT in idps[0].xml and ATTACKER_CERT not in idps[0].xml


def test_only_members_of_the_groups_are_entities_not_descriptors_nested_elsewhere() -> None:
    # SAML metadata 2.3.1: an EntitiesDescriptor's members are its EntityDescriptor and
    # EntitiesDescriptor children. One inside an Extensions element (the group's, or a member's)
    # is extension content the federation passed along, not an entity it registered.
    member = sp_entity("https://sp.example/metadata", "https://sp.example/acs", MEMBER_CERT)
    carrier = member.replace(
        "<md:SPSSODescriptor",
        f"<md:Extensions>{_attacker_idp()}</md:Extensions><md:SPSSODescriptor",
        1,
    )
    real = idp_entity("https://idp.example/metadata", "https://idp.example/sso", MEMBER_CERT)
    group_extensions = f"<md:Extensions>{_attacker_idp()}</md:Extensions>"
    result = read(aggregate([group_extensions, carrier, real]))
    idps = [e for e in result.entities if e.role == "idp"]
    assert [e.entity_id for e in idps] == ["https://idp.example/metadata"]
    assert ATTACKER_CERT not in idps[0].xml


def _as_utf16(data: bytes, prolog: str = "") -> bytes:
    body = data.split(b"?>", 1)[1].decode()
    return f'<?xml version="1.0" encoding="UTF-16"?>\n{prolog}{body}'.encode("utf-16")


def test_a_doctype_in_a_utf16_download_is_refused() -> None:
    # UTF-16 hides `<!DOCTYPE` from the byte check; the DOCTYPE sits outside the signed root,
    # so the feed's signature still verifies with it. The parsed tree's DOCTYPE is refused, as
    # the firewall refuses it in a SAML message.
    refused(_as_utf16(aggregate(), '<!DOCTYPE md:EntitiesDescriptor [<!ENTITY x "y">]>'), "doctype")
    assert len(read(_as_utf16(aggregate())).entities) == 2  # the encoding itself is fine


def test_a_valid_until_beyond_the_maximum_validity_interval_is_refused() -> None:
    # Shibboleth's maxValidityInterval: a feed signed to hold for a year could be replayed for
    # a year by whoever keeps a copy.
    refused(aggregate(valid_until=NOW + timedelta(days=15)), "valid_until_too_far")
    assert read(aggregate(valid_until=NOW + timedelta(days=14)))
    assert read(aggregate(valid_until=NOW + timedelta(days=60)), max_validity=timedelta(days=90))


def test_the_publication_instant_is_the_documents_own() -> None:
    published = NOW.replace(microsecond=0) - timedelta(hours=2)
    assert read(aggregate(published=published)).published_at == published
    assert read(aggregate()).published_at is None
    # A member's PublicationInfo says when that entity was registered, not the feed made.
    entity = sp_entity("https://sp.example/metadata", "https://sp.example/acs", MEMBER_CERT)
    dated = entity.replace(
        "<md:SPSSODescriptor",
        '<md:Extensions><mdrpi:PublicationInfo xmlns:mdrpi="urn:oasis:names:tc:SAML:metadata:rpi"'
        ' creationInstant="2030-01-01T00:00:00Z"/></md:Extensions><md:SPSSODescriptor',
        1,
    )
    assert read(aggregate([dated])).published_at is None


def test_a_publication_instant_ahead_of_the_clock_or_unreadable_is_refused() -> None:
    # Taken, a feed "published" next year would make every correct feed until then older.
    refused(aggregate(published=NOW + timedelta(hours=1)), "published_in_future")
    assert read(aggregate(published=NOW + timedelta(minutes=2)))  # clock skew
    data = aggregate(published=NOW).replace(b'creationInstant="', b'creationInstant="soon', 1)
    start = data.index(b"<ds:Signature")
    end = data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    refused(
        data[:start] + data[end:], "bad_creation_instant", certificates=[], require_signature=False
    )


def test_a_publication_info_without_a_creation_instant_is_a_feed_without_one() -> None:
    # creationInstant is optional in mdrpi (only publisher is required): such a feed is
    # schema-valid, and refusing it would leave the federation on its last good copy until
    # that expired. It is read as a feed that does not say when it was published.
    data = aggregate(published=NOW)
    start = data.index(b'creationInstant="')
    end = data.index(b'"', start + len(b'creationInstant="')) + 1
    data = data[:start] + data[end:]
    start = data.index(b"<ds:Signature")
    end = data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    unsigned = data[:start] + data[end:]
    result = read(unsigned, certificates=[], require_signature=False)
    assert result.published_at is None
    assert len(result.entities) == 2


def test_older_means_published_earlier_else_ending_earlier() -> None:
    day = timedelta(days=1)
    held = FeedDates(NOW, NOW + 7 * day)
    assert is_older(FeedDates(NOW - day, NOW + 6 * day), held)
    assert not is_older(FeedDates(NOW + day, NOW + 8 * day), held)
    assert not is_older(FeedDates(NOW, NOW + 7 * day), held)  # re-signed: not older
    # Publication instants decide when both are known, whatever validUntil says.
    assert is_older(FeedDates(NOW - day, NOW + 9 * day), held)
    assert not is_older(FeedDates(NOW + day, NOW + 6 * day), held)
    # Either one undated: validUntil decides.
    assert is_older(FeedDates(None, NOW + 6 * day), held)
    assert is_older(FeedDates(NOW - day, NOW + 6 * day), FeedDates(None, NOW + 7 * day))
    assert not is_older(FeedDates(None, NOW + 7 * day), held)
    # Nothing to compare: not older (a source that requires no validUntil, a file by hand).
    assert not is_older(FeedDates(None, None), held)
    assert not is_older(FeedDates(None, NOW), FeedDates(None, None))
