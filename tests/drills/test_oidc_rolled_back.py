"""Redis rolled back under the OpenID provider: restarted from a persistence file written before
a code was redeemed or a refresh token rotated. The file brings the code's record back without
its use, and the rotated refresh token's record with it; the broker notices the new server on
its first new connection and refuses every code and token issued before (the store epoch rule,
security.md), so the second redemption, the second rotation and the access token of before all
fail, as after a wipe, and a new login works. A real authlib client plays the platform."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from tests.drills.expect import NOWHERE, issued_code, registered_client
from tests.support.federation import Federation

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]

UID = "sanne.jansen"
FEDERATION = {"brokers": 1}


def platform(fed: Federation, prefix: str) -> OAuth2Session:
    client_id, secret = registered_client(fed, prefix, refresh_tokens=True)
    return OAuth2Session(client_id, secret, redirect_uri=NOWHERE)


def token_url(fed: Federation) -> str:
    return f"{fed.brokers[0].url}/oidc/token"


def redeem(fed: Federation, session: OAuth2Session, code: str, verifier: str) -> dict[str, str]:
    token: dict[str, str] = session.fetch_token(
        token_url(fed), grant_type="authorization_code", code=code, code_verifier=verifier
    )
    return token


def userinfo(fed: Federation, access: str) -> int:
    answer = requests.get(
        f"{fed.brokers[0].url}/oidc/userinfo",
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    )
    return answer.status_code


def rolled_back(fed: Federation) -> None:
    """Redis killed and started again: it loads the dump.rdb saved before."""
    fed.redis.stop()
    fed.redis.start()


def refused(call: object) -> str:
    with pytest.raises(OAuthError) as error:
        assert callable(call)
        call()
    return str(error.value.error)


def test_a_code_redeemed_before_the_rollback_is_refused_after_it(fed: Federation) -> None:
    session = platform(fed, "code")
    code, verifier = issued_code(fed, session.client_id, UID)
    try:
        with fed.redis.client() as client:
            client.save()  # the file holds the code, not yet its redemption
        assert "access_token" in redeem(fed, session, code, verifier)
        rolled_back(fed)
        with fed.redis.client() as client:
            assert list(client.scan_iter(match=b"kb:oidc-code:*")), "the code came back"
        again = lambda: redeem(fed, session, code, verifier)  # noqa: E731
        assert refused(again) == "invalid_grant"
        # A new login's code is redeemed.
        code, verifier = issued_code(fed, session.client_id, UID)
        assert "access_token" in redeem(fed, session, code, verifier)
    finally:
        (fed.redis.directory / "dump.rdb").unlink(missing_ok=True)


def test_a_refresh_token_rotated_before_the_rollback_is_refused_after_it(fed: Federation) -> None:
    session = platform(fed, "refresh")
    code, verifier = issued_code(fed, session.client_id, UID)
    first = redeem(fed, session, code, verifier)
    assert userinfo(fed, first["access_token"]) == 200
    try:
        with fed.redis.client() as client:
            client.save()  # the file holds the first tokens, not yet their rotation
        rotated = session.refresh_token(token_url(fed), refresh_token=first["refresh_token"])
        assert rotated["refresh_token"] != first["refresh_token"]
        rolled_back(fed)
        with fed.redis.client() as client:
            assert list(client.scan_iter(match=b"kb:oidc-refresh:*")), "the old token came back"
        for token in (first["refresh_token"], rotated["refresh_token"]):
            again = lambda t=token: session.refresh_token(token_url(fed), refresh_token=t)  # noqa: E731
            assert refused(again) == "invalid_grant"
        # The access token of before came back too: refused, as a wipe would have lost it.
        assert userinfo(fed, first["access_token"]) == 401
        # The platform logs the student in again.
        code, verifier = issued_code(fed, session.client_id, UID)
        fresh = redeem(fed, session, code, verifier)
        assert userinfo(fed, fresh["access_token"]) == 200
        assert "access_token" in session.refresh_token(
            token_url(fed), refresh_token=fresh["refresh_token"]
        )
    finally:
        (fed.redis.directory / "dump.rdb").unlink(missing_ok=True)
