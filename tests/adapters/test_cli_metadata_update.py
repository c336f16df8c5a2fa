"""`ketenbroker school update` and `publisher update --saml-metadata` as an operator runs them
after a school or publisher rolled its certificate or moved endpoints: what changed is printed
(fingerprints, endpoints), identical metadata changes nothing, and every refusal is one line,
exit code 1, with the registry exactly as it was."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from broker.certificates import write_pair
from broker.config import load_settings
from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import OidcUpstream, School
from broker.demo.publisher_sp import PublisherSpSettings, publisher_sp_metadata
from broker.demo.school_idp import SchoolIdpSettings, school_idp_metadata
from broker.registry import SqlRegistry
from tests.support.cli import registry_of, run

IDP = "http://localhost:9301/metadata"
SP = "http://127.0.0.1:9302/metadata"
FEDERATED_IDP = "https://idp.federated.example/metadata"


@dataclass(frozen=True)
class Files:
    folder: Path

    def key(self, name: str) -> tuple[Path, Path]:
        key, cert = self.folder / f"{name}.key", self.folder / f"{name}.crt"
        if not key.exists():
            write_pair(key, cert, name)
        return key, cert

    def idp(self, name: str, *, key: str = "idp", base_url: str = "http://localhost:9301",
            entity_id: str = IDP) -> Path:  # fmt: skip
        key_file, cert_file = self.key(key)
        path = self.folder / f"{name}.xml"
        path.write_text(
            school_idp_metadata(
                SchoolIdpSettings(
                    base_url=base_url,
                    entity_id=entity_id,
                    key_file=key_file,
                    cert_file=cert_file,
                    sp_metadata=(),
                    school_name="De Rolschool",
                    brin="98XX00",
                )
            ),
            encoding="utf-8",
        )
        return path

    def sp(self, name: str, *, key: str = "sp", base_url: str = "http://127.0.0.1:9302",
           entity_id: str = SP) -> Path:  # fmt: skip
        key_file, cert_file = self.key(key)
        path = self.folder / f"{name}.xml"
        path.write_text(
            publisher_sp_metadata(
                PublisherSpSettings(
                    base_url=base_url,
                    entity_id=entity_id,
                    name="Uitgeverij Rol",
                    key_file=key_file,
                    cert_file=cert_file,
                    idp_metadata=(),
                )
            ),
            encoding="utf-8",
        )
        return path


def fingerprint(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    return ":".join(f"{b:02X}" for b in digest)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("metadata-update"))


@pytest.fixture
def config(tmp_path: Path, files: Files) -> Iterator[Path]:
    """A SAML school and service from files, an OIDC school and client, and a school whose
    metadata a metadata source holds."""
    assert run("init", tmp_path / "kb", "--base-url", "http://127.0.0.1:8000").exit_code == 0
    path = tmp_path / "kb" / "ketenbroker.toml"
    for args in (
        ("school", "add", "--id", "12AB", "--name", "Rolschool", "--saml-metadata",
         files.idp("idp")),
        ("publisher", "add", "--id", "rol", "--name", "Rol", "--saml-metadata", files.sp("sp")),
        ("publisher", "add", "--id", "app", "--name", "App", "--oidc-redirect-uri",
         "https://app.example/cb"),
    ):  # fmt: skip
        result = run(*args[:2], "--config", path, *args[2:])
        assert result.exit_code == 0, result.output
    registry = registry_of(path)
    try:
        registry.add_school(
            School("34CD", "OIDC-school", "https://op.example", "sub",
                   oidc=OidcUpstream("https://op.example", "kb", "secret", ("RS256",))),
            "",
        )  # fmt: skip
        federated = files.idp("federated", key="federated", entity_id=FEDERATED_IDP,
                              base_url="https://idp.federated.example")  # fmt: skip
        registry.federation.store(
            "surf",
            "digest",
            FeedDates(None, None),
            [FederationEntity(FEDERATED_IDP, "idp", federated.read_text(), None)],
            datetime.now(UTC),
        )
    finally:
        registry.close()
    result = run("school", "add", "--config", path, "--id", "56EF", "--name", "Fed",
                 "--saml-entity-id", FEDERATED_IDP)  # fmt: skip
    assert result.exit_code == 0, result.output
    yield path


def dump(config: Path) -> list[str]:
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        return list(connection.iterdump())


def registered(config: Path, role: str, entry_id: str) -> str:
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        return registry.registered_metadata(role, entry_id)
    finally:
        registry.close()


# -- a roll-over: what changed, and that it is stored ------------------------------------------
def test_school_certificate_roll_over_prints_both_fingerprints(config: Path, files: Files) -> None:
    rolled = files.idp("idp-rolled", key="idp-next")
    result = run("school", "update", "--config", config, "--id", "12AB", "--saml-metadata", rolled)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"School 12AB: metadata of {IDP} updated."
    new, old = fingerprint(files.key("idp-next")[1]), fingerprint(files.key("idp")[1])
    assert any(f"signing certificate added: SHA-256 {new}, valid until 20" in x for x in lines)
    assert any(f"signing certificate removed: SHA-256 {old}, valid until 20" in x for x in lines)
    assert not any("endpoint" in line for line in lines)
    assert "no restart is needed" in lines[-2]
    assert "Given as a file: nothing fetches it again" in lines[-1]
    assert registered(config, "idp", "12AB") == rolled.read_text()


def test_school_with_both_certificates_during_roll_over(config: Path, files: Files) -> None:
    """A school publishing the next key beside the current one: only the new one is added."""
    current = files.idp("idp").read_text()
    next_cert = files.idp("only-next", key="idp-next").read_text()
    start = next_cert.index("<ns0:KeyDescriptor")
    key = next_cert[start : next_cert.index("</ns0:KeyDescriptor>") + len("</ns0:KeyDescriptor>")]
    both = files.folder / "both.xml"
    both.write_text(current.replace("<ns0:KeyDescriptor", key + "<ns0:KeyDescriptor", 1))
    result = run("school", "update", "--config", config, "--id", "12AB", "--saml-metadata", both)
    assert result.exit_code == 0, result.output
    changes = [line for line in result.output.splitlines() if "certificate" in line]
    assert changes == [
        f"  signing certificate added: SHA-256 {fingerprint(files.key('idp-next')[1])}, "
        f"valid until {changes[0].rsplit('valid until ', 1)[1]}"
    ]


def test_service_endpoints_moved(config: Path, files: Files) -> None:
    moved = files.sp("sp-moved", base_url="https://sp.moved.example")
    result = run("publisher", "update", "--config", config, "--id", "rol", "--saml-metadata", moved)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Service rol: metadata of {SP} updated.")
    assert "endpoint moved: AssertionConsumerService (HTTP-POST index 1) " in result.output
    assert "http://127.0.0.1:9302/acs -> https://sp.moved.example/acs\n" in result.output
    assert "certificate" not in result.output
    assert registered(config, "sp", "rol") == moved.read_text()


def test_identical_metadata_is_no_change(config: Path, files: Files) -> None:
    before = dump(config)
    for kind, entry, path in (("school", "12AB", files.idp("idp")),
                              ("publisher", "rol", files.sp("sp"))):  # fmt: skip
        result = run(kind, "update", "--config", config, "--id", entry, "--saml-metadata", path)
        assert result.exit_code == 0, result.output
        assert "no change" in result.output and "updated" not in result.output
    assert dump(config) == before


def test_other_content_changed_is_said(config: Path, files: Files) -> None:
    renamed = files.folder / "renamed.xml"
    renamed.write_text(files.idp("idp").read_text().replace("persistent", "transient"))
    result = run("school", "update", "--config", config, "--id", "12AB", "--saml-metadata", renamed)
    assert result.exit_code == 0, result.output
    assert "no certificate or endpoint changed (other content did)" in result.output


# -- refusals: one line, exit code 1, nothing changed ------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("school", "update", "--id", "99ZZ", "--saml-metadata", "idp"),
         "Error: no school with id '99ZZ'"),
        (("publisher", "update", "--id", "nope", "--saml-metadata", "sp"),
         "Error: no service with id 'nope'"),
        (("school", "update", "--id", "34CD", "--saml-metadata", "idp"),
         "Error: School 34CD signs in with OpenID Connect (https://op.example), not SAML"),
        (("publisher", "update", "--id", "app", "--saml-metadata", "sp"),
         "Error: Service app is an OpenID Connect client, not SAML"),
        (("publisher", "update", "--id", "rol", "--oidc-redirect-uri", "https://x.example/cb"),
         "Error: Service rol is a SAML service: the --oidc-* options change OpenID Connect"),
        (("school", "update", "--id", "56EF", "--saml-metadata", "idp"),
         "Error: School 56EF: its metadata comes from metadata source surf; "
         "`ketenbroker metadata refresh` updates it"),
        (("school", "update", "--id", "12AB", "--saml-metadata", "other-idp"),
         "Error: School 12AB: the metadata is for http://localhost:9309/metadata, not for the "
         f"registered {IDP}; another entity id is a new registration (remove and add)"),
        (("publisher", "update", "--id", "rol", "--saml-metadata", "other-sp"),
         "Error: Service rol: the metadata is for http://127.0.0.1:9308/metadata, not for the "
         f"registered {SP}"),
        (("school", "update", "--id", "12AB", "--saml-metadata", "sp"),
         f"Error: metadata of {SP} does not describe an identity provider"),
        (("publisher", "update", "--id", "rol", "--saml-metadata", "idp"),
         f"Error: metadata of {IDP} does not describe a service provider"),
    ],
    ids=[
        "unknown school", "unknown service", "OIDC school", "OIDC client", "SAML service OIDC",
        "federated", "school entity id", "service entity id", "SP for school", "IdP for service",
    ],
)  # fmt: skip
def test_refusals(config: Path, files: Files, args: tuple[str, ...], message: str) -> None:
    paths = {
        "idp": files.idp("idp-rolled", key="idp-next"),
        "sp": files.sp("sp-rolled", key="sp-next"),
        "other-idp": files.idp("other-idp", entity_id="http://localhost:9309/metadata"),
        "other-sp": files.sp("other-sp", entity_id="http://127.0.0.1:9308/metadata"),
    }
    before = dump(config)
    given = [str(paths.get(a, a)) for a in args]
    result = run(*given[:2], "--config", config, *given[2:])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(message), result.output
    assert len(result.output.splitlines()) == 1, result.output
    assert dump(config) == before


def test_saml_and_oidc_options_together_are_a_usage_error(config: Path, files: Files) -> None:
    before = dump(config)
    result = run(
        "publisher", "update", "--config", config, "--id", "app",
        "--saml-metadata", files.sp("sp"), "--oidc-redirect-uri", "https://app.example/cb2",
    )  # fmt: skip
    assert result.exit_code == 2 and "exclude" in result.output
    assert dump(config) == before


def test_oidc_update_still_works(config: Path) -> None:
    result = run(
        "publisher", "update", "--config", config, "--id", "app",
        "--oidc-redirect-uri", "https://app.example/cb2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Service app updated (OpenID Connect client)." in result.output


def test_registered_by_entity_id_without_a_source_copy(config: Path, files: Files) -> None:
    """A school registered by --saml-entity-id whose source no longer (or not yet) holds it has
    no metadata; the operator may give it its own, all of which is then new."""
    path = files.idp("pending", key="pending", entity_id="https://idp.pending.example/md",
                     base_url="https://idp.pending.example")  # fmt: skip
    added = run("school", "add", "--config", config, "--id", "78GH", "--name", "Pending",
                "--saml-entity-id", "https://idp.pending.example/md")  # fmt: skip
    assert added.exit_code == 0, added.output
    result = run("school", "update", "--config", config, "--id", "78GH", "--saml-metadata", path)
    assert result.exit_code == 0, result.output
    assert "It had no metadata of its own" in result.output
    assert "signing certificate added" in result.output
    assert "endpoint added: SingleSignOnService (HTTP-Redirect)" in result.output


def test_an_idp_copy_with_only_an_encryption_key_is_refused(config: Path, files: Files) -> None:
    """The broker checks a school's assertions with the IdP's *signing* keys (a KeyDescriptor
    with use="signing" or without `use`): a copy whose only key is for encryption would make
    every login of the school fail the moment running brokers pick it up."""
    encryption_only = files.folder / "encryption-only.xml"
    rolled = files.idp("idp-rolled", key="idp-next").read_text()
    encryption_only.write_text(rolled.replace('use="signing"', 'use="encryption"'))
    before = dump(config)
    result = run(
        "school", "update", "--config", config, "--id", "12AB", "--saml-metadata", encryption_only
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: metadata of {IDP} has no signing key"), result.output
    assert dump(config) == before


# -- SLO URLs: https (plain http only to loopback), as SSO and ACS URLs ---------------------------
@pytest.mark.parametrize(
    ("kind", "entry", "role", "entity"),
    [("school", "12AB", "idp", IDP), ("publisher", "rol", "sp", SP)],
)
def test_an_slo_url_that_is_not_https_is_refused(
    config: Path, files: Files, kind: str, entry: str, role: str, entity: str
) -> None:
    given = files.idp("idp-rolled", key="idp-next") if role == "idp" else files.sp("sp-rolled")
    local = "http://localhost:9301/slo" if role == "idp" else "http://127.0.0.1:9302/slo"
    plain = files.folder / f"plain-http-slo-{role}.xml"
    plain.write_text(given.read_text().replace(local, "http://slo.rol.example/slo"))
    before = dump(config)
    result = run(kind, "update", "--config", config, "--id", entry, "--saml-metadata", plain)
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"Error: SLO URL 'http://slo.rol.example/slo' of {entity} must be https "
        "(plain http only on loopback)\n"
    )
    assert dump(config) == before


def test_the_lists_show_a_copy_registered_before_the_rule(config: Path) -> None:
    """A school's copy with a plain-http SSO URL and a service's with plain-http SLO and ACS
    URLs, as registered before intake checked them (stored as they were): the listings say
    what the login and logout paths refuse, and `registry status` counts them."""
    status = run("registry", "status", "--config", config)
    assert status.exit_code == 0, status.output
    assert status.output.endswith(
        "Schools with an SSO or SLO URL that is not https: 0.\n"
        "Services with an ACS or SLO URL that is not https: 0.\n"
    )
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute(
            "UPDATE schools SET idp_metadata = replace(idp_metadata, "
            "'http://localhost:9301/', 'http://idp.rol.example/') WHERE id = '12AB'"
        )
        connection.execute(
            "UPDATE services SET sp_metadata = replace(sp_metadata, "
            "'http://127.0.0.1:9302/slo', 'http://sp.rol.example/slo') WHERE id = 'rol'"
        )
    schools = run("school", "list", "--config", config, "--json")
    assert schools.exit_code == 0, schools.output
    by_id = {line["id"]: line for line in map(json.loads, schools.output.splitlines())}
    assert by_id["12AB"]["registration"] == (
        "metadata from registration, SSO URL NOT https: logins refused, "
        "SLO URL NOT https: no logout messages sent"
    )
    assert by_id["56EF"]["registration"] == "metadata from source surf"
    services = run("publisher", "list", "--config", config, "--json")
    by_id = {line["id"]: line for line in map(json.loads, services.output.splitlines())}
    assert by_id["rol"]["registration"] == (
        "metadata from registration, SLO URL NOT https: no logout messages sent"
    )
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute(
            "UPDATE services SET sp_metadata = replace(sp_metadata, "
            "'http://127.0.0.1:9302/acs', 'http://sp.rol.example/acs') WHERE id = 'rol'"
        )
    services = run("publisher", "list", "--config", config, "--json")
    by_id = {line["id"]: line for line in map(json.loads, services.output.splitlines())}
    assert by_id["rol"]["registration"] == (
        "metadata from registration, ACS URL NOT https: logins refused, "
        "SLO URL NOT https: no logout messages sent"
    )
    status = run("registry", "status", "--config", config)
    assert status.exit_code == 0, status.output
    assert status.output.endswith(
        "Schools with an SSO or SLO URL that is not https: 1 "
        "(`ketenbroker school list` marks them).\n"
        "Services with an ACS or SLO URL that is not https: 1 "
        "(`ketenbroker publisher list` marks them).\n"
    )


# -- two operators at once: the second is refused, the first one's copy stays -----------------
@pytest.mark.parametrize(
    ("kind", "entry", "role"), [("school", "12AB", "idp"), ("publisher", "rol", "sp")]
)
def test_a_copy_changed_between_read_and_write_is_refused(
    config: Path, files: Files, monkeypatch: pytest.MonkeyPatch, kind: str, entry: str, role: str
) -> None:
    """Another operator's update lands after this command read the registered copy (and showed
    the change against it) but before it writes: refused, exit 1, the other one's copy stays."""
    theirs = "<theirs/>"
    read = SqlRegistry.registered_metadata

    def read_then_overtaken(self: SqlRegistry, role: str, entry_id: str) -> str:
        copy = read(self, role, entry_id)
        write = self.update_school_metadata if role == "idp" else self.update_service_metadata
        write(entry_id, theirs)
        return copy

    monkeypatch.setattr(SqlRegistry, "registered_metadata", read_then_overtaken)
    new = files.idp("idp-mine", key="idp-next") if role == "idp" else files.sp("sp-mine", key="x")
    result = run(kind, "update", "--config", config, "--id", entry, "--saml-metadata", new)
    assert result.exit_code == 1
    title = "School" if kind == "school" else "Service"
    assert result.output == (
        f"Error: {title} {entry}: the metadata changed meanwhile; run the command again\n"
    )
    monkeypatch.undo()
    assert registered(config, role, entry) == theirs


