"""The operator's portal moves a service with or without a migration window (core/chain_move.py),
shows the open window, and refuses a move inside one with a page in the operator's language,
changing nothing; the publisher portal tells the service's publisher."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.core.model import ClientAuthMethod, Protocol, Service
from broker.oidc.registration import new_client
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, csrf_token

SERVICES = "/portal/operator/services"
SERVICE = "noord-verhuis"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("move-portal"), port=8811)
    client, _ = new_client(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC)
    service = Service(
        SERVICE,
        "Noord Verhuis",
        SERVICE,
        "leermiddelen",
        protocol=Protocol.OIDC,
        oidc=client,
        publisher_id=PUBLISHER_ID,
    )
    built.registry.add_service(service, None)
    yield built
    built.registry.close()


def _move(operator: FlaskClient, chain: str, window: str, language: str = "en") -> tuple[int, str]:
    headers = {"Accept-Language": language}
    page = operator.get(SERVICES, base_url=HTTPS, headers=headers).get_data(as_text=True)
    response = operator.post(
        f"{SERVICES}/{SERVICE}/chain",
        base_url=HTTPS,
        headers=headers,
        data={"csrf_token": csrf_token(page), "chain": chain, "window": window},
        follow_redirects=True,
    )
    return response.status_code, response.get_data(as_text=True)


def test_a_move_with_a_window_then_refusals_then_one_without(site: PortalSite) -> None:
    operator = site.sign_in("operator")
    status, page = _move(operator, "toetsen", "0")
    assert status == 400 and "A migration window is 1 to 366 days, or empty for none." in page
    assert site.registry.chain_move(SERVICE) is None
    assert site.registry.service(SERVICE).chain_id == "leermiddelen"  # type: ignore[union-attr]

    status, page = _move(operator, "toetsen", "30")
    assert status == 200, page
    assert f"Service {SERVICE} moved. Until " in page
    move = site.registry.chain_move(SERVICE)
    assert move is not None and (move.from_chain, move.to_chain) == ("leermiddelen", "toetsen")
    assert "Migration window of its move from leermiddelen until " in page
    # The publisher sees the window on its services page.
    publisher = site.sign_in("publisher")
    listing = publisher.get(
        f"/portal/publisher/{PUBLISHER_ID}/services",
        base_url=HTTPS,
        headers={"Accept-Language": "en"},
    )
    assert "Pseudonym key change for Noord Verhuis until " in listing.get_data(as_text=True)

    # A second move inside the window, in Dutch: refused, nothing changed.
    generation = site.registry.generation()
    status, page = _move(operator, "-", "", "nl")
    assert status == 400
    assert "De dienst kan nu niet worden verplaatst" in page
    assert site.registry.chain_move(SERVICE) == move
    assert site.registry.service(SERVICE).chain_id == "toetsen"  # type: ignore[union-attr]
    assert site.registry.generation() == generation

    site.registry.finish_chain_move(SERVICE)
    status, page = _move(operator, "-", "")
    assert status == 200
    assert f"Service {SERVICE} moved, without a migration window" in page
    assert site.registry.chain_move(SERVICE) is None
    assert site.registry.service(SERVICE).chain_id is None  # type: ignore[union-attr]
