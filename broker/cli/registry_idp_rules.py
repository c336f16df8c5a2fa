"""IdPs whose logins must name their school and that no school is on, in a registry file
(`[[idps_naming_school]]`, one `entity_id` each).

A school's `idp_names_school` carries that rule for an IdP with schools. An IdP whose schools
were all removed keeps it (registry/shared_idps.py: the board's IdP still signs in the students
of schools not registered); without this section an export and import would lose it, and the
board's next school would join without it. An import sets the rule where the registry lacks it
and never clears one (an import deletes nothing; `school update --no-idp-names-school` clears it
for an IdP of one school, `school update-idp --no-idp-names-school` by entity id, also for an
IdP no school is on). The file may also name an IdP that schools are on: the same as each of
them saying `idp_names_school = true`. An OpenID provider is named by its issuer (the school's
entity id for either protocol).
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.cli.registry_entries import Entries, Problems, list_of
from broker.core.shared_idp import brin_problem, naming_problem
from broker.registry.snapshot import Snapshot

KIND = "idps_naming_school"
KEYS = {"entity_id"}
MAX_ENTITY_ID = 1024


def read_idp_rules(document: dict[str, object], problems: Problems) -> list[tuple[Entries, str]]:
    """The file's entries with their entity ids, each once."""
    found: list[tuple[Entries, str]] = []
    for entry in list_of(document, KIND, problems, KEYS):
        entity_id = entry.text("entity_id", limit=MAX_ENTITY_ID)
        if entity_id in {other for _, other in found}:
            entry.wrong("entity_id", f"{entity_id!r} appears twice in the file")
        elif entity_id:
            found.append((entry, entity_id))
    return found


def check_idp_rules(
    rules: Sequence[tuple[Entries, str]], current: Snapshot, after: Snapshot
) -> tuple[str, ...]:
    """The entity ids, checked against the schools the import leaves on each IdP (`after`: the
    file's, `current`: the registry's, which the file's replace by id; an OpenID issuer is an
    entity id here too): no school whose id is not a BRIN among those the file does not name
    (registry_references.py checks the file's own schools)."""
    in_file = {e.school.id for e in after.schools}
    schools = [e.school for e in after.schools]
    schools += [e.school for e in current.schools if e.school.id not in in_file]
    for entry, entity_id in rules:
        if problem := naming_problem(entity_id):
            entry.wrong("entity_id", problem)
            continue
        on_idp = [s for s in schools if s.idp_entity_id == entity_id]
        for school in on_idp:
            if school.id not in in_file and (problem := brin_problem(school.id)):
                entry.wrong("entity_id", f"the registry's school on this IdP: {problem}")
    return tuple(entity_id for _, entity_id in rules)
