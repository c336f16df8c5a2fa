"""A registry import and a SAML service's assertion encryption, decided in the import's own
transaction on SQLite and PostgreSQL (registry/bulk_import.py, registry/import_encryption.py).

- A file that does not name the setting leaves the column as the import finds it under the
  service row's lock: an operator's `publisher update --assertion-encryption off` made after the
  file was read (or while the import waits for the row) is not written back over.
- A file's `assertion_encryption = "auto"` for a service whose metadata a metadata source holds
  is checked against the source's copy in force, as `publisher update --assertion-encryption
  auto` checks it: a key the broker cannot encrypt for refuses the import, nothing written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from broker.cli.registry_import import read_registry_file
from broker.core.errors import BadRequest
from broker.core.federation import FederationEntity
from broker.core.model import AssertionEncryption, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.changes import bump_generation
from broker.registry.federation_tables import FederationEntityRow, MetadataSourceRow
from broker.registry.snapshot import Snapshot
from broker.registry.tables import ServiceRow
from broker.saml.encryption_summary import refused_with_auto
from tests.adapters.test_cli_assertion_encryption import GCM, GCM_XML, sp_metadata
from tests.storage.test_registry_file import UNDATED, dump
from tests.support.races import held_open_while
from tests.unit.test_publisher_encryption import AES256_CBC, key_descriptor, rsa_certificate

OFF, AUTO = AssertionEncryption.OFF, AssertionEncryption.AUTO
OWN = Service("lesmethode", "Lesmethode", GCM, None)
FEDERATED_ID = "https://bron.example/sp"
FEDERATED = Service("bron", "Bron", FEDERATED_ID, None)
# The source's copy: its key lists only a data encryption algorithm the broker does not use.
CBC_ONLY = sp_metadata(
    FEDERATED_ID, key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,))
)
USABLE = sp_metadata(FEDERATED_ID, key_descriptor(None, rsa_certificate(2048)))
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def _file(folder: Path, *entries: str) -> Path:
    (folder / "lesmethode.xml").write_text(GCM_XML, encoding="utf-8")
    path = folder / "registry.toml"
    path.write_text("format = 1\n" + "".join(entries), encoding="utf-8")
    return path


# The own-metadata service renamed, its assertion encryption not named.
RENAMED = """
[[services]]
id = "lesmethode"
name = "Lesmethode 2"
saml_metadata_file = "lesmethode.xml"
"""
NEW = """
[[services]]
id = "nieuw"
name = "Nieuw"
saml_entity_id = "https://nieuw.example/sp"
"""
FEDERATED_AUTO = f"""
[[services]]
id = "bron"
name = "Bron"
saml_entity_id = "{FEDERATED_ID}"
assertion_encryption = "auto"
"""


def _setting(registry: SqlRegistry, service_id: str) -> AssertionEncryption:
    found = registry.any_service(service_id)
    assert found is not None
    return found.assertion_encryption


def _read(registry: SqlRegistry, path: Path) -> Snapshot:
    """The file as `registry import` reads it, against the registry now."""
    return read_registry_file(path, registry.snapshot())


def test_a_file_without_the_setting_leaves_a_switch_made_after_it_was_read(
    sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    sql_registry.add_service(OWN, GCM_XML)
    file = _read(sql_registry, _file(tmp_path, RENAMED, NEW))
    # The operator switches encryption off between the file's check and the import's write.
    assert sql_registry.set_assertion_encryption(OWN.id, OFF, "cli:test")
    report = sql_registry.import_snapshot(file, "import:test", encryption_refusal=refused_with_auto)
    assert "service lesmethode" in report.changed and "service nieuw" in report.added
    assert _setting(sql_registry, OWN.id) is OFF
    found = sql_registry.any_service(OWN.id)
    assert found is not None and found.name == "Lesmethode 2"
    # A new service the file says nothing about: auto.
    assert _setting(sql_registry, "nieuw") is AUTO
    # The same file again changes nothing: the setting it does not name is no difference.
    again = sql_registry.import_snapshot(_read(sql_registry, _file(tmp_path, RENAMED, NEW)), "t")
    assert not again.touched
    # The file's own word is written, as before.
    said = RENAMED + 'assertion_encryption = "auto"\n'
    sql_registry.import_snapshot(_read(sql_registry, _file(tmp_path, said)), "import:test")
    assert _setting(sql_registry, OWN.id) is AUTO


@pytest.mark.postgres
def test_an_import_waiting_for_a_switch_in_progress_leaves_it(
    postgres_registry_url: str, tmp_path: Path
) -> None:
    """PostgreSQL, two connections: the operator's switch is written, not committed, when the
    import comes; the import waits for the service row and then leaves the switch's `off`."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url)
    try:
        registry.add_service(OWN, GCM_XML)
        file = _read(registry, _file(tmp_path, RENAMED))

        def switched_off(session: Session) -> None:
            # As sql_registry.set_assertion_encryption writes it.
            session.execute(
                update(ServiceRow).where(ServiceRow.id == OWN.id).values(assertion_encryption="off")
            )
            bump_generation(session)

        raised = held_open_while(
            postgres_registry_url,
            switched_off,
            lambda: registry.import_snapshot(file, "import:test"),
        )
        assert raised is None, raised
        assert _setting(registry, OWN.id) is OFF
        found = registry.any_service(OWN.id)
        assert found is not None and found.name == "Lesmethode 2"
    finally:
        registry.close()


