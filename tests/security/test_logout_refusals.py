"""Hostile logout messages: each refused with its own reason code, and the SSO session they
aim at still stands afterwards (a refused logout ends nothing).

The messages come from a real pysaml2 client speaking as the demo publisher `leesplank` (its
own key, so the metadata stays truthful) or as somebody holding another key.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from saml2 import BINDING_HTTP_REDIRECT, saml, samlp
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID

from broker.certificates import write_pair
from broker.core.errors import StoreUnavailable
from broker.login.session_index import session_index, shared_session_index
from broker.web.browser import SSO_COOKIE
from broker.web.metrics import CountingStore
from tests.support.client import Browser, Page
from tests.support.forge import PublisherForger
from tests.support.live import LiveDemo, running_demo

# pysaml2 writes metadata certificates to NamedTemporaryFile objects (sigver.make_temp) and leaves
# closing them to the garbage collector, which warns; not ours to fix (as in test_xmlsig.py).
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_pysaml2_temp_files() -> Iterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("logout-refusals")) as live:
        yield live


def _forger(demo: LiveDemo, key_name: str) -> PublisherForger:
    leesplank = demo.publishers["leesplank"]
    peers = demo.directory / "peers"
    key, cert = peers / f"{key_name}.key", peers / f"{key_name}.crt"
    if not key.exists():
        write_pair(key, cert, key_name)
    return PublisherForger(
        leesplank.entity_id, leesplank.acs_url, key, cert, demo.broker.saml_entities.idp_metadata()
    )


@pytest.fixture(scope="module")
def leesplank(demo: LiveDemo) -> PublisherForger:
    return _forger(demo, "leesplank")


@pytest.fixture(scope="module")
def stranger(demo: LiveDemo) -> PublisherForger:
    """Claims to be leesplank, signs with a key of its own."""
    return _forger(demo, "stranger")


class Session:
    def __init__(self, demo: LiveDemo, language: str = "en") -> None:
        self.browser = Browser(language)
        assert demo.login(self.browser, "leesplank", "sanne.jansen").final.status == 200
        self.received = demo.received(self.browser, "leesplank")
        self.token = self.browser.cookies(demo.broker_url)[SSO_COOKIE]

    def name_id(self) -> NameID:
        given = self.received["name_id"]
        return NameID(
            text=given["value"],
            format=given["format"],
            sp_name_qualifier=given["sp_name_qualifier"],
        )

    def stands(self, demo: LiveDemo) -> bool:
        return demo.broker.flow.session(self.token) is not None


@pytest.fixture
def session(demo: LiveDemo) -> Session:
    return Session(demo)


def _slo(demo: LiveDemo) -> str:
    return f"{demo.broker_url}/saml/idp/slo"


def _request(
    forger: PublisherForger,
    session: Session,
    destination: str,
    *,
    sign: bool,
    session_index: str | None = None,
    indexes: list[str] | None = None,
) -> Any:
    """A LogoutRequest naming the session's NameID and `session_index` (by default the
    SessionIndex leesplank was given), or all of `indexes`."""
    _, request = forger.client.create_logout_request(
        destination,
        issuer_entity_id=None,
        name_id=session.name_id(),
        session_indexes=indexes or [session_index or session.received["session_index"]],
        sign=sign,
        sign_alg=RSA_SHA256,
        digest_alg=SHA256,
    )
    return request


def _redirect_url(forger: PublisherForger, request: Any, destination: str, *, sign: bool) -> str:
    info = forger.client.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(request),
        destination,
        "state-1",
        sign=sign,
        sigalg=RSA_SHA256,
    )
    return str(dict(info["headers"])["Location"])


def _post(browser: Browser, url: str, xml: str) -> Page:
    return browser.post(url, {"SAMLRequest": base64.b64encode(xml.encode()).decode()})


def assert_refused(
    demo: LiveDemo,
    session: Session,
    page: Page,
    caplog: pytest.LogCaptureFixture,
    code: str,
    *,
    request: bool = True,
) -> None:
    """Refused with `code`, nothing ended; a LogoutRequest (`request`) on the logout's own page:
    logging out did not work, the student may still be logged in, "log out everywhere" below."""
    assert 400 <= page.status < 500, (page.status, page.text[:300])
    assert page.location is None, "a refusal redirects nowhere"
    assert f"refused code={code} " in caplog.text, caplog.text[-2000:]
    assert session.stands(demo), "a refused logout ended the session"
    assert SSO_COOKIE in session.browser.cookies(demo.broker_url)
    if request:
        assert "Logging out did not work" in page.text, page.text[:600]
        assert "You may still be logged in" in page.text
        assert "This sign-in cannot continue" not in page.text
        assert "sign-in message" not in page.text
        assert page.form(f"{demo.broker_url}/logout").fields.get("csrf_token")
        assert page.response.headers.get("Cache-Control") == "no-store"


def test_a_signed_logout_request_is_taken(
    demo: LiveDemo, leesplank: PublisherForger, session: Session
) -> None:
    """The control: the same client, properly signed, does end the session."""
    url = _redirect_url(
        leesplank, _request(leesplank, session, _slo(demo), sign=False), _slo(demo), sign=True
    )
    page = session.browser.get(url, follow=False)
    assert page.status == 303 and "/logout/" in (page.location or ""), page.text[:300]
    assert not session.stands(demo)


def test_unsigned_redirect_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    request = _request(leesplank, session, _slo(demo), sign=False)
    page = session.browser.get(_redirect_url(leesplank, request, _slo(demo), sign=False))
    assert_refused(demo, session, page, caplog, "request_unsigned")


def test_a_refused_request_offers_log_out_everywhere_in_the_students_language(
    demo: LiveDemo, leesplank: PublisherForger, caplog: pytest.LogCaptureFixture
) -> None:
    """An unsigned LogoutRequest (SAML profiles 4.4.4.1: refused) from a platform whose student
    reads Dutch: the page says, informally and without jargon, that logging out did not work
    and they may still be logged in. Its "log out everywhere" button (the student's own POST,
    with this browser's form token) ends the session the refused request left standing."""
    session = Session(demo, "nl")
    request = _request(leesplank, session, _slo(demo), sign=False)
    page = session.browser.get(_redirect_url(leesplank, request, _slo(demo), sign=False))
    assert page.status == 400, page.text[:300]
    assert "Uitloggen is niet gelukt" in page.text, page.text[:600]
    assert "Je bent misschien nog ingelogd" in page.text
    assert "Sluit dan alle vensters van je browser" in page.text
    assert "Inloggen lukt zo niet" not in page.text and "inlogbericht" not in page.text
    for jargon in ("SAML", "broker", "pseudoniem", " u ", "uw "):
        assert jargon not in page.text.split("<main", 1)[-1], jargon
    assert session.stands(demo), "the refused request ended the session"
    done = session.browser.submit(page, f"{demo.broker_url}/logout")
    assert done.status == 200, done.text[:300]
    assert not session.stands(demo), "log out everywhere left the session standing"
    assert SSO_COOKIE not in session.browser.cookies(demo.broker_url)


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_a_relay_state_that_is_not_utf8_is_refused(
    demo: LiveDemo,
    leesplank: PublisherForger,
    session: Session,
    caplog: pytest.LogCaptureFixture,
    binding: str,
) -> None:
    """The answer gives the RelayState back, exactly as received (bindings 3.4.3, 3.5.3): one
    that is not UTF-8 could only come back changed, so the request is refused, before its
    signature is looked at, and the session stands."""
    request = _request(leesplank, session, _slo(demo), sign=binding == "post")
    if binding == "redirect":
        url = _redirect_url(leesplank, request, _slo(demo), sign=True)
        assert "RelayState=state-1" in url
        page = session.browser.get(
            url.replace("RelayState=state-1", "RelayState=%FF%FEab"), verbatim=True
        )
        assert_refused(demo, session, page, caplog, "relay_state_invalid")
        return
    # The octets FF FE, urlencoded as a browser posts them: Werkzeug's form would read `%FF`.
    body = quote_plus(base64.b64encode(str(request).encode()).decode())
    answer = requests.post(
        _slo(demo),
        data=f"SAMLRequest={body}&RelayState=%FF%FEab".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies=session.browser.cookies(demo.broker_url),
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 400, answer.text[:300]
    assert "refused code=relay_state_invalid " in caplog.text, caplog.text[-2000:]
    assert session.stands(demo), "a refused logout ended the session"


def test_unsigned_post_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    request = _request(leesplank, session, _slo(demo), sign=False)
    page = _post(session.browser, _slo(demo), str(request))
    assert_refused(demo, session, page, caplog, "request_unsigned")


def test_another_key_is_refused(
    demo: LiveDemo, stranger: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    request = _request(stranger, session, _slo(demo), sign=False)
    page = session.browser.get(_redirect_url(stranger, request, _slo(demo), sign=True))
    assert_refused(demo, session, page, caplog, "bad_signature")
    signed = _request(stranger, session, _slo(demo), sign=True)
    page = _post(session.browser, _slo(demo), str(signed))
    assert_refused(demo, session, page, caplog, "bad_signature")


def test_sha1_query_signature_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    request = _request(leesplank, session, _slo(demo), sign=False)
    url = _redirect_url(leesplank, request, _slo(demo), sign=True)
    # The broker's own signer refuses SHA-1, so the claim is edited in: the algorithm is
    # refused before any signature is looked at.
    url = url.replace(quote_plus(RSA_SHA256), quote_plus(RSA_SHA1))
    assert quote_plus(RSA_SHA1) in url
    assert_refused(demo, session, session.browser.get(url), caplog, "weak_algorithm")


def test_another_destination_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = f"{demo.broker_url}/saml/idp/sso"
    request = _request(leesplank, session, elsewhere, sign=False)
    page = session.browser.get(_redirect_url(leesplank, request, _slo(demo), sign=True))
    assert_refused(demo, session, page, caplog, "wrong_destination")


def test_an_issuer_of_another_format_than_entity_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """SAML profiles 4.4.4.1: a LogoutRequest's Issuer Format is absent or entity. Otherwise
    correct (signed by the service, naming this session), it ends nothing."""
    request = _request(leesplank, session, _slo(demo), sign=False)
    request.issuer.format = NAMEID_FORMAT_PERSISTENT
    page = session.browser.get(_redirect_url(leesplank, request, _slo(demo), sign=True))
    assert_refused(demo, session, page, caplog, "issuer_format")


def test_a_replayed_request_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # First use: a request naming another NameID is answered (UnknownPrincipal), ends nothing.
    other = NameID(text="not-this-student", format=NAMEID_FORMAT_PERSISTENT)
    _, request = leesplank.client.create_logout_request(
        _slo(demo), issuer_entity_id=None, name_id=other, sign=False
    )
    url = _redirect_url(leesplank, request, _slo(demo), sign=True)
    answer = session.browser.get(url, follow=False)
    assert answer.status == 303, answer.text[:300]
    assert session.stands(demo)
    # The same message again: refused as a replay.
    assert_refused(demo, session, session.browser.get(url), caplog, "replay")


def test_oversized_and_doctype_messages_are_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    big = "<x/>" * 70_000
    page = _post(session.browser, _slo(demo), big)
    assert_refused(demo, session, page, caplog, "message_too_large")
    request = str(_request(leesplank, session, _slo(demo), sign=True))
    with_doctype = request.replace("?>", '?><!DOCTYPE x [<!ENTITY e "e">]>', 1)
    if with_doctype == request:
        with_doctype = '<!DOCTYPE x [<!ENTITY e "e">]>' + request
    page = _post(session.browser, _slo(demo), with_doctype)
    assert_refused(demo, session, page, caplog, "doctype_refused")


def test_a_schools_unsigned_logout_request_and_an_unsolicited_response_are_refused(
    demo: LiveDemo, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    name_id = NameID(text=demo.school_subject("sanne.jansen"), format=NAMEID_FORMAT_PERSISTENT)
    unsigned = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_u1" Version="2.0" '
        f'IssueInstant="{slo_now()}" Destination="{sp_slo}">'
        f"<saml:Issuer>{demo.school_entity_id}</saml:Issuer>"
        f'<saml:NameID Format="{NAMEID_FORMAT_PERSISTENT}">{name_id.text}</saml:NameID>'
        "</samlp:LogoutRequest>"
    )
    page = _post(session.browser, sp_slo, unsigned)
    assert_refused(demo, session, page, caplog, "request_unsigned")
    response = unsigned.replace("LogoutRequest", "LogoutResponse").replace(
        "</saml:Issuer>",
        '</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>',
    )
    page = session.browser.post(
        sp_slo, {"SAMLResponse": base64.b64encode(response.encode()).decode()}
    )
    assert_refused(demo, session, page, caplog, "request_unsigned", request=False)


def slo_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_signed_logout_response_to_no_request_of_ours_is_refused(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    response = samlp.LogoutResponse(
        id="_unsolicited1",
        version="2.0",
        issue_instant=slo_now(),
        destination=_slo(demo),
        in_response_to="_never_sent",
        issuer=saml.Issuer(text=leesplank.client.config.entityid),
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
    )
    info = leesplank.client.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(response),
        _slo(demo),
        "",
        response=True,
        sign=True,
        sigalg=RSA_SHA256,
    )
    page = session.browser.get(str(dict(info["headers"])["Location"]))
    assert_refused(demo, session, page, caplog, "unsolicited", request=False)


def _naming(demo: LiveDemo, leesplank: PublisherForger, session: Session, index: str) -> str:
    request = _request(leesplank, session, _slo(demo), sign=False, session_index=index)
    return _redirect_url(leesplank, request, _slo(demo), sign=True)


def test_a_request_naming_another_services_session_index_of_this_session_ends_nothing(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """Each service has its own SessionIndex for the session: leesplank's signed request naming
    the one rekenroute was given is not leesplank's session (UnknownPrincipal, nothing ends)."""
    assert demo.login(session.browser, "rekenroute", "sanne.jansen").final.status == 200
    theirs = demo.received(session.browser, "rekenroute")["session_index"]
    assert theirs != session.received["session_index"]
    page = session.browser.get(_naming(demo, leesplank, session, theirs), follow=False)
    assert page.status == 303 and "/logout/" not in (page.location or ""), page.text[:300]
    assert "logout request names another session service=leesplank" in caplog.text
    assert session.stands(demo)


def test_compat_a_session_from_before_the_upgrade_logs_out_by_its_shared_session_index(
    demo: LiveDemo, leesplank: PublisherForger, session: Session
) -> None:
    """COMPAT(session-index-per-service): a session opened before the upgrade recorded the one
    shared SessionIndex it gave every service; the service's request naming it still ends it."""
    book = demo.broker.session_services
    before = book.read(session.token)
    participant = before.get("leesplank")
    assert participant is not None
    shared = shared_session_index(session.token)
    handles = {**participant.handles, "session_index": shared}
    book.record(session.token, before, dataclasses.replace(participant, handles=handles))
    page = session.browser.get(_naming(demo, leesplank, session, shared), follow=False)
    assert page.status == 303 and "/logout/" in (page.location or ""), page.text[:300]
    assert not session.stands(demo)


def test_compat_a_service_that_logged_in_again_after_the_upgrade_logs_out_by_the_old_shared_index(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """COMPAT(session-index-per-service): leesplank was given the shared value in a session
    opened before the upgrade, then logged in again in it after the upgrade (its record now
    holds its own value). Its request naming the old shared value is this session's, with the
    store up as with the store down (one rule): the run starts and the session ends."""
    own = session.received["session_index"]
    assert demo.broker.session_services.read(session.token).get("leesplank") is not None
    assert own == session_index(session.token, "leesplank")
    shared = shared_session_index(session.token)
    assert shared != own
    page = session.browser.get(_naming(demo, leesplank, session, shared), follow=False)
    assert page.status == 303 and "/logout/" in (page.location or ""), page.text[:300]
    assert "logout request names another session" not in caplog.text
    assert not session.stands(demo)


def test_only_the_first_four_session_indexes_are_looked_at(
    demo: LiveDemo, leesplank: PublisherForger, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """The service's own SessionIndex fifth, after four of another session: not looked at,
    with the store up as with it down (Requester/UnknownPrincipal, nothing ends)."""
    others = [session_index(session.token + str(n), "leesplank") for n in range(4)]
    indexes = [*others, session.received["session_index"]]
    request = _request(leesplank, session, _slo(demo), sign=False, indexes=indexes)
    url = _redirect_url(leesplank, request, _slo(demo), sign=True)
    page = session.browser.get(url, follow=False)
    assert page.status == 303 and "/logout/" not in (page.location or ""), page.text[:300]
    assert "logout request names another session service=leesplank" in caplog.text
    assert session.stands(demo)


def _store_down(patch: pytest.MonkeyPatch) -> None:
    def down(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    for name in ("put", "get", "take", "add_if_absent", "delete", "batch"):
        patch.setattr(CountingStore, name, down)


def test_with_the_store_down_only_this_services_own_session_index_drops_the_cookie(
    demo: LiveDemo,
    leesplank: PublisherForger,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known without the store: the SessionIndex leesplank was given is derived from this
    browser's token and leesplank. Another service's value of this very session is not proof:
    the cookie kept, a page that says logging out did not work (not signing in). Its own value
    (or, COMPAT(session-index-per-service), the session's old shared one): the store-down
    page, the cookie dropped."""
    other = _naming(demo, leesplank, session, session_index(session.token, "rekenroute"))
    own = _naming(demo, leesplank, session, session.received["session_index"])
    assert session.received["session_index"] == session_index(session.token, "leesplank")
    with monkeypatch.context() as patch:
        _store_down(patch)
        refused = session.browser.get(other)
        assert refused.status == 503, refused.text[:300]
        # Nothing ended: the logout's words, not a sign-in's (web/errors.logout_not_done_page).
        assert "Logging out did not work" in refused.text, refused.text[:600]
        assert "You may still be logged in" in refused.text
        assert "close every window of your browser" in refused.text
        assert "Wait a moment, then try again." in refused.text
        assert "Signing in is not possible" not in refused.text
        assert "This browser no longer" not in refused.text
        assert SSO_COOKIE in session.browser.cookies(demo.broker_url)
        taken = session.browser.get(own)
        assert taken.status == 503, taken.text[:300]
        assert "You may not be logged out" in taken.text and "Close your browser" in taken.text
        assert SSO_COOKIE not in session.browser.cookies(demo.broker_url)

    old = Session(demo)
    shared = _naming(demo, leesplank, old, shared_session_index(old.token))
    with monkeypatch.context() as patch:
        _store_down(patch)
        assert "Close your browser" in old.browser.get(shared).text
    assert SSO_COOKIE not in old.browser.cookies(demo.broker_url)
