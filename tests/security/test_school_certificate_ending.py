"""A school whose IdP's signing certificates in the copy in force all end within 30 days: the
operator's "Needs attention" page and `registry problems` list it (with the date), the
`ketenbroker_school_idp_certificates_ending` gauge counts it (one number, no school label), and
the school's own administrators see a banner on every portal page (Dutch, formal). A school
whose IdP publishes the next certificate beside the ending one (ADFS, 20 days before) is not
reported: after the refresh, the broker holds one valid beyond the period."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.metadata_aggregate import certificate_body
from broker.certificates import self_signed_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.main import main
from broker.saml.metadata_changes import signing_valid_until
from broker.web.metadata_metrics import CERTIFICATES_ENDING
from tests.security.test_portal_attention import _section
from tests.support.portal import HTTPS, PortalSite

ENDING_CERT = certificate_body(self_signed_pair("ADFS Signing - ending", days=12)[1])
NEXT_CERT = certificate_body(self_signed_pair("ADFS Signing - next", days=365)[1])
DS = "http://www.w3.org/2000/09/xmldsig#"


def _with_certificates(metadata: str, *bodies: str) -> str:
    """The copy with its signing certificate replaced by `bodies` (one KeyDescriptor each)."""
    # Whatever prefixes the copy was written with (ElementTree's are process-wide: a module
    # that registers "ds" or "md" changes them for every later serialisation).
    opened = re.search(r"<(\w+:)?KeyDescriptor\b", metadata)
    assert opened is not None, metadata
    start, closing = opened.start(), f"</{opened.group(1) or ''}KeyDescriptor>"
    end = metadata.index(closing, start) + len(closing)
    current = re.search(
        r"<(?:\w+:)?X509Certificate>([^<]*)</(?:\w+:)?X509Certificate>", metadata[start:end]
    )
    assert current is not None, metadata[start:end]
    keys = "".join(metadata[start:end].replace(current.group(1), body) for body in bodies)
    return metadata[:start] + keys + metadata[end:]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path, port=8837)
    registry = built.registry
    registered = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    registry.update_school_metadata(DEMO_SCHOOL_ID, _with_certificates(registered, ENDING_CERT))
    yield built
    registry.close()


def _gauge(site: PortalSite) -> float:
    scraped = site.client().get("/metrics").get_data(as_text=True)
    (value,) = re.findall(rf"^{CERTIFICATES_ENDING} (\S+)$", scraped, re.M)
    return float(value)


def test_an_ending_certificate_is_listed_counted_and_shown_to_the_school(
    site: PortalSite,
) -> None:
    copy = site.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    until = signing_valid_until(copy, "idp")
    assert until is not None and until - datetime.now(UTC) < timedelta(days=13)
    day = until.date().isoformat()

    page = site.sign_in("operator").get("/portal/operator/attention?lang=en", base_url=HTTPS)
    text = page.get_data(as_text=True)
    section = _section(text, "schools_certificate_ending")
    assert f"/portal/operator/schools/{DEMO_SCHOOL_ID}" in section
    assert f"signing certificate valid until {day}" in section
    assert "ADFS publishes its next certificate 20 days before" in section
    assert _gauge(site) == 1.0

    config = site.directory / "ketenbroker.toml"
    problems = CliRunner().invoke(main, ["registry", "problems", "--config", str(config)])
    assert f"signing certificate valid until {day}" in problems.output, problems.output

    school = site.sign_in("school")
    banner = school.get(f"/portal/school/{DEMO_SCHOOL_ID}/services?lang=nl", base_url=HTTPS)
    assert banner.status_code == 200
    shown = banner.get_data(as_text=True)
    assert 'id="certificate-ending"' in shown
    assert "Het ondertekeningscertificaat van uw inlogdienst" in shown


def test_a_published_successor_ends_the_warning(site: PortalSite) -> None:
    registry = site.registry
    ending = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    both = _with_certificates(ending, NEXT_CERT, ENDING_CERT)
    registry.update_school_metadata(DEMO_SCHOOL_ID, both, ending)
    assert _gauge(site) == 0.0
    page = site.sign_in("operator").get("/portal/operator/attention?lang=en", base_url=HTTPS)
    assert "attention-schools_certificate_ending" not in page.get_data(as_text=True)
    school = site.sign_in("school")
    shown = school.get(f"/portal/school/{DEMO_SCHOOL_ID}/services?lang=nl", base_url=HTTPS)
    assert 'id="certificate-ending"' not in shown.get_data(as_text=True)
