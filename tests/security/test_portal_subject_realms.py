"""A school whose user names and student numbers have no realm registered cannot choose either
as the attribute that identifies a student: every value would be dropped at login (catalogue.py,
core/subjects.py `lacks_realms`), so no student could sign in. The identity provider page
refuses the choice next to the field, says who registers realms, and saves nothing; a school
with realms chooses them as before."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import pytest
from flask.testing import FlaskClient

from broker.certificates import write_pair
from broker.core.admins import AdminRole
from broker.core.model import School
from broker.demo.school_idp import SchoolIdpSettings, school_idp_metadata
from tests.security.test_portal_school_idp_problems import field_error, post
from tests.support.portal import PortalSite

SCHOOL_ID = "77RE00"
IDP = f"/portal/school/{SCHOOL_ID}/identity-provider"


ENTITY_ID = "https://idp.zonder-realm.example/metadata"


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("no-realm-idp")
    key, cert = folder / "idp.key", folder / "idp.crt"
    write_pair(key, cert, "zonder-realm")
    settings = SchoolIdpSettings(
        base_url="https://idp.zonder-realm.example",
        entity_id=ENTITY_ID,
        key_file=key,
        cert_file=cert,
        sp_metadata=(),
        school_name="Zonder realm",
        brin=SCHOOL_ID,
    )
    return school_idp_metadata(settings)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, metadata: str) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("subject-realms"), port=8795)
    # Registered without --scope, as `school add` allowed before the rule.
    built.registry.add_school(School(SCHOOL_ID, "Zonder realm", ENTITY_ID), metadata)
    built.accounts["no-realm"] = built.add_account(
        "ict@zonder.example", AdminRole.SCHOOL, SCHOOL_ID
    )
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("no-realm")


@pytest.mark.parametrize(
    ("lang", "subject", "said"),
    [
        ("nl", "username", "Vraag de operator van de federatie om de realms van uw school"),
        ("en", "student_number", "Ask the broker's operator to register your school's realms"),
    ],
)
def test_a_scoped_subject_without_realms_is_refused_beside_the_field(
    site: PortalSite, school: FlaskClient, metadata: str, lang: str, subject: str, said: str
) -> None:
    before, generation = site.registry.school(SCHOOL_ID), site.registry.generation()
    upload = {"metadata_file": (BytesIO(metadata.encode()), "idp.xml"), "saml_subject": subject}
    status, page = post(school, "/saml", upload, lang, url=IDP)
    assert status == 400
    assert said in field_error(page, "saml_subject")
    assert site.registry.school(SCHOOL_ID) == before
    assert site.registry.generation() == generation
    # The OpenID form says it too, in the same round as the provider's problems.
    oidc = {"issuer": "http://127.0.0.1:9/none", "client_id": "broker",
            "client_secret": "geheim", "algorithm": "RS256", "oidc_subject": subject}  # fmt: skip
    status, page = post(school, "/oidc", oidc, lang, url=IDP)
    assert status == 400
    assert said in field_error(page, "oidc_subject")
    assert field_error(page, "issuer")
    assert site.registry.school(SCHOOL_ID) == before


def test_the_persistent_name_id_needs_no_realm(school: FlaskClient, metadata: str) -> None:
    upload = {"metadata_file": (BytesIO(metadata.encode()), "idp.xml"), "saml_subject": "name_id"}
    status, _ = post(school, "/saml", upload, "nl", url=IDP)
    assert status == 303
