"""The publisher portal tells a publisher about an open pseudonym key window in its chains
(docs/portals.md), in English and Dutch, and says nothing about other chains' windows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from broker.core.model import ClientAuthMethod, Protocol, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.oidc.registration import new_client
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite

SERVICES = f"/portal/publisher/{PUBLISHER_ID}/services"
ENDS = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
# In the broker's time zone with its abbreviation, as every portal page shows times.
ENDS_SHOWN = ENDS.astimezone(ZoneInfo("Europe/Amsterdam")).strftime("%Y-%m-%d %H:%M %Z")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("key-window-portal"), port=8760)
    client, _ = new_client(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC)
    for service_id, chain in (("noord-lezen", "leermiddelen"), ("noord-los", None)):
        built.registry.add_service(
            Service(
                service_id,
                f"Noord {service_id}",
                service_id,
                chain,
                protocol=Protocol.OIDC,
                oidc=client,
                publisher_id=PUBLISHER_ID,
            ),
            None,
        )
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    return site.sign_in("publisher")


def page(client: FlaskClient, url: str, language: str = "en") -> str:
    response = client.get(url, base_url=HTTPS, headers={"Accept-Language": language})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_window_shows_for_the_publishers_chains_only(
    site: PortalSite, publisher: FlaskClient
) -> None:
    keys = site.registry.pseudonym_keys
    assert "data-pseudonym-window" not in page(publisher, SERVICES)
    # Another chain's window is none of this publisher's business.
    keys.replace(None, ChainKeyVersion("toetsen", 2, 1, ENDS), "test")
    assert "data-pseudonym-window" not in page(publisher, SERVICES)

    keys.replace(None, ChainKeyVersion("leermiddelen", 2, 1, ENDS), "test")
    keys.replace(None, ChainKeyVersion("service:noord-los", 2, 1, ENDS), "test")
    listing = page(publisher, SERVICES)
    assert listing.count("data-pseudonym-window") == 2
    chain_name = site.registry.chain("leermiddelen").name  # type: ignore[union-attr]
    assert f"Pseudonym key change for {chain_name} until {ENDS_SHOWN}." in listing
    assert f"Pseudonym key change for Noord noord-los until {ENDS_SHOWN}." in listing
    assert "urn:ketenbroker:previous-pseudonym" in listing and "previous_sub" in listing
    dutch = page(publisher, SERVICES, "nl")
    assert f"Sleutelwissel van het pseudoniem voor {chain_name} tot {ENDS_SHOWN}." in dutch
    # A service's own page names only its own chain's window.
    own = page(publisher, f"{SERVICES}/noord-lezen")
    assert own.count("data-pseudonym-window") == 1 and chain_name in own

    # Finished: the notice goes.
    keys.replace(
        ChainKeyVersion("leermiddelen", 2, 1, ENDS), ChainKeyVersion("leermiddelen", 2), "test"
    )
    assert page(publisher, SERVICES).count("data-pseudonym-window") == 1
