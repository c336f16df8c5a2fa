"""Reading the entries of a registry TOML file, each value checked for its type and shape.

`Entries` walks one table at a time and notes every problem with its place in the file
(`services[3] leesplank: oidc.redirect_uris[2]`) instead of stopping at the first: an operator
fixing a file wants the whole list in one go. Checks that need more than one value (references,
metadata, registrations) are in `registry_import.py`.
"""

from __future__ import annotations

import re
from typing import Any

from broker.core.display_text import MAX_NAME, name_problem

MAX_ID = 64
_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")

Table = dict[str, Any]


class Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, place: str, message: str) -> None:
        self.lines.append(f"{place}: {message}")


class Entries:
    """Typed access to one TOML table at `place`; unknown keys are problems (a typo such as
    `aproved` must not silently mean "not approved")."""

    def __init__(self, table: Table, place: str, problems: Problems, known: set[str]) -> None:
        self.table = table
        self.place = place
        self.problems = problems
        for key in sorted(set(table) - known):
            problems.add(self._at(key), "unknown key")

    def _at(self, key: str) -> str:
        return f"{self.place}: {key}"

    def wrong(self, key: str, message: str) -> None:
        self.problems.add(self._at(key), message)

    def has(self, key: str) -> bool:
        return key in self.table

    def text(self, key: str, *, limit: int = MAX_NAME, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            self.wrong(key, "missing")
            return ""
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            self.wrong(key, f"must be text of 1-{limit} characters")
            return ""
        return value

    def name(self, key: str = "name", *, registered: str | None = None) -> str:
        """A name students or staff read (core/display_text.py). The name the registry holds
        for this entry (`registered`) is not checked again: one registered before a rule stays
        as it is, and a file that leaves it so imports."""
        value = self.text(key)
        if value and value != registered and (problem := name_problem(value)):
            self.wrong(key, str(problem))
        return value

    def identifier(self, key: str) -> str:
        value = self.text(key, limit=MAX_ID)
        if value and not _ID.match(value):
            self.wrong(key, "must be letters, digits, '.', '_', ':' or '-' (at most 64)")
        return value

    def optional_text(self, key: str, *, limit: int = MAX_NAME) -> str | None:
        return self.text(key, limit=limit) if key in self.table else None

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.wrong(key, "must be true or false")
            return default
        return value

    def number(self, key: str, default: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.wrong(key, "must be a whole number of at least 1")
            return default
        return value

    def strings(self, key: str, *, default: list[str] | None = None) -> list[str]:
        value = self.table.get(key, default)
        if value is None:
            self.wrong(key, "missing")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.wrong(key, "must be a list of strings")
            return []
        return list(value)

    def table_of(self, key: str, known: set[str]) -> Entries | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.wrong(key, "must be a table")
            return None
        return Entries(value, f"{self.place}: {key}", self.problems, known)

    def tables(self, key: str, known: set[str]) -> list[Entries]:
        return list_of(self.table, key, self.problems, known, f"{self.place}: ")


def list_of(
    table: Table, key: str, problems: Problems, known: set[str], prefix: str = ""
) -> list[Entries]:
    """The array of tables `key` (`[[key]]`), each entry named by position and id."""
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.add(f"{prefix}{key}", "must be an array of tables ([[" + key + "]])")
        return []
    entries = []
    for index, item in enumerate(value, start=1):
        name = item.get("id") or item.get("attribute")
        if key == "policies":
            name = f"{item.get('school')}/{item.get('service')}"
        label = f"{prefix}{key}[{index}]" + (f" {name}" if isinstance(name, str) else "")
        entries.append(Entries(item, label, problems, known))
    return entries
