"""The web edge: Flask app factory, blueprints, templates, translations.

Production: `gunicorn "broker.web:create_app()"` with KETENBROKER_CONFIG set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Loaded on first use: a command that only needs the log handler (broker/web/logs.py) does
    # not pay for the whole app (about 1.4 s).
    if name == "create_app":
        from broker.web.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