# -- a school board's IdP: one IdP, one metadata, for every school on it ------------------------
def test_schools_of_one_board_share_its_idp_and_its_metadata(config: Path, files: Files) -> None:
    joined = run("school", "add", "--config", config, "--id", "12AC", "--name", "Rolschool Zuid",
                 "--saml-metadata", files.idp("idp"))  # fmt: skip
    assert joined.exit_code == 0, joined.output
    assert f"School 12AC added (IdP {IDP})." in joined.output
    # What the school's ICT registers at the IdP: the broker's SP metadata.
    assert re.search(r"The broker's SP metadata for the IdP to read: \S+/saml/sp/metadata\n",
                     joined.output)  # fmt: skip
    assert "shared with school(s) 12AB" in joined.output
    assert "nlEduPersonHomeOrganizationId" in joined.output

    # Other metadata for the same IdP: refused, with what to do, and nothing written.
    before = dump(config)
    rolled = files.idp("idp-board-rolled", key="idp-board-next")
    refused = run("school", "add", "--config", config, "--id", "12AD", "--name", "Rolschool Oost",
                  "--saml-metadata", rolled)  # fmt: skip
    assert refused.exit_code == 1
    assert "already registered for school(s) 12AB, 12AC with other metadata" in refused.output
    assert "school update --id 12AB --saml-metadata FILE" in refused.output
    assert dump(config) == before

    # An update through one school is the IdP's: every school on it gets the new copy.
    updated = run("school", "update", "--config", config, "--id", "12AC", "--saml-metadata",
                  rolled)  # fmt: skip
    assert updated.exit_code == 0, updated.output
    assert "Also updated for school(s) 12AB: they share this IdP." in updated.output
    assert registered(config, "idp", "12AB") == registered(config, "idp", "12AC")
    assert registered(config, "idp", "12AB") == rolled.read_text()
    # Now the third school comes with the same (new) copy.
    third = run("school", "add", "--config", config, "--id", "12AD", "--name", "Rolschool Oost",
                "--saml-metadata", rolled)  # fmt: skip
    assert third.exit_code == 0, third.output
    assert "shared with school(s) 12AB, 12AC" in third.output

    # `school list` names the other schools on each school's IdP.
    listed = {
        line["id"]: line["registration"]
        for line in map(
            json.loads, run("school", "list", "--config", config, "--json").output.splitlines()
        )
    }
    assert listed["12AC"].endswith(", IdP shared with 12AB, 12AD, logins must name the school")
    assert listed["12AB"].endswith(", IdP shared with 12AC, 12AD, logins must name the school")


