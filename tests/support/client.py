"""A small HTTP client that carries cookies and HTML forms the way a browser does for SAML.

Why not a `requests.Session`: the broker's cookies are `Secure; SameSite=None` also on plain-http
loopback (Chromium counts loopback as a secure context, pitfalls.md), and requests' cookie jar
never sends a Secure cookie over http. So this client keeps its own jar, per host name (cookies
are per host, not per port), sends every cookie of the host, follows redirects itself and lets a
test `submit` a page's form, which is how a browser carries the auto-POST pages of SAML.

Deliberately not modelled: Path and Domain attributes (every cookie here is host-only with
path "/") and SameSite (a real browser would withhold `Lax` cookies on the cross-site POSTs; the
browser tests cover that in Chromium).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 20
TIMEOUT = 15


@dataclass
class Form:
    """One HTML form: absolute action, method, hidden fields and the named submit buttons."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    css_class: str = ""


class _FormParser(HTMLParser):
    """The forms a browser shows. An error page that answers a POST carries its content in the
    other language too (base.html, `in-language`), hidden until its language switch targets it:
    the forms of that copy are not read, as a student sees one of each."""

    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.forms: list[Form] = []
        self._open: Form | None = None
        self._copies = 0
        self._hidden_depth = 0  # the divs open inside a hidden copy (0: not in one)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "div" and self._hidden_depth:
            self._hidden_depth += 1
        elif tag == "div" and "in-language" in values.get("class", "").split():
            self._copies += 1
            self._hidden_depth = 1 if self._copies > 1 else 0
        if self._hidden_depth:
            return
        if tag == "form":
            self._open = Form(
                action=urljoin(self.base_url, values.get("action", "")),
                method=values.get("method", "get").lower(),
                css_class=values.get("class", ""),
            )
            self.forms.append(self._open)
        elif self._open is not None and tag in ("input", "button") and "name" in values:
            kind = values.get("type", "text" if tag == "input" else "submit").lower()
            if kind == "hidden":
                self._open.fields[values["name"]] = values.get("value", "")
            elif kind == "submit":
                self._open.buttons.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._hidden_depth:
            self._hidden_depth -= 1
        elif tag == "form":
            self._open = None


@dataclass
class Page:
    """Where a request (after redirects) ended, and what happened on the way."""

    url: str
    response: requests.Response
    visited: list[str]
    cookies_set: list[str]

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def location(self) -> str | None:
        """The absolute redirect target, when the client stopped at a redirect."""
        target = self.response.headers.get("Location")
        return urljoin(self.url, target) if target else None

    @property
    def forms(self) -> list[Form]:
        parser = _FormParser(self.url)
        parser.feed(self.text)
        return parser.forms

    def form(self, action_startswith: str = "") -> Form:
        """The one POST form whose action starts with `action_startswith` (a page may show the
        same form twice, as the my-data page its close button at the top and at the end)."""
        found = [
            f for f in self.forms if f.method == "post" and f.action.startswith(action_startswith)
        ]
        assert found and all(f == found[0] for f in found), (
            f"expected one POST form to {action_startswith!r} on {self.url}"
        )
        return found[0]


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _expired(morsel: object) -> bool:
    max_age = morsel["max-age"]  # type: ignore[index]
    if max_age:
        try:
            return int(max_age) <= 0
        except ValueError:
            return False
    expires = morsel["expires"]  # type: ignore[index]
    if expires:
        try:
            return parsedate_to_datetime(expires).timestamp() <= time.time()
        except (TypeError, ValueError):
            return False
    return False


