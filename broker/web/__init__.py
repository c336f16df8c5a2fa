"""The web edge: Flask app factory, blueprints, templates, translations.

Production: `gunicorn "broker.web:create_app()"` with KETENBROKER_CONFIG set.
"""

from __future__ import annotations

from broker.web.app import create_app

__all__ = ["create_app"]
