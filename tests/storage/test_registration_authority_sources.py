"""Two metadata sources holding the same entity id, on SQLite and PostgreSQL, through a real
refresh: a national source limited to its federation's registration authority and an
interfederation source without a list. The list is honoured when the feed is stored, a copy from
the listed source beats the other's whatever their validUntil (also once it has expired: the
entity is then not trusted), and a changed list re-reads an unchanged feed, as does a copy that
code from before revision 0023 stored unfiltered under a list."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from bench.metadata_aggregate import idp_entity, registered_by
from broker.cli.instance import init_instance
from broker.cli.metadata_refresh import refresh_sources
from broker.config import MetadataSettings, MetadataSource, Settings, load_settings
from broker.core.model import NamingProfile, School, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.federation_tables import MetadataSourceRow
from broker.saml.aggregate import read_metadata
from tests.storage.test_federation_sources import (
    IDP,
    MEMBER_CERT,
    SIGNER_CERT,
    SP,
    Clock,
    feed_body,
    sp,
)
from tests.support.feed import Feed
from tests.unit.test_registration_authorities import ABROAD, NATIONAL

NATIONAL_SSO = "https://idp.school.example/sso"


def school(sso: str, authority: str) -> str:
    return registered_by(idp_entity(IDP, sso, MEMBER_CERT), authority)


@dataclasses.dataclass
class TwoSources:
    settings: Settings
    registry: SqlRegistry
    national: Feed
    edugain: Feed
    clock: Clock
    registry_url: str

    def refresh(self) -> dict[str, str]:
        outcomes = refresh_sources(self.settings, self.registry, clock=self.clock)
        return {
            o.source: o.result if o.reason is None else f"{o.result}:{o.reason}" for o in outcomes
        }

    def listing(self, *authorities: str) -> None:
        """The national source's list as configured (none: no list)."""
        national, edugain = self.settings.metadata.sources
        national = dataclasses.replace(national, registration_authorities=authorities)
        self.settings = dataclasses.replace(
            self.settings, metadata=MetadataSettings(sources=(national, edugain))
        )

    def store_as_before_0023(self, data: bytes) -> None:
        """What a worker of a version before revision 0023 does with the national feed in a
        rolling upgrade: reads it without the list, stores it under the feed's own digest, and
        leaves the list column (which it does not know) as it was."""
        national = self.settings.metadata.sources[0]
        read = read_metadata(
            data,
            certificates=[path.read_bytes() for path in national.signing_certs],
            require_signature=True,
            require_valid_until=True,
            roles=national.roles,
            now=self.clock(),
            max_validity=national.max_validity,
        )
        digest = hashlib.sha256(data).hexdigest()
        self.registry.federation.store("national", digest, read.dates, read.entities, self.clock())
        engine = create_engine(self.registry_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    update(MetadataSourceRow)
                    .where(MetadataSourceRow.name == "national")
                    .values(registration_authorities=NATIONAL, digest=digest)
                )
        finally:
            engine.dispose()

    def school_sso(self) -> str | None:
        xml = self.registry.school_metadata().get(IDP)
        if xml is None:
            return None
        return "national" if NATIONAL_SSO in xml else "abroad"


@pytest.fixture
def two(registry_url: str, tmp_path: Path) -> Iterator[TwoSources]:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    signer = tmp_path / "signer.crt"
    signer.write_bytes(SIGNER_CERT)
    national, edugain = Feed(), Feed()
    sources = (
        MetadataSource(
            name="national",
            url=national.url,
            file=None,
            signing_certs=(signer,),
            registration_authorities=(NATIONAL,),
        ),
        MetadataSource(name="edugain", url=edugain.url, file=None, signing_certs=(signer,)),
    )
    settings = dataclasses.replace(
        load_settings(config),
        registry_url=registry_url,
        metadata=MetadataSettings(sources=sources),
    )
    migrate(registry_url)
    clock = Clock()
    registry = SqlRegistry(registry_url, clock=clock)
    registry.add_service(Service("pub", "Publisher", SP, None, NamingProfile.OID, ()), None)
    registry.add_school(School("12AB", "School", IDP, "name_id", False, ()), "")
    # The national school; the same entity id registered abroad with another SSO URL (and, in
    # real life, another key), in a feed that holds longer.
    national.body = feed_body(school(NATIONAL_SSO, NATIONAL), registered_by(sp(), ABROAD))
    edugain.body = feed_body(
        school("https://evil.example/sso", ABROAD), valid_for=timedelta(days=10)
    )
    try:
        yield TwoSources(settings, registry, national, edugain, clock, registry_url)
    finally:
        national.stop()
        edugain.stop()
        registry.close()


