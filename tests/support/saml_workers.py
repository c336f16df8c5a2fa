"""More broker workers next to the live demo: the demo's own configuration with the store moved
to Redis, and login records planted in a worker the way a slower twin of a login would leave
them. Used to prove that replay protection holds across workers and restarts."""

from __future__ import annotations

import base64
import shutil
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.config import Settings, load_settings
from broker.login.login_model import LoginRequest
from broker.web import create_app
from tests.support.client import Browser
from tests.support.forge import SchoolForger
from tests.support.hostile import Signer
from tests.support.live import PERSISTENT, LiveDemo, served


def redis_settings(demo: LiveDemo, redis_url: str, name: str) -> Settings:
    """The demo's config (same keys, same registry file) with the store at `redis_url`."""
    config = demo.directory / f"ketenbroker-{name}.toml"
    shutil.copyfile(demo.directory / "ketenbroker.toml", config)
    text = config.read_text(encoding="utf-8").replace('url = "memory://"', f'url = "{redis_url}"')
    config.write_text(text, encoding="utf-8")
    assert tomllib.loads(text)["store"]["url"] == redis_url
    settings = load_settings(config)
    assert settings.base_url == demo.broker_url and settings.registry_url
    return settings


@contextmanager
def worker(settings: Settings, url: str) -> Iterator[Flask]:
    """A broker process serving at `url` until the block ends."""
    app = create_app(settings)
    try:
        with served(url, app):
            yield app
    finally:
        app.extensions["ketenbroker"].registry.close()


def browser_secret(browser: Browser, demo: LiveDemo) -> bytes:
    raw = browser.cookies(demo.broker_url)["__Host-kb_browser"]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def waiting_record(app: Flask, browser: Browser, demo: LiveDemo, request_id: str) -> str:
    """A login record of leesplank on `app`, in `browser`, that waits for the demo school's
    answer to `request_id`; returns its login id (the RelayState the school echoes)."""
    broker = app.extensions["ketenbroker"]
    secret = browser_secret(browser, demo)
    leesplank = demo.publishers["leesplank"]
    record = broker.flow.start(
        secret,
        LoginRequest(
            service_id="leesplank",
            front={
                "protocol": "saml",
                "request_id": "_publisher-request",
                "acs_url": leesplank.acs_url,
                "relay_state": "",
                "sp_entity_id": leesplank.entity_id,
                "name_id_format": PERSISTENT,
            },
        ),
    )
    chosen = broker.flow.with_school(record, DEMO_SCHOOL_ID)
    broker.flow.note_upstream(secret, chosen, request_id)
    return str(record.login_id)


def demo_school_forger(demo: LiveDemo) -> SchoolForger:
    """The demo school's IdP, as far as signing goes: its entity id and its key."""
    peers = demo.directory / "peers"
    return SchoolForger(
        demo.school_entity_id,
        peers / "school.key",
        peers / "school.crt",
        demo.broker.saml_entities.sp_metadata(),
    )


def demo_school_signer(demo: LiveDemo) -> Signer:
    """The demo school's signing key, to sign a message changed after forging."""
    peers = demo.directory / "peers"
    return Signer(peers / "school.key", peers / "school.crt")
