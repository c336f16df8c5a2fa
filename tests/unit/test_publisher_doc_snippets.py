"""The Shibboleth SP attribute-map rules docs/publishers.md (section 7) gives cover what the
broker sends that Shibboleth's shipped attribute-map.xml has no active rule for: the attributes
with no `urn:oid:` name (both naming profiles) and the previous pseudonym of a migration window
(pseudonym-rotation-for-publishers.md); `pairwise-id` has a shipped rule (3.4.1), checked live
in tests/interop/test_shibboleth_sp.py, which reads the same block. A rule missing there
means Shibboleth drops the attribute ("skipping unmapped SAML 2.0 Attribute")."""

from __future__ import annotations

from lxml import etree

from broker.core.catalogue import CATALOGUE, OID_FORMAT, PREVIOUS_PSEUDONYM
from tests.support.doc_snippets import doc_snippet

ATTRIBUTE_MAP = "urn:mace:shibboleth:2.0:attribute-map"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _rules() -> dict[str, str]:
    """name → nameFormat of every rule in the documented snippet (Shibboleth reads a rule
    without nameFormat as `uri`)."""
    snippet = doc_snippet("xml", PREVIOUS_PSEUDONYM)
    root = etree.fromstring(
        f'<Attributes xmlns="{ATTRIBUTE_MAP}" xmlns:xsi="{XSI}">{snippet}</Attributes>'
    )
    return {
        str(rule.get("name")): str(rule.get("nameFormat", OID_FORMAT))
        for rule in root.iterfind(f"{{{ATTRIBUTE_MAP}}}Attribute")
    }


def test_every_attribute_without_a_shipped_rule_has_a_documented_one() -> None:
    rules = _rules()
    # The oid profile's names without a FriendlyName (no urn:oid: form).
    unnamed = {
        (name, name_format)
        for attribute in CATALOGUE.values()
        for name, name_format, friendly in [attribute.saml_name("oid")]
        if friendly is None
    }
    assert unnamed, "the catalogue has attributes without a urn:oid: name"
    for name, name_format in unnamed | {(PREVIOUS_PSEUDONYM, OID_FORMAT)}:
        assert rules.get(name) == name_format, name


def test_the_previous_pseudonym_rule_takes_the_bare_value() -> None:
    """Its value is the bare 64 hex characters: a scoped decoder would drop it."""
    snippet = doc_snippet("xml", PREVIOUS_PSEUDONYM)
    assert f'<Attribute name="{PREVIOUS_PSEUDONYM}" id="previous-pseudonym"/>' in snippet
