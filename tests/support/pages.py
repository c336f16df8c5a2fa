"""A tiny Flask app that renders the broker's templates: the catalogues and `static_url`, and
the notice and my-data routes the pages link to, nothing else."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from broker.config import Organization
from broker.web.i18n import init_i18n
from broker.web.labels import install_site_name
from broker.web.my_data import my_data
from broker.web.notice import notice
from broker.web.static_urls import install_static_urls

WEB_DIR = Path(__file__).resolve().parents[2] / "broker" / "web"


def pages_app() -> Flask:
    # Named after the package so static/ and templates/ resolve exactly as in the real app.
    app = Flask("broker.web", root_path=str(WEB_DIR))
    init_i18n(app)
    install_static_urls(app)
    install_site_name(app, Organization())
    app.register_blueprint(notice)
    app.register_blueprint(my_data)
    return app
