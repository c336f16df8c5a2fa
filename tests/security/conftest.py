"""The storage tests' PostgreSQL fixtures, for security tests that run on PostgreSQL too."""

from tests.storage.conftest import postgres_registry_url, postgres_server

__all__ = ["postgres_registry_url", "postgres_server"]
