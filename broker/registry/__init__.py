"""The registry: schools, chains, services and versioned release policies in SQL.

SQLite for the embedded default, PostgreSQL in production; the schema is managed by the Alembic
revisions inside this package (`migrate`). The registry holds no personal data of students.
"""

from __future__ import annotations

# The portal tables share `Base`; importing them here puts them in every migration comparison.
from broker.registry import admin_tables as _admin_tables  # noqa: F401
from broker.registry import chain_move_tables as _chain_move_tables  # noqa: F401
from broker.registry import federation_tables as _federation_tables  # noqa: F401
from broker.registry import pseudonym_key_tables as _pseudonym_key_tables  # noqa: F401
from broker.registry import sealed_only as _sealed_only  # noqa: F401
from broker.registry.admin_accounts import SqlAdminAccounts
from broker.registry.errors import DuplicateEntry, UndeclaredAttribute, UnknownChain
from broker.registry.migration import migrate, migrate_first
from broker.registry.policy_change import PolicyChange
from broker.registry.reading import SqlRegistryReader
from broker.registry.sql_registry import SqlRegistry

__all__ = [
    "DuplicateEntry",
    "PolicyChange",
    "SqlAdminAccounts",
    "SqlRegistry",
    "SqlRegistryReader",
    "UndeclaredAttribute",
    "UnknownChain",
    "migrate",
    "migrate_first",
]
