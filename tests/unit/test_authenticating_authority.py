"""Whom the broker's assertion names as authenticating authority (core 3.4.1.5.1), and how its
two Response builders write that and the school's session end in the AuthnStatement."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from lxml import etree

from broker.core.authenticating_authority import authenticating_authorities, names_school
from broker.core.model import Declaration, OidcUpstream, ReleasePolicy, School, Service
from broker.saml.response_builder import AssertionContent, build_assertion, response_tree

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysaml2 touches a deprecated cryptography mode at import
    from saml2 import saml

SCHOOL = School("99XX00", "Demo College", "https://idp.demo.example/metadata")
LISTED = ("https://idp.board.example/", "https://sts.windows.example/tenant/")
DECLARES = Service(
    "platform", "Platform", "https://platform.example/sp", "chain",
    declarations=(Declaration("school_id", "Om de klas te vinden."),),
)  # fmt: skip
RELEASES = ReleasePolicy(SCHOOL.id, DECLARES.id, frozenset({"school_id"}), 1)


def test_a_policy_releasing_the_school_id_names_the_school_after_its_own_authorities() -> None:
    assert authenticating_authorities(SCHOOL, DECLARES, RELEASES, LISTED) == (
        *LISTED,
        SCHOOL.idp_entity_id,
    )


def test_the_school_naming_itself_or_an_authority_twice_is_named_once() -> None:
    listed = (SCHOOL.idp_entity_id, LISTED[0], LISTED[0], LISTED[1])
    assert authenticating_authorities(SCHOOL, DECLARES, RELEASES, listed) == (
        *LISTED,
        SCHOOL.idp_entity_id,
    )


def test_an_openid_school_is_named_by_its_issuer() -> None:
    oidc = OidcUpstream("https://login.school.example/", "client", "secret")
    school = School(SCHOOL.id, SCHOOL.name, oidc.issuer, oidc=oidc)
    assert authenticating_authorities(school, DECLARES, RELEASES, ()) == (oidc.issuer,)


@pytest.mark.parametrize(
    ("service", "released"),
    [
        (DECLARES, frozenset()),  # the default policy: the pseudonym alone
        (DECLARES, frozenset({"school_name", "given_name"})),  # other attributes only
        (Service("platform", "Platform", "https://platform.example/sp", "chain"), {"school_id"}),
    ],
    ids=["nothing-released", "not-the-school-id", "not-declared"],
)
def test_no_authority_where_the_school_identity_is_not_released(
    service: Service, released: frozenset[str]
) -> None:
    policy = ReleasePolicy(SCHOOL.id, service.id, frozenset(released), 1)
    assert not names_school(service, policy)
    assert authenticating_authorities(SCHOOL, service, policy, LISTED) == ()


def _content(**extra: object) -> AssertionContent:
    values: dict[str, object] = {
        "issuer": "https://kb.example/saml/idp/metadata",
        "audience": DECLARES.entity_id,
        "destination": "https://platform.example/acs",
        "in_response_to": "_request",
        "name_id": "a" * 64,
        "name_id_format": saml.NAMEID_FORMAT_PERSISTENT,
        "sp_name_qualifier": DECLARES.entity_id,
        "attributes": (),
        "authn_instant": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        "authn_context": None,
        "session_index": "_session",
    }
    values.update(extra)
    return AssertionContent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "authorities": (*LISTED, SCHOOL.idp_entity_id),
            "session_not_on_or_after": datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        },
    ],
    ids=["plain", "authorities-and-session-end"],
)
def test_both_builders_write_the_same_authn_statement(extra: dict[str, object]) -> None:
    content = _content(**extra)
    now = datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
    tree, _ = response_tree(content, now, 300, 60, "MIIB")
    ours = tree.getroot().find(f".//{{{saml.NAMESPACE}}}AuthnStatement")
    assert ours is not None
    theirs = etree.fromstring(str(build_assertion(content, now, 300, 60)).encode()).find(
        f"{{{saml.NAMESPACE}}}AuthnStatement"
    )
    assert theirs is not None
    assert dict(ours.attrib) == dict(theirs.attrib)
    assert [(etree.QName(e).localname, e.text) for e in ours.iter()] == [
        (etree.QName(e).localname, e.text) for e in theirs.iter()
    ]
    if extra:
        assert ours.get("SessionNotOnOrAfter") == "2026-12-01T16:00:00Z"
        assert [e.text for e in ours.iter(f"{{{saml.NAMESPACE}}}AuthenticatingAuthority")] == [
            *LISTED,
            SCHOOL.idp_entity_id,
        ]
    else:
        assert ours.get("SessionNotOnOrAfter") is None
