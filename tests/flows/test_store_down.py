"""Store down: a clear "try again" page (503), never a login with a check skipped."""

from __future__ import annotations

import html
import shutil
import socket
from pathlib import Path

from broker.config import load_settings
from broker.web import create_app
from tests.support.client import Browser
from tests.support.live import LiveDemo, free_ports, serve_app


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_with_store(demo: LiveDemo, store_url: str, name: str) -> Path:
    config = demo.directory / name
    shutil.copyfile(demo.directory / "ketenbroker.toml", config)
    text = config.read_text(encoding="utf-8").replace('url = "memory://"', f'url = "{store_url}"')
    config.write_text(text, encoding="utf-8")
    return config


def test_store_down_gives_a_localised_503_and_no_login(demo: LiveDemo) -> None:
    config = _config_with_store(demo, f"redis://127.0.0.1:{_closed_port()}/0", "store-down.toml")
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    server = serve_app(url, create_app(load_settings(config)))
    try:
        browser = Browser(language="nl")
        page = browser.get(
            f"{demo.publishers['leesplank'].base_url}/login",
            stop=lambda target: target.startswith(demo.broker_url),
        )
        assert page.location is not None
        answer = browser.get(page.location.replace(demo.broker_url, url, 1), follow=False)
        assert answer.status == 503, answer.text[:300]
        assert 'lang="nl"' in answer.text
        # Words a student knows (no "broker"), and the way on: the same address again.
        assert "Inloggen lukt even niet. Probeer het zo opnieuw." in answer.text
        assert "broker" not in answer.text.lower().replace("ketenbroker", "")
        reload = page.location.replace(demo.broker_url, "", 1)
        assert f'href="{html.escape(reload)}">Opnieuw proberen</a>' in answer.text
        assert "Foutcode" in answer.text
        assert answer.location is None
        assert "SAMLResponse" not in answer.text
        # The worker itself stays healthy.
        assert browser.get(f"{url}/healthz").status == 200
    finally:
        server.shutdown()
        server.server_close()
