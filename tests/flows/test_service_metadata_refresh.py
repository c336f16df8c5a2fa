"""A publisher's SAML service whose SP metadata was given by URL follows its platform's key
roll-over: the URL is kept with the service (`publisher update --saml-metadata URL`), and
`ketenbroker metadata refresh` (the operator's timer, run here as the operator runs it) fetches
it again from a server on a loopback port with `publisher update`'s checks. An AuthnRequest
signed with the platform's new key is refused before the refresh and accepted after it, without
a restart; once the platform drops its old certificate, the broker's assertion is encrypted to
the new key (the platform's own SAML library opens it) and a request signed with the old key is
refused. A download that fails, is not usable metadata, or is another entity's keeps the copy
held (logins go on), records the refusal, and the run exits 1 saying why; a service given as a
file is not fetched.

A demo of its own: a service's keys change here (the pysaml2 SP of test_authn_requests)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from broker.certificates import write_pair
from broker.registry.cached import MAX_STALENESS_SECONDS
from broker.saml.metadata_changes import KEY_USES, signing_fingerprints
from tests.flows.test_authn_requests import (
    ServiceSp,
    Setup,
    _answer_form,
    _through_school,
    registered_sp,
)
from tests.flows.test_encrypted_to_publishers import SAML, add, open_by_hand, sent_response
from tests.flows.test_metadata_update import _rolled
from tests.flows.test_school_metadata_refresh import (
    SPOILED,
    _cli,
    given_as_file_is_not_fetched,
    spoil,
    with_next_certificate,
)
from tests.support.client import Browser
from tests.support.feed import Feed
from tests.support.live import LiveDemo, running_demo

SERVICE_ID = "rolling-platform"

# pysaml2 writes metadata certificates to NamedTemporaryFile objects and leaves closing them to
# the garbage collector, which warns; not ours to fix (as in test_authn_requests.py).
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("service-refresh-demo")) as live:
        yield live


@pytest.fixture(scope="module")
def platform(demo: LiveDemo) -> ServiceSp:
    return registered_sp(demo, SERVICE_ID, "Rolling platform (test publisher)")


@pytest.fixture
def sp(demo: LiveDemo, feed: Feed, platform: ServiceSp) -> Iterator[ServiceSp]:
    """The platform with its first key, its metadata given by the feed's URL (which the next
    test's feed replaces: forgotten afterwards)."""
    feed.body = platform.metadata().encode()
    given = _cli(demo, "publisher", "update", "--id", SERVICE_ID, "--saml-metadata", feed.url)
    assert given.exit_code == 0, given.output
    assert f"`ketenbroker metadata refresh` fetches {feed.url} again" in given.output
    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    yield platform
    _given_as_file(demo, SERVICE_ID)


def _given_as_file(demo: LiveDemo, service_id: str) -> None:
    """The service's copy held, as if given as a file: its URL is fetched no more."""
    held = demo.registry.registered_metadata("sp", service_id)
    demo.registry.update_service_metadata(service_id, held, held)


def _sso(demo: LiveDemo) -> str:
    return f"{demo.broker_url}/saml/idp/sso"


def _request_status(demo: LiveDemo, platform: ServiceSp) -> int:
    """The status of the broker's answer to a Redirect AuthnRequest signed by `platform`."""
    request = platform.authn_request(_sso(demo))
    return Browser().get(platform.redirect_url(_sso(demo), request, sign=True)).status


def _signs_in(demo: LiveDemo, platform: ServiceSp) -> etree._Element:
    """A whole login at `platform`, whose SAML library accepts the broker's Response; the
    Response as sent."""
    request = platform.authn_request(_sso(demo))
    browser = Browser()
    page = browser.get(platform.redirect_url(_sso(demo), request, sign=True))
    assert page.status == 200, page.text[:300]
    page = _through_school(Setup(demo, platform, platform), browser, page)
    sent = _answer_form(page, platform.acs[1])["SAMLResponse"]
    platform.accept(sent, request.id)
    return etree.fromstring(base64.b64decode(sent))


def _next_key(demo: LiveDemo, sp: ServiceSp) -> ServiceSp:
    """The platform after its key roll: the same entity id and endpoints, a new key."""
    key, cert = demo.directory / "peers" / "next.key", demo.directory / "peers" / "next.crt"
    write_pair(key, cert, "Platform signing - next")
    idp_metadata = demo.broker.saml_entities.idp_metadata()
    return ServiceSp(sp.base_url, key, cert, idp_metadata, signs=True)