class Browser:
    """One browser profile: its cookies and the URLs it has requested."""

    def __init__(self, language: str = "en", *, read_notices: bool = True) -> None:
        self.jar: dict[str, dict[str, str]] = {}
        # Per host, the cookies set with Max-Age or Expires: the ones a browser keeps when it
        # is closed (`restart`); the others are session cookies.
        self.kept: dict[str, set[str]] = {}
        self.history: list[str] = []
        self.language = language
        # A student who reads the broker's information notice and presses "Continue": on by
        # default, so tests about other things pass it; notice tests turn it off and look.
        self.read_notices = read_notices
        self.notices_seen: list[str] = []
        # Where a request for a URL is really sent: the drills point the broker's public URL
        # at one of several broker processes, as a load balancer would (cookies stay per host).
        self.route: Callable[[str], str] = lambda url: url

    def cookies(self, url_or_host: str) -> dict[str, str]:
        host = _host(url_or_host) if "://" in url_or_host else url_or_host
        return dict(self.jar.get(host, {}))

    def _store(self, url: str, response: requests.Response) -> list[str]:
        names = []
        jar = self.jar.setdefault(_host(url), {})
        kept = self.kept.setdefault(_host(url), set())
        for header in response.raw.headers.getlist("Set-Cookie"):
            parsed = SimpleCookie()
            try:
                parsed.load(header)
            except CookieError:
                continue
            for name, morsel in parsed.items():
                names.append(name)
                if _expired(morsel):
                    jar.pop(name, None)
                else:
                    jar[name] = morsel.value
                if morsel["max-age"] or morsel["expires"]:
                    kept.add(name)
                else:
                    kept.discard(name)
        return names

    def restart(self) -> None:
        """The browser closed and opened again (the next student at a shared school laptop):
        session cookies are gone, cookies set with Max-Age or Expires stay."""
        for host, cookies in self.jar.items():
            kept = self.kept.get(host, set())
            self.jar[host] = {name: value for name, value in cookies.items() if name in kept}

    def request(
        self,
        method: str,
        url: str,
        data: dict[str, str] | None = None,
        *,
        follow: bool = True,
        stop: Callable[[str], bool] | None = None,
        verbatim: bool = False,
    ) -> Page:
        """Send the request; follow redirects unless `follow` is off or `stop(next_url)` holds.
        `verbatim`: the first GET goes out with its URL byte for byte (see `_verbatim_get`)."""
        visited: list[str] = []
        cookies_set: list[str] = []
        for _ in range(MAX_REDIRECTS):
            visited.append(url)
            self.history.append(url)
            if verbatim and method == "GET" and len(visited) == 1:
                response = self._verbatim_get(self.route(url), url)
            else:
                response = requests.request(
                    method,
                    self.route(url),
                    data=data,
                    cookies=self.jar.get(_host(url), {}),
                    headers={"Accept-Language": self.language},
                    allow_redirects=False,
                    timeout=TIMEOUT,
                )
            cookies_set.extend(self._store(url, response))
            page = Page(url, response, visited, cookies_set)
            notice = self._notice_form(page) if follow and self.read_notices else None
            if notice is not None:
                self.notices_seen.append(url)
                method, url, data = "POST", notice.action, dict(notice.fields)
                continue
            if not follow or response.status_code not in REDIRECTS or page.location is None:
                return page
            target = page.location
            if stop is not None and stop(target):
                return page
            if response.status_code in (301, 302, 303):
                method, data = "GET", None
            url = target
        raise AssertionError(f"more than {MAX_REDIRECTS} redirects from {visited[0]}")

    def _verbatim_get(self, target: str, url: str) -> requests.Response:
        """GET `target` with its query exactly as written. requests and urllib3 would
        normalise it (`%7e` to `%7E`, and requests `%7E` to `~`), which hides precisely how
        other SAML stacks encode a signed Redirect query; http.client sends what it is given."""
        parts = urlsplit(target)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
        headers = {"Accept-Language": self.language}
        cookies = self.jar.get(_host(url), {})
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        try:
            query = f"?{parts.query}" if parts.query else ""
            connection.request("GET", f"{parts.path}{query}", headers=headers)
            raw = connection.getresponse()
            body = raw.read()
        finally:
            connection.close()
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.getheaders())
        response.raw = urllib3.HTTPResponse(
            body=b"", headers=urllib3.HTTPHeaderDict(raw.getheaders()), status=raw.status
        )
        response._content = body
        response.encoding = "utf-8"
        response.url = url
        return response

    @staticmethod
    def _notice_form(page: Page) -> Form | None:
        if page.status != 200 or "text/html" not in page.response.headers.get("Content-Type", ""):
            return None
        for form in page.forms:
            if form.method == "post" and "/notice/" in form.action:
                return form
        return None

    def get(
        self,
        url: str,
        *,
        follow: bool = True,
        stop: Callable[[str], bool] | None = None,
        verbatim: bool = False,
    ) -> Page:
        return self.request("GET", url, follow=follow, stop=stop, verbatim=verbatim)

    def post(
        self,
        url: str,
        data: dict[str, str],
        *,
        follow: bool = True,
        stop: Callable[[str], bool] | None = None,
    ) -> Page:
        return self.request("POST", url, data, follow=follow, stop=stop)

    def submit(
        self,
        page: Page,
        action_startswith: str = "",
        extra: dict[str, str] | None = None,
        *,
        follow: bool = True,
    ) -> Page:
        """POST the page's form (hidden fields plus `extra`, e.g. the pressed button)."""
        form = page.form(action_startswith)
        return self.post(form.action, {**form.fields, **(extra or {})}, follow=follow)
