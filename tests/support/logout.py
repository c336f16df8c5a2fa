"""Logout as a browser walks it (broker/login/logout.py): start it somewhere, load the
propagation page's iframes the way Chromium would (each one followed through redirects and
auto-POST forms until the service's answer is back at the broker), move on, and read the final
page. Shared by the SAML and OIDC logout tests; the browser tests do the same in Chromium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin

import jwt

from tests.support.client import Browser, Page
from tests.support.live import LiveDemo

_IFRAME = re.compile(r'<iframe[^>]*\bsrc="([^"]+)"[^>]*data-logout-frame', re.S)
_SERVICE = re.compile(
    r'<li data-logout-service data-status="([a-z_]+)">\s*<span class="logout-list__name">([^<]*)</span>'
)
_SCHOOL = re.compile(r'data-school-status="([a-z_]+)"')
_RUN = re.compile(r"/logout/([A-Za-z0-9_-]+)")
_ANSWER_LINK = re.compile(r'<a[^>]*href="([^"]+)"[^>]*data-logout-answer')
SAML_FIELDS = ("SAMLRequest", "SAMLResponse")


@dataclass(frozen=True)
class LogoutOutcome:
    """The final page, read: service name → status, the school's status, the page itself."""

    services: dict[str, str]
    school: str
    page: Page
    frames: list[Page]


def run_id_of(page: Page) -> str:
    found = _RUN.search(page.url)
    assert found, page.url
    return found.group(1)


def carry_saml_posts(browser: Browser, page: Page, limit: int = 6) -> Page:
    """Submit auto-POST pages that carry a SAML message, as the browser's script would."""
    for _ in range(limit):
        forms = [
            f for f in page.forms if f.method == "post" and any(k in f.fields for k in SAML_FIELDS)
        ]
        if page.status != 200 or not forms:
            return page
        page = browser.post(forms[0].action, dict(forms[0].fields))
    return page


def frame_urls(page: Page) -> list[str]:
    """The `src` of every iframe of the propagation page (one per service told there)."""
    found: list[str] = _IFRAME.findall(page.text)
    return found


def load_frames(browser: Browser, page: Page) -> list[Page]:
    """Every iframe of the propagation page, followed to where it ends."""
    assert page.status == 200, page.text
    frames = []
    for src in frame_urls(page):
        frames.append(carry_saml_posts(browser, browser.get(urljoin(page.url, unescape(src)))))
    return frames


def finish_logout(browser: Browser, propagation: Page) -> LogoutOutcome:
    """From the propagation page: load the iframes, then move on (to the school and back)
    and read the final page."""
    frames = load_frames(browser, propagation) if "/done" not in propagation.url else []
    page = propagation
    if "/done" not in page.url:
        run = run_id_of(propagation)
        page = carry_saml_posts(
            browser, browser.get(urljoin(propagation.url, f"/logout/{run}/next"))
        )
    return read_final(page, frames)


def read_final(page: Page, frames: list[Page] | None = None) -> LogoutOutcome:
    assert page.status == 200 and "/done" in page.url, (page.url, page.text[:2000])
    services = {unescape(name).strip(): status for status, name in _SERVICE.findall(page.text)}
    school = _SCHOOL.search(page.text)
    return LogoutOutcome(services, school.group(1) if school else "", page, frames or [])


def answer_initiator(browser: Browser, final: Page) -> Page:
    """Follow the final page's way back to whoever started the logout (a form or a link)."""
    forms = [f for f in final.forms if f.method == "post" and "SAMLResponse" in f.fields]
    if forms:
        return browser.post(forms[0].action, dict(forms[0].fields))
    link = _ANSWER_LINK.search(final.text)
    assert link, final.text
    return browser.get(unescape(link.group(1)))


def sends_on_by_itself(final: Page) -> bool:
    """Whether the final page carries its answer on without a click: the answer marked for the
    page's script, and the script loaded (a browser then leaves the page at once)."""
    marked = re.search(r"<(?:form|a)\b[^>]*data-logout-answer data-logout-continue", final.text)
    return marked is not None and "/static/logout.js" in final.text


def warns(final: Page) -> bool:
    """Whether the final page tells the student they may still be logged in somewhere."""
    return "data-logout-warning" in final.text


def answer_of(final: Page) -> object:
    """The final page's way back as a value to compare: the form's action and fields, or the
    link (a signed SAML message, or the OIDC redirect)."""
    forms = [f for f in final.forms if f.method == "post" and "SAMLResponse" in f.fields]
    if forms:
        return (forms[0].action, dict(forms[0].fields))
    link = _ANSWER_LINK.search(final.text)
    assert link, final.text
    return unescape(link.group(1))


def wait_out(demo: LiveDemo, seconds: float) -> Any:
    """Set the broker's wait for answers (the demo's default is several seconds)."""
    previous = demo.broker.logout.wait_seconds
    demo.broker.logout.wait_seconds = seconds
    return previous


def peer_logouts(browser: Browser, base_url: str) -> list[dict[str, Any]]:
    """What a demo peer (publisher or school) heard about logouts (demo/slo.py)."""
    page = browser.get(f"{base_url}/logouts.json")
    assert page.status == 200, page.text
    events: list[dict[str, Any]] = page.response.json()
    return events


LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def broker_logout_claims(demo: LiveDemo, token: str, audience: str) -> dict[str, Any]:
    """A logout token the broker sent a platform, checked as the platform would, with PyJWT
    (a second JOSE library) against the broker's JWKS: its claims."""
    from tests.flows.test_oidc_front import discovery

    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    key = jwt.PyJWKClient(discovery(demo)["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=demo.broker_url,
        options={"require": ["iss", "aud", "iat", "exp", "jti"]},
    )
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    return claims
