"""Schools' identity-provider products through the running demo's ACS and SLO, in the shapes
the products answer in (tests/support/idp_products.py): ADFS, Entra ID, Google Workspace and
Keycloak, each with its own generated key, registered through the broker's intake check."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from broker.core.model import School
from broker.saml.metadata_check import idp_entity_id
from tests.support import idp_products as product
from tests.support.client import Page
from tests.support.live import LiveDemo, running_demo

ADFS_ID, ENTRA_ID, GOOGLE_ID, KEYCLOAK_ID = "21AA00", "22BB00", "23CC00", "25EE00"
ADFS_HOST = "adfs.scholengroep.example"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("idp-products-demo")) as live:
        yield live


def register(demo: LiveDemo, school_id: str, metadata: str, **details: object) -> str:
    """The school, registered with `metadata` after the intake's own check; its entity id."""
    entity_id = idp_entity_id(metadata)
    demo.registry.add_school(
        School(school_id, f"School {school_id}", entity_id, **details),  # type: ignore[arg-type]
        metadata,
    )
    return entity_id


@pytest.fixture(scope="module")
def adfs(demo: LiveDemo) -> product.Signer:
    key = product.signer(f"ADFS Signing - {ADFS_HOST}")
    register(demo, ADFS_ID, product.adfs_metadata(ADFS_HOST, key))
    return key


def adfs_login(demo: LiveDemo, publisher: str = "leesplank") -> product.ProductLogin:
    return product.start_login(
        demo, product.adfs_entity_id(ADFS_HOST), f"https://{ADFS_HOST}/adfs/ls/", publisher
    )


def adfs_says_no(
    demo: LiveDemo,
    key: product.Signer | None,
    top: str,
    second: str,
    caplog: pytest.LogCaptureFixture,
) -> Page:
    """ADFS's error Response (`top`/`second`) to a fresh login, signed by `key` (or not),
    delivered; the student's page."""
    caplog.set_level(logging.INFO)
    login = adfs_login(demo)
    entity_id = product.adfs_entity_id(ADFS_HOST)
    answer = product.error_response(demo, entity_id, login.request_id, top, second, key)
    return product.deliver(demo, login, answer)


# -- M3: the school's IdP cannot make the persistent NameID asked for ---------------------------
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_adfs_without_a_persistent_name_id_rule_names_the_setting(
    demo: LiveDemo, adfs: product.Signer, caplog: pytest.LogCaptureFixture, signed: bool
) -> None:
    """ADFS without its Name ID rule (MSIS7070 in its log) answers Requester/InvalidNameIDPolicy:
    the student hears that the school must change a setting, the ICT contact which one, and the
    log names the status (a fixed URN, nothing of the message)."""
    page = adfs_says_no(demo, adfs if signed else None, "Requester", "InvalidNameIDPolicy", caplog)
    assert page.status == 502, page.text[:500]
    assert "is missing a setting for this. Signing in again does not help" in page.text
    assert "For the school's ICT contact" in page.text
    assert "InvalidNameIDPolicy" in page.text and "saml-nameid.xml" in page.text
    assert "MSIS7070" in page.text
    assert (
        f"school status school={ADFS_ID} top={product.STATUS}Requester "
        f"second={product.STATUS}InvalidNameIDPolicy" in caplog.text
    )
    code = "upstream_status" if signed else "unsigned_status"
    assert f"refused code={code} status=502" in caplog.text


def test_a_status_outside_the_standard_is_logged_as_other(
    demo: LiveDemo, adfs: product.Signer, caplog: pytest.LogCaptureFixture
) -> None:
    page = adfs_says_no(demo, adfs, "Responder", "MadeUp-s.jansen@school.example", caplog)
    assert page.status == 502
    assert f"school status school={ADFS_ID} top={product.STATUS}Responder second=other" in (
        caplog.text
    )
    assert "s.jansen" not in caplog.text
    assert "For the school's ICT contact" not in page.text
