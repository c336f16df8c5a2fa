"""Fuzz targets for OpenID Connect logout: the end_session endpoint (any parameters, ID-token-like
hints) and the school's logout callback. Whatever arrives, the broker answers below 500 and
never redirects anywhere it was not registered to."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ
from tests.fuzz.test_fuzz_parsers import below_500, jwt_like, texts

END_SESSION_NAMES = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
    "logout_hint",
    "confirm",
    "csrf_token",
]


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(END_SESSION_NAMES), st.one_of(texts, jwt_like()), max_size=8
    ),
    post=st.booleans(),
)
@example(params={"post_logout_redirect_uri": "https://evil.example/"}, post=False)
@example(params={"client_id": "woordwijs", "post_logout_redirect_uri": "javascript:x"}, post=True)
def test_end_session(client: FlaskClient, params: dict[str, str], post: bool) -> None:
    if post:
        response = client.post("/oidc/end_session", data=params)
    else:
        response = client.get("/oidc/end_session", query_string=params)
    below_500(response)
    location = response.headers.get("Location")
    if location is not None:
        # Only ever on to the broker's own logout pages: nothing was registered here.
        assert urlsplit(location).path.startswith("/logout/"), location


@FUZZ
@given(school=texts, state=st.one_of(st.none(), texts))
def test_school_logout_callback(client: FlaskClient, school: str, state: str | None) -> None:
    query = {} if state is None else {"state": state}
    below_500(client.get(f"/oidc/rp/logout/{quote(school, safe='')}", query_string=query))
