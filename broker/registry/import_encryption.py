"""A registry import's SAML services set to encrypt (`auto`), checked in the import's own
transaction against the metadata their logins will use, as `publisher update
--assertion-encryption auto` checks it (sql_registry.py `set_assertion_encryption`).

The file's own metadata is checked when the file is read (cli/registry_import.py). Two cases are
not, and are checked here, after the service rows are locked and written:

- the file asks for `auto` for a service whose metadata a metadata source holds (its entry has
  `saml_entity_id`, or a source holds the entity and its copy is the one in force): the file has
  no copy of that metadata, and a source's refresh may bring another until the import commits;
- the file does not name the setting and brings the service's own metadata, which was checked
  as for `off` (the registry's setting when the file was read), and the row is `auto` now (an
  operator's switch since): that metadata went unchecked for a key.

A refused key would refuse every login of the service, so the import is refused, nothing
written. No copy in force (a source that does not hold the entity yet): nothing to check; the
service's logins wait for the source's copy, whose refresh reports the entity's problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from broker.core.errors import BadRequest
from broker.core.model import AssertionEncryption, Protocol
from broker.registry.changes import serialise_checks
from broker.registry.reading import metadata_in_force
from broker.registry.snapshot import ServiceEntry
from broker.registry.tables import ServiceRow

# (entity id, the metadata in force) -> why logins with `auto` would be refused ("REFUSED: …",
# as `publisher list` says it), or None. The SAML side's check (saml/encryption_summary.py),
# given by the caller: the registry reads no metadata itself.
EncryptionRefusal = Callable[[str, str], str | None]


def refuse_unusable_encryption(
    session: Session, entries: Sequence[ServiceEntry], refusal: EncryptionRefusal, now: datetime
) -> None:
    """Raise `BadRequest` (code `import_encryption_refused`) for the first service of `entries`
    (written, their rows locked) that the module note says to check and whose metadata in force
    publishes a key the broker cannot encrypt for."""
    session.flush()
    checked = [entry for entry in entries if _to_check(session, entry)]
    if not checked:
        return
    # A source's refresh locks no service row but takes the registry state row (bump_generation):
    # taken here, after the service rows as every writer takes it, a refresh in progress is
    # waited for and its copy is the one checked.
    serialise_checks(session)
    registered = {entry.service.entity_id: entry.metadata for entry in checked}
    in_force = metadata_in_force(session, "sp", registered, now)
    for entry in checked:
        metadata = in_force.get(entry.service.entity_id)
        would = refusal(entry.service.entity_id, metadata) if metadata else None
        if would is not None:
            raise BadRequest(
                f"service {entry.service.id}: assertion_encryption cannot be auto: its logins "
                f"would be {would}; nothing was imported",
                code="import_encryption_refused",
            )


def _to_check(session: Session, entry: ServiceEntry) -> bool:
    service = entry.service
    if service.protocol is not Protocol.SAML:
        return False
    row = session.get(ServiceRow, service.id)
    if row is None or row.assertion_encryption != AssertionEncryption.AUTO.value:
        return False
    if entry.encryption_given:
        # The file's `auto`: its own copy was checked as it was read, a source's copy was not.
        return True
    # Not named: the file's own copy was checked with the setting the registry had then.
    assumed_off = service.assertion_encryption is AssertionEncryption.OFF
    return entry.metadata is not None and assumed_off