@pytest.fixture
def federated(sql_registry: SqlRegistry) -> Iterator[SqlRegistry]:
    """A service registered by entity id, set to `off`, whose source's copy lists only CBC."""
    sql_registry.federation.store(
        "feed", "one", UNDATED, [FederationEntity(FEDERATED_ID, "sp", CBC_ONLY, None)], NOW
    )
    sql_registry.add_service(FEDERATED, None)
    assert sql_registry.set_assertion_encryption(FEDERATED.id, OFF, "cli:test")
    yield sql_registry


def test_auto_for_a_source_service_is_checked_against_the_sources_copy(
    federated: SqlRegistry, registry_url: str, tmp_path: Path
) -> None:
    file = _read(federated, _file(tmp_path, FEDERATED_AUTO))
    before, generation = dump(registry_url), federated.generation()
    with pytest.raises(BadRequest) as refused:
        federated.import_snapshot(file, "import:test", encryption_refusal=refused_with_auto)
    assert refused.value.code == "import_encryption_refused"
    assert refused.value.detail.startswith(
        "service bron: assertion_encryption cannot be auto: its logins would be REFUSED: "
    )
    assert "lists only data encryption algorithms" in refused.value.detail
    assert refused.value.detail.endswith("; nothing was imported")
    assert dump(registry_url) == before and federated.generation() == generation
    # A dry run says the same.
    with pytest.raises(BadRequest):
        federated.import_snapshot(
            file, "import:test", apply=False, encryption_refusal=refused_with_auto
        )
    # Once the source's copy lists a usable algorithm: imported, auto.
    federated.federation.store(
        "feed", "two", UNDATED, [FederationEntity(FEDERATED_ID, "sp", USABLE, None)], NOW
    )
    federated.import_snapshot(file, "import:test", encryption_refusal=refused_with_auto)
    assert _setting(federated, FEDERATED.id) is AUTO


def test_auto_for_a_source_service_with_no_copy_in_force_is_imported(
    sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    """Nothing to check yet: logins wait for the source's copy (no source holds the entity)."""
    file = _read(sql_registry, _file(tmp_path, FEDERATED_AUTO))
    report = sql_registry.import_snapshot(file, "t", encryption_refusal=refused_with_auto)
    assert report.added == ["service bron"]
    assert _setting(sql_registry, FEDERATED.id) is AUTO


@pytest.mark.postgres
def test_auto_waits_for_a_source_refresh_in_progress_and_checks_its_copy(
    postgres_registry_url: str, tmp_path: Path
) -> None:
    """PostgreSQL, two connections: a source's refresh (which locks no service row) brings a
    copy the broker cannot encrypt for and has not committed when the import comes; the import
    waits for it (the registry state row) and refuses on the copy it brought."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url)
    try:
        registry.add_service(FEDERATED, None)
        assert registry.set_assertion_encryption(FEDERATED.id, OFF, "cli:test")
        file = _read(registry, _file(tmp_path, FEDERATED_AUTO))

        def refreshed(session: Session) -> None:
            # As federation.py `store` writes it.
            session.add(MetadataSourceRow(name="feed", entity_count=1, last_attempt_at=NOW))
            session.flush()
            session.execute(
                insert(FederationEntityRow).values(
                    source="feed", entity_id=FEDERATED_ID, role="sp", xml=CBC_ONLY
                )
            )
            bump_generation(session)

        refused = held_open_while(
            postgres_registry_url,
            refreshed,
            lambda: registry.import_snapshot(
                file, "import:test", encryption_refusal=refused_with_auto
            ),
        )
        assert isinstance(refused, BadRequest), refused
        assert "lists only data encryption algorithms" in refused.detail
        assert _setting(registry, FEDERATED.id) is OFF
    finally:
        registry.close()
