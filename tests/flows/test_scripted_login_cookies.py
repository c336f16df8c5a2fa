"""A login scripted with requests, as docs/publishers.md (section 8) tells a publisher's
engineer to script one against the demo: the broker's `__Host-` cookies are `Secure` on plain
http loopback, which requests' cookie jar does not send there. The session the docs give (read
from the document) carries the login through; a cookie policy alone does not."""

from __future__ import annotations

from typing import Any

import requests

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.support.client import Page
from tests.support.doc_snippets import doc_snippet
from tests.support.live import LiveDemo

UID = "sanne.jansen"


def _documented() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(doc_snippet("python", "class LoopbackSession"), namespace)  # the docs own code
    return namespace


def _page(response: requests.Response) -> Page:
    return Page(response.url, response, [], [])


def scripted_login(session: requests.Session, demo: LiveDemo, publisher: str) -> Page:
    """The login as a script drives it: each page's form submitted (the discovery's school,
    the school's student, the notice, the SAML auto-POSTs), until a page has none."""
    page = _page(session.get(f"{demo.publishers[publisher].base_url}/login", timeout=15))
    for _ in range(10):
        forms = [f for f in page.forms if f.method == "post"]
        if page.status != 200 or not forms:
            return page
        form = forms[0]
        extra = {}
        if ("school", DEMO_SCHOOL_ID) in form.buttons:
            extra = {"school": DEMO_SCHOOL_ID}
        elif ("uid", UID) in form.buttons:
            extra = {"uid": UID}
        response = session.post(form.action, data={**form.fields, **extra}, timeout=15)
        page = _page(response)
    raise AssertionError(f"no end to the login at {page.url}")


def test_the_documented_session_carries_a_scripted_login(demo: LiveDemo) -> None:
    session = _documented()["LoopbackSession"]()
    page = scripted_login(session, demo, "leesplank")
    assert page.status == 200, page.text[:300]
    assert page.url.startswith(demo.publishers["leesplank"].acs_url), page.url
    received = session.get(f"{demo.publishers['leesplank'].base_url}/received.json", timeout=15)
    assert received.json()["name_id"]["value"] == demo.expected_pseudonym(UID, "leermiddelen")


def test_a_cookie_policy_alone_stops_at_the_cookie_page(demo: LiveDemo) -> None:
    """What the docs said before: let the jar send Secure cookies to loopback. requests copies
    the cookies into a jar of its own for every request, without the policy."""
    session = requests.Session()
    session.cookies.set_policy(_documented()["LoopbackIsSecure"]())
    page = scripted_login(session, demo, "leesplank")
    assert page.status == 400, (page.status, page.url)
    assert page.url.startswith(demo.broker_url)
    assert "Sta cookies toe om in te loggen" in page.text