def test_the_list_is_honoured_when_the_feed_is_stored(two: TwoSources) -> None:
    assert two.refresh() == {"national": "updated", "edugain": "updated"}
    # The publisher registered abroad is not read from the national source.
    assert two.registry.federation.entity(SP, "sp") is None
    assert two.registry.federation.sources_of("idp") == {IDP: ("edugain", "national")}
    records = two.registry.federation.records()
    assert records["national"].registration_authorities == (NATIONAL,)
    assert records["national"].entity_count == 1
    assert records["edugain"].registration_authorities == ()


def test_the_listed_sources_copy_wins_whatever_the_valid_until(two: TwoSources) -> None:
    two.refresh()
    assert two.school_sso() == "national"
    held = two.registry.federation.entity(IDP, "idp")
    assert held is not None and NATIONAL_SSO in held.xml


def test_without_a_list_the_latest_valid_until_wins_as_before(two: TwoSources) -> None:
    two.listing()
    two.refresh()
    assert two.school_sso() == "abroad"  # the gap the list closes


def test_a_changed_list_re_reads_an_unchanged_feed(two: TwoSources) -> None:
    two.listing()
    two.refresh()
    generation = two.registry.generation()
    two.listing(NATIONAL)
    # Same bytes, another list: stored again (not "unchanged"), every worker rebuilds.
    assert two.refresh() == {"national": "updated", "edugain": "unchanged"}
    assert two.registry.generation() > generation
    assert two.school_sso() == "national"
    assert two.refresh() == {"national": "unchanged", "edugain": "unchanged"}


def test_a_copy_stored_unfiltered_by_code_before_0023_is_read_again(two: TwoSources) -> None:
    # Before, the digest held was the feed's alone: new code saw the same digest and the same
    # list, kept the unfiltered copy ("unchanged"), and the publisher registered abroad stayed
    # readable from the national source until the federation's next feed.
    two.refresh()
    newer = feed_body(school(NATIONAL_SSO, NATIONAL), registered_by(sp(), ABROAD))
    two.national.body = newer
    two.store_as_before_0023(newer)
    assert two.registry.federation.entity(SP, "sp") is not None  # the gap
    assert two.registry.federation.records()["national"].registration_authorities == (NATIONAL,)
    assert two.refresh() == {"national": "updated", "edugain": "unchanged"}
    assert two.registry.federation.entity(SP, "sp") is None
    assert two.registry.federation.records()["national"].entity_count == 1
    assert two.refresh() == {"national": "unchanged", "edugain": "unchanged"}


def test_a_copy_held_without_a_list_is_not_read_again_for_the_digest(two: TwoSources) -> None:
    # Without a list the digest held is the feed's own, as before: nothing to re-read.
    two.listing()
    assert two.refresh() == {"national": "updated", "edugain": "updated"}
    generation = two.registry.generation()
    assert two.refresh() == {"national": "unchanged", "edugain": "unchanged"}
    assert two.registry.generation() == generation


def test_an_expired_listed_copy_is_not_replaced_by_the_other_sources(two: TwoSources) -> None:
    # The national federation's word stands: past its copy's validUntil the school is not
    # trusted, even though the interfederation copy still holds.
    two.refresh()
    two.clock.now += timedelta(days=8)
    assert two.school_sso() is None
