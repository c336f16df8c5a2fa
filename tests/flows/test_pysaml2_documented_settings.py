"""A publisher's pysaml2 SP against the broker, with pysaml2's defaults and with the settings
docs/publishers.md (section 7) gives, read from the document: what each signs, and what the
platform is handed (`ava`) under each naming profile.

The defaults fail in ways a publisher's engineer does not see: RSA-SHA1 signatures (refused as
`weak_algorithm`, the student gets an error page) and attributes dropped silently (all of them
under the `plain` profile).
"""

from __future__ import annotations

import logging

import pytest

from broker.core.model import NamingProfile
from tests.support.live import LiveDemo
from tests.support.pysaml2_publisher import OwnSp, documented_settings

pytestmark = pytest.mark.usefixtures("collect_pysaml2_temp_files")

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
UID = "sanne.jansen"


@pytest.fixture(scope="module")
def signing_sp(demo: LiveDemo) -> OwnSp:
    return OwnSp(demo, "pysaml2-ondertekend", chain="leermiddelen", sign_requests=True)


def test_pysaml2_signs_with_sha1_by_default_and_the_broker_refuses_it(
    signing_sp: OwnSp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        answer = signing_sp.login({})
    assert answer.page.status == 400, answer.page.text[:300]
    assert answer.saml_response is None
    assert "refused code=weak_algorithm " in caplog.text, caplog.text


def test_the_algorithms_at_the_top_level_change_nothing(
    signing_sp: OwnSp, caplog: pytest.LogCaptureFixture
) -> None:
    top_level = {"signing_algorithm": RSA_SHA256, "digest_algorithm": SHA256}
    with caplog.at_level(logging.INFO):
        answer = signing_sp.login(top_level)
    assert answer.page.status == 400
    assert "refused code=weak_algorithm " in caplog.text, caplog.text


def test_the_documented_settings_sign_with_sha256_and_log_in(signing_sp: OwnSp) -> None:
    settings = documented_settings()
    assert settings["service"]["sp"]["signing_algorithm"] == RSA_SHA256
    answer = signing_sp.login(settings)
    assert answer.page.status == 200, answer.page.text[:300]
    ava = signing_sp.ava(answer, settings)
    assert ava["pairwise-id"][0].startswith(signing_sp.demo.expected_pseudonym(UID, "leermiddelen"))


@pytest.mark.parametrize("naming", [NamingProfile.OID, NamingProfile.PLAIN])
def test_what_the_platform_is_handed_with_and_without_the_documented_settings(
    demo: LiveDemo, naming: NamingProfile
) -> None:
    sp = OwnSp(
        demo,
        f"pysaml2-{naming.value}",
        chain="leermiddelen",
        naming=naming,
        released=frozenset({"given_name", "eck_id"}),
    )
    answer = sp.login({})
    documented = sp.ava(answer, documented_settings())
    by_default = sp.ava(answer, {})
    # Where pysaml2 does not read it: the same as no setting at all.
    misplaced = sp.ava(answer, {"service": {"sp": {"allow_unknown_attributes": True}}})
    assert misplaced == by_default
    if naming is NamingProfile.OID:
        # urn:oid: names and pairwise-id under their FriendlyNames either way; the plain-named
        # eckId only with the setting.
        assert by_default["givenName"] == documented["givenName"] == ["Sanne"]
        assert by_default["pairwise-id"] == documented["pairwise-id"]
        assert "eckId" not in by_default
        assert documented["eckId"]
    else:
        # Every released attribute has a plain name: pysaml2 drops them all by default.
        assert "givenName" not in by_default and "eckId" not in by_default
        assert by_default.keys() == {"pairwise-id"}
        assert documented["givenName"] == ["Sanne"]
        assert documented["eckId"]
