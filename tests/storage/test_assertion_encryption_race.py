"""`publisher update --assertion-encryption auto` racing a metadata change, on PostgreSQL with two
connections (sql_registry.py `set_assertion_encryption`).

Back to `auto` is refused while the metadata in force publishes a key the broker cannot encrypt
for (every login would be refused). The metadata is checked in the switch's own transaction,
under the service row's lock and the registry state row's: a change of the service's own copy,
or a metadata source's refresh, written but not committed when the switch comes, is waited for
and then seen, so the switch refuses instead of writing `auto` over metadata it never checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import click
import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from broker.cli.publisher_logout import set_assertion_encryption
from broker.core.model import AssertionEncryption, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.changes import bump_generation
from broker.registry.federation_tables import FederationEntityRow, MetadataSourceRow
from broker.registry.tables import ServiceRow
from tests.adapters.test_cli_assertion_encryption import GCM, GCM_XML, sp_metadata
from tests.support.races import held_open_while
from tests.unit.test_publisher_encryption import AES256_CBC, key_descriptor, rsa_certificate

pytestmark = pytest.mark.postgres

SERVICE = Service("lesmethode", "Lesmethode", GCM, None)
# The same entity, now listing only a data encryption algorithm the broker does not use.
CBC_ONLY = sp_metadata(GCM, key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,)))


@pytest.fixture
def registry(postgres_registry_url: str) -> Iterator[SqlRegistry]:
    """A SAML service whose metadata publishes a usable key, set to `off` by the operator."""
    migrate(postgres_registry_url)
    opened = SqlRegistry(postgres_registry_url)
    opened.add_service(SERVICE, GCM_XML)
    assert opened.set_assertion_encryption(SERVICE.id, AssertionEncryption.OFF)
    try:
        yield opened
    finally:
        opened.close()


def _own_copy_replaced(session: Session) -> None:
    # As `publisher update --saml-metadata` writes it (sql_registry.update_service_metadata).
    session.execute(
        update(ServiceRow).where(ServiceRow.id == SERVICE.id).values(sp_metadata=CBC_ONLY)
    )
    bump_generation(session)


def _source_refreshed(session: Session) -> None:
    # As a metadata source's refresh writes it (federation.py `store`): no service row locked.
    session.add(MetadataSourceRow(name="feed", entity_count=1, last_attempt_at=datetime.now(UTC)))
    session.flush()
    session.execute(
        insert(FederationEntityRow).values(source="feed", entity_id=GCM, role="sp", xml=CBC_ONLY)
    )
    bump_generation(session)


@pytest.mark.parametrize("change", [_own_copy_replaced, _source_refreshed])
def test_auto_waits_for_a_metadata_change_in_progress_and_refuses_on_what_it_left(
    registry: SqlRegistry, postgres_registry_url: str, change: Callable[[Session], None]
) -> None:
    service = registry.any_service(SERVICE.id)  # as the command reads it: off
    assert service is not None
    refused = held_open_while(
        postgres_registry_url,
        change,
        lambda: set_assertion_encryption(registry, service, AssertionEncryption.AUTO),
    )
    assert isinstance(refused, click.ClickException), refused
    assert "assertion encryption stays off" in refused.message
    assert "lists only data encryption algorithms" in refused.message
    found = registry.any_service(SERVICE.id)
    assert found is not None and found.assertion_encryption is AssertionEncryption.OFF
