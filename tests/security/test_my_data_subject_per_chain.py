"""The my-data page after receipt subjects became per chain (docs/receipts.md): a student on the
ECK iD sees their receipts of every chain at every school that delivers that ECK iD, and those
filed before the change (the old chain-independent subject), and no one else's.

The school's answer is handed to the page's sign-in step (`my_data_signed_in`, what the login
path calls once a school answered a my-data sign-in) as the school delivered it; the page is
then opened with the Flask test client in the same browser."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest

from broker.core.model import OidcUpstream, School, UpstreamIdentity
from broker.web.browser import BROWSER_COOKIE, MY_DATA_COOKIE
from broker.web.my_data import my_data_signed_in
from tests.support.portal import HTTPS, PortalSite
from tests.support.receipts import file_receipt, my_data_groups

ECK_ID = "https://ketenid.nl/201703/" + "7e" * 64
OTHER_ECK_ID = "https://ketenid.nl/201703/" + "c4" * 64


def eck_school(school_id: str) -> School:
    issuer = f"https://op.{school_id.lower()}.example"
    return School(
        school_id,
        f"ECK-school {school_id}",
        issuer,
        subject_attribute="sub",
        use_eck_id=True,
        oidc=OidcUpstream(issuer, "broker", f"secret-of-{school_id}"),
    )


SCHOOL_A, SCHOOL_B = eck_school("88EA00"), eck_school("88EB00")


def student(school: School, eck_id: str = ECK_ID) -> UpstreamIdentity:
    # The school's own subject differs per school; the ECK iD is the student's everywhere.
    return UpstreamIdentity(school.id, f"local-{school.id}", {"eck_id": (eck_id,)})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("my-data-per-chain"))
    for school in (SCHOOL_A, SCHOOL_B):
        built.registry.add_school(school, "")
    # The student at school A in two chains, once before the change; at school B in the
    # first chain again (the ECK iD, so the same subject); another student at B.
    for school, service_id, old, eck_id in (
        (SCHOOL_A, "leesplank", False, ECK_ID),
        (SCHOOL_A, "toetsplein", False, ECK_ID),
        (SCHOOL_A, "rekenroute", True, ECK_ID),
        (SCHOOL_B, "leesplank", False, ECK_ID),
        (SCHOOL_B, "leesplank", False, OTHER_ECK_ID),
    ):
        file_receipt(built.broker, school, service_id, student(school, eck_id), old=old)
    yield built
    built.registry.close()


def my_data_page(site: PortalSite, identity: UpstreamIdentity) -> str:
    secret = bytes(range(32))
    cookie = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    headers = {"Cookie": f"{BROWSER_COOKIE}={cookie}"}
    with site.app.test_request_context("/my-data/sign-in", base_url=HTTPS, headers=headers):
        signed_in = my_data_signed_in(identity)
    assert signed_in.status_code == 303
    client = site.client()
    client.set_cookie(BROWSER_COOKIE, cookie, domain="127.0.0.1", secure=True)
    # The view opens only with the cookie its sign-in set (my_data.py, a shared laptop).
    (view_cookie,) = [c for c in signed_in.headers.getlist("Set-Cookie") if MY_DATA_COOKIE in c]
    view_id = view_cookie.split(";")[0].split("=", 1)[1]
    client.set_cookie(MY_DATA_COOKIE, view_id, domain="127.0.0.1", secure=True)
    page = client.get(signed_in.headers["Location"], base_url=HTTPS)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return page.get_data(as_text=True)


@pytest.mark.parametrize("school", [SCHOOL_A, SCHOOL_B])
def test_an_eck_id_student_sees_every_chain_at_both_schools(
    site: PortalSite, school: School
) -> None:
    html = my_data_page(site, student(school))
    cards = my_data_groups(html)
    groups = [group for _, group in cards]
    # Leesplank at A and at B (one line, one chain), Toetsplein, Rekenroute (the old receipt).
    names = [name for name, _ in cards]
    assert sorted(names) == sorted(
        [
            "Leesplank (demo publisher)",
            "Toetsplein (demo exam platform)",
            "Rekenroute (demo distributor)",
        ]
    )
    # Leesplank's line counts both receipts (in Dutch, the default: the count, then "laatst op").
    assert any(re.search(r"data-when>2\D", group) for group in groups)
    # A code per subject: leermiddelen, toetsen and the old one.
    assert len(re.findall(r"<code data-student-code>", html)) == 3


def test_another_eck_id_sees_only_their_own(site: PortalSite) -> None:
    html = my_data_page(site, student(SCHOOL_B, OTHER_ECK_ID))
    groups = my_data_groups(html)
    assert len(groups) == 1 and "Leesplank" in groups[0][0]
    assert len(re.findall(r"<code data-student-code>", html)) == 1