def school_registrations(config: Path) -> dict[str, str]:
    listed = run("school", "list", "--config", config, "--json").output.splitlines()
    return {line["id"]: line["registration"] for line in map(json.loads, listed)}


def test_a_board_idp_keeps_naming_the_school_until_the_operator_says(
    config: Path, files: Files
) -> None:
    """The requirement is the IdP's, not a count: it stays when the second school leaves, and
    the operator clears it (for an IdP of one school only) or sets it (a board's first)."""
    joined = run("school", "add", "--config", config, "--id", "12AC", "--name", "Rolschool Zuid",
                 "--saml-metadata", files.idp("idp"))  # fmt: skip
    assert joined.exit_code == 0, joined.output
    # While two schools are on it, it cannot be cleared; refused before the new metadata
    # given with it is written.
    before = dump(config)
    kept = run("school", "update", "--config", config, "--id", "12AB", "--no-idp-names-school",
               "--saml-metadata", files.idp("idp-board-rolled", key="idp-board-next"))  # fmt: skip
    assert kept.exit_code == 1
    assert "registered for schools 12AB, 12AC: its logins must name their school" in kept.output
    assert dump(config) == before

    removed = run("school", "remove", "12AC", "--yes", "--config", config)
    assert removed.exit_code == 0, removed.output
    assert school_registrations(config)["12AB"].endswith(", logins must name the school")

    cleared = run("school", "update", "--config", config, "--id", "12AB", "--no-idp-names-school")
    assert cleared.exit_code == 0, cleared.output
    assert f"logins through IdP {IDP} need not name the school any more" in cleared.output
    assert "must name" not in school_registrations(config)["12AB"]

    # A board IdP with one school so far: the operator asks for it.
    marked = run("school", "update", "--config", config, "--id", "12AB", "--idp-names-school")
    assert marked.exit_code == 0, marked.output
    assert f"School 12AB: logins through IdP {IDP} must name their school." in marked.output
    assert school_registrations(config)["12AB"].endswith(", logins must name the school")
    # An OpenID provider's issuer is marked the same way (a board's tenant, its first school).
    oidc = run("school", "update", "--config", config, "--id", "34CD", "--idp-names-school")
    assert oidc.exit_code == 0, oidc.output
    assert "School 34CD: logins through IdP https://op.example must name their" in oidc.output
    assert school_registrations(config)["34CD"].endswith(", logins must name the school")


def test_a_school_without_a_brin_cannot_join_an_idp_that_names_the_school(
    config: Path, files: Files
) -> None:
    before = dump(config)
    refused = run("school", "add", "--config", config, "--id", "lyceum-zuid", "--name", "Zuid",
                  "--saml-metadata", files.idp("idp"))  # fmt: skip
    assert refused.exit_code == 1
    assert "school id 'lyceum-zuid' is not a BRIN" in refused.output
    assert dump(config) == before


def test_a_saml_school_cannot_join_an_openid_issuer(config: Path, files: Files) -> None:
    before = dump(config)
    refused = run("school", "add", "--config", config, "--id", "34CE", "--name", "SAML-twin",
                  "--saml-entity-id", "https://op.example")  # fmt: skip
    assert refused.exit_code == 1
    assert "idp_entity_id 'https://op.example' already exists" in refused.output
    assert dump(config) == before
