"""Ketenbroker: an identity broker for education that releases chain pseudonyms."""

from __future__ import annotations

__version__ = "0.1.0"
