"""Static files under versioned URLs (docs/performance.md, "A slow phone connection"): a page
names each file with `?v=` and the start of its SHA-256, a request naming the current version
is kept a year without asking again, and any other (none, or an older page's) is checked again
each time, as before."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask, render_template_string

from broker.cli.demo import prepare_demo
from broker.web.static_urls import install_static_urls
from tests.support.pages import WEB_DIR


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    # The demo's broker; port 8701 only appears in its URLs, nothing listens.
    settings, apps = prepare_demo(tmp_path_factory.mktemp("static-caching"), 8701)
    return apps[settings.base_url]


def _version(name: str) -> str:
    return hashlib.sha256((WEB_DIR / "static" / name).read_bytes()).hexdigest()[:10]


def test_the_page_names_each_file_with_its_version(app: Flask) -> None:
    page = app.test_client().get("/").get_data(as_text=True)
    assert f'href="/static/style.css?v={_version("style.css")}"' in page
    assert f'src="/static/submit-once.js?v={_version("submit-once.js")}"' in page


@pytest.mark.parametrize("name", ["style.css", "submit-once.js", "logout.js"])
def test_the_current_version_is_kept_a_year(app: Flask, name: str) -> None:
    client = app.test_client()
    answer = client.get(f"/static/{name}?v={_version(name)}")
    answer.close()
    assert answer.status_code == 200
    assert answer.cache_control.immutable and answer.cache_control.public
    assert answer.cache_control.max_age == 31536000
    assert not answer.cache_control.no_cache
    # A browser that asks again anyway (a reload) gets the same lifetime with its 304.
    again = client.get(
        f"/static/{name}?v={_version(name)}", headers={"If-None-Match": answer.headers["ETag"]}
    )
    again.close()
    assert again.status_code == 304 and again.cache_control.immutable


@pytest.mark.parametrize("query", ["", "?v=0123456789", "?v=", "?x=1"])
def test_without_the_current_version_the_file_is_checked_each_time(app: Flask, query: str) -> None:
    answer = app.test_client().get(f"/static/style.css{query}")
    answer.close()
    assert answer.status_code == 200
    assert answer.cache_control.no_cache and not answer.cache_control.immutable
    assert answer.cache_control.max_age is None
    assert "ETag" in answer.headers


def test_a_name_spelled_otherwise_is_not_kept(app: Flask) -> None:
    # "./style.css" is served, but only the folder's own names carry a version.
    answer = app.test_client().get(f"/static/./style.css?v={_version('style.css')}")
    answer.close()
    assert not answer.cache_control.immutable


def test_the_page_asks_for_no_icon_and_its_policy_lets_it(app: Flask) -> None:
    # Else a browser asks for /favicon.ico after every page: a round trip on a phone.
    answer = app.test_client().get("/")
    assert '<link rel="icon" href="data:,">' in answer.get_data(as_text=True)
    assert "img-src 'self' data:;" in answer.headers["Content-Security-Policy"]


def _versioned_url(folder: Path) -> str:
    app = Flask(__name__, static_folder=str(folder), static_url_path="/static")
    install_static_urls(app)
    with app.test_request_context("/"):
        return render_template_string("{{ static_url('page.js') }}")


def test_the_version_follows_the_files_bytes(tmp_path: Path) -> None:
    script = tmp_path / "page.js"
    script.write_bytes(b"console.log(1);\n")
    before = _versioned_url(tmp_path)
    assert before == f"/static/page.js?v={hashlib.sha256(script.read_bytes()).hexdigest()[:10]}"
    script.write_bytes(b"console.log(2);\n")
    after = _versioned_url(tmp_path)  # a new worker: read afresh
    assert re.fullmatch(r"/static/page\.js\?v=[0-9a-f]{10}", after) and after != before


def test_a_name_outside_the_folder_has_no_version(tmp_path: Path) -> None:
    app = Flask(__name__, static_folder=str(tmp_path), static_url_path="/static")
    install_static_urls(app)
    with app.test_request_context("/"):
        assert render_template_string("{{ static_url('missing.js') }}") == "/static/missing.js"