def test_the_refresh_follows_a_platform_key_roll_over_from_the_registered_url(
    demo: LiveDemo, feed: Feed, sp: ServiceSp, caplog: pytest.LogCaptureFixture
) -> None:
    assert demo.registry.metadata_urls("sp") == [(SERVICE_ID, sp.entity_id, feed.url)]
    registered = demo.registry.registered_metadata("sp", SERVICE_ID)
    following = _next_key(demo, sp)
    assert _request_status(demo, following) == 400  # signed with the new key, not yet held

    # The platform publishes both certificates for a while.
    both = with_next_certificate(registered, following.cert_file, (None, *KEY_USES["sp"]), None)
    feed.body = both.encode()
    generation = demo.registry.generation()
    with caplog.at_level(logging.INFO, logger="broker.cli.url_refresh"):
        result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 0, result.output
    assert f"service {SERVICE_ID} (SP {sp.entity_id}): updated" in result.output
    added = set(signing_fingerprints(both, "sp")) - set(signing_fingerprints(registered, "sp"))
    assert len(added) == 1
    assert f"certificate added: SHA-256 {next(iter(added))}" in result.output
    assert demo.registry.generation() > generation
    (changed,) = [r for r in caplog.records if r.getMessage().startswith("service SP certif")]
    assert changed.__dict__["reason"] == "service_keys_changed"
    assert changed.__dict__["service"] == SERVICE_ID
    assert changed.__dict__["added"] == next(iter(added)) and changed.__dict__["removed"] == ""
    record = demo.registry.refresh_records("sp")[SERVICE_ID]
    assert record.refreshed_at is not None and record.failed_at is None

    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    _signs_in(demo, following)  # the platform signs with its new key: logins go on
    assert _request_status(demo, sp) == 200  # and with the old one until it is dropped

    # The platform drops its old certificate: requests signed with it are refused.
    feed.body = following.metadata().encode()
    result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 0, result.output
    assert "certificate removed: SHA-256" in result.output
    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    assert _request_status(demo, sp) == 400
    _signs_in(demo, following)

    # The same copy again: unchanged, no generation bump.
    generation = demo.registry.generation()
    again = _cli(demo, "metadata", "refresh")
    assert again.exit_code == 0 and f"service {SERVICE_ID}" in again.output, again.output
    assert "): unchanged" in again.output
    assert demo.registry.generation() == generation


def test_an_encryption_key_roll_over_reaches_the_assertions(demo: LiveDemo, feed: Feed) -> None:
    """A platform that rolls its encryption key: after the refresh the broker's assertion is
    encrypted to the new key (opened here with it), not to the one the platform dropped."""
    add(demo, "rolling-encryption", ())
    registered = demo.registry.registered_metadata("sp", "rolling-encryption")
    feed.body = registered.encode()
    given = _cli(
        demo, "publisher", "update", "--id", "rolling-encryption", "--saml-metadata", feed.url
    )
    assert given.exit_code == 0, given.output
    peers = demo.directory / "peers"
    key, cert = peers / "rolling-encryption-next.key", peers / "rolling-encryption-next.crt"
    write_pair(key, cert, "enc - next")
    feed.body = _rolled(registered, peers / "rolling-encryption-encryption.crt", cert).encode()
    result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 0, result.output
    assert "service rolling-encryption (SP " in result.output
    assert "certificate added: SHA-256" in result.output
    assert "certificate removed: SHA-256" in result.output
    _given_as_file(demo, "rolling-encryption")
    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    _, response = sent_response(demo, Browser(), "rolling-encryption")
    following = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(following, rsa.RSAPrivateKey)
    opened = open_by_hand(response, following)
    assert opened.assertion.find(f"{{{SAML}}}Subject") is not None


@pytest.mark.parametrize(("spoil_as", "reason"), SPOILED)
def test_a_failed_refresh_keeps_the_services_copy_held(
    demo: LiveDemo, feed: Feed, sp: ServiceSp, spoil_as: str, reason: str
) -> None:
    registered = demo.registry.registered_metadata("sp", SERVICE_ID)
    spoil(feed, spoil_as, registered, sp.entity_id)
    generation = demo.registry.generation()
    result = _cli(demo, "metadata", "refresh")
    assert result.exit_code == 1, result.output
    assert f"service {SERVICE_ID} (SP {sp.entity_id}): refused ({reason}" in result.output
    assert "the last good copy stays" in result.output
    assert demo.registry.registered_metadata("sp", SERVICE_ID) == registered
    assert demo.registry.generation() == generation
    record = demo.registry.refresh_records("sp")[SERVICE_ID]
    assert record.failure == reason.split(":", maxsplit=1)[0]
    assert record.failed_at is not None
    _signs_in(demo, sp)


def test_a_service_given_as_a_file_is_not_fetched(
    demo: LiveDemo, feed: Feed, sp: ServiceSp, tmp_path: Path
) -> None:
    given_as_file_is_not_fetched(demo, feed, tmp_path / "sp.xml", ("publisher", SERVICE_ID))


def test_a_service_added_by_url_keeps_it(demo: LiveDemo, feed: Feed, platform: ServiceSp) -> None:
    """`publisher add --saml-metadata URL` keeps the URL, and the copy counts as refreshed."""
    entity_id = platform.entity_id.replace("/metadata", "/other-metadata")
    feed.body = platform.metadata().replace(platform.entity_id, entity_id).encode()
    added = _cli(
        demo, "publisher", "add", "--id", "added-by-url", "--name", "Added by URL",
        "--saml-metadata", feed.url,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"`ketenbroker metadata refresh` fetches {feed.url} again" in added.output
    try:
        assert demo.registry.metadata_url("sp", "added-by-url") == feed.url
        assert demo.registry.refresh_records("sp")["added-by-url"].refreshed_at is not None
    finally:
        _given_as_file(demo, "added-by-url")
