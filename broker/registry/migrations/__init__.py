"""Alembic environment of the registry (a package so that it ships with the wheel)."""
