"""A worker's rebuild parses only the entities whose metadata changed (entities.py)."""

from __future__ import annotations

from pathlib import Path

from bench.metadata_aggregate import certificate_body, sp_entity
from broker.certificates import self_signed_pair
from broker.cli.instance import init_instance
from broker.config import load_settings
from broker.saml.entities import ParsedMetadata, idp_config
from broker.saml.xmlsig import enable_inprocess_crypto

MD_NS = (
    'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
)
CERT = certificate_body(self_signed_pair("member")[1])


def entity(n: int, acs: str = "acs") -> str:
    xml = sp_entity(f"https://sp{n}.example/metadata", f"https://sp{n}.example/{acs}", CERT)
    return xml.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {MD_NS} ", 1)


def parsed_by_entity(config: object) -> dict[str, object]:
    store = config.metadata.metadata  # type: ignore[attr-defined]
    return {next(iter(md.keys())): md for md in store.values()}


def test_a_rebuild_reuses_unchanged_entities_and_drops_removed_ones(tmp_path: Path) -> None:
    enable_inprocess_crypto()
    settings = load_settings(init_instance(tmp_path / "kb", "https://kb.example", "kb", "KB"))
    view = ParsedMetadata()
    first = idp_config(settings, [])
    view.load(first, [entity(1), entity(2), entity(3)])
    before = parsed_by_entity(first)
    assert set(before) == {f"https://sp{n}.example/metadata" for n in (1, 2, 3)}

    second = idp_config(settings, [])
    view.load(second, [entity(1), entity(2, "new-acs")])
    after = parsed_by_entity(second)
    assert set(after) == {"https://sp1.example/metadata", "https://sp2.example/metadata"}
    assert after["https://sp1.example/metadata"] is before["https://sp1.example/metadata"]
    assert after["https://sp2.example/metadata"] is not before["https://sp2.example/metadata"]
    acs = second.metadata.assertion_consumer_service("https://sp2.example/metadata")
    assert [a["location"] for a in acs] == ["https://sp2.example/new-acs"]
