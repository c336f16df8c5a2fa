"""Authorization codes of the OpenID provider (oidc/grants.py): what a client's registration
keeps of the scope it asked for, and who may redeem, burn or revoke a code."""

from __future__ import annotations

import pytest

from broker.core.model import ClientAuthMethod, Protocol, Service
from broker.oidc.grants import RegisteredClient
from broker.oidc.registration import new_client

REDIRECT_URI = "https://rp.example/cb"


def client(client_id: str = "rp") -> RegisteredClient:
    registration, _ = new_client((REDIRECT_URI,), ClientAuthMethod.SECRET_BASIC)
    service = Service(
        client_id, client_id, client_id, "leermiddelen", protocol=Protocol.OIDC, oidc=registration
    )
    return RegisteredClient(service)


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        (None, ""),  # no scope parameter: authlib hands in None (once an AttributeError, a 500)
        ("", ""),
        ("openid profile offline_access", "openid profile"),
    ],
)
def test_the_allowed_scope_keeps_the_known_values_and_none_of_no_scope(
    asked: str | None, kept: str
) -> None:
    assert client().get_allowed_scope(asked) == kept
