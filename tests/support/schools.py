"""Schools for the discovery page's tests: OpenID Connect schools on hosts of their own, so
registering one needs no metadata and contacts nothing until a student chooses it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flask import Flask

from broker.cli.demo import prepare_demo
from broker.core.model import OidcUpstream, School


def listed_school(
    school_id: str, name: str, town: str = "", aliases: tuple[str, ...] = ()
) -> School:
    issuer = f"https://login.{school_id.lower()}.example"
    return School(
        school_id,
        name,
        issuer,
        subject_attribute="sub",
        oidc=OidcUpstream(issuer, "client", "secret"),
        town=town,
        aliases=aliases,
    )


def register(app: Flask, schools: Iterable[School]) -> None:
    """`schools` in the registry of the broker `app`."""
    registry = app.extensions["ketenbroker"].registry
    for school in schools:
        registry.add_school(school, "")


def demo_with(directory: Path, port: int, schools: Iterable[School]) -> Flask:
    """The demo's broker app (nothing listens on `port`), with `schools` registered too."""
    settings, apps = prepare_demo(directory, port)
    app = apps[settings.base_url]
    register(app, schools)
    return app
