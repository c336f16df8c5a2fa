"""The `ketenbroker` command (broker/cli): init, chains, schools, publishers, policies.

Every error case checks three things: a message that says what is wrong, a non-zero exit, and a
registry that is byte-for-byte what it was before the command ran.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from broker.certificates import write_pair
from broker.config import load_settings
from broker.core.model import ClientAuthMethod, NamingProfile, OidcClient, Protocol, Service
from broker.demo.publisher_sp import PublisherSpSettings, publisher_sp_metadata
from broker.demo.school_idp import SchoolIdpSettings, school_idp_metadata
from broker.registry import SqlRegistry
from tests.support.cli import run

IDP_ENTITY = "http://localhost:9201/metadata"
SP_ENTITY = "http://127.0.0.1:9202/metadata"


@dataclass(frozen=True)
class Metadata:
    idp: Path
    sp: Path
    not_saml: Path
    second_idp: Path
    second_sp: Path


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Metadata:
    folder = tmp_path_factory.mktemp("metadata")
    write_pair(folder / "idp.key", folder / "idp.crt", "cli test school idp")
    write_pair(folder / "sp.key", folder / "sp.crt", "cli test publisher sp")

    def idp(base_url: str, entity_id: str) -> str:
        return school_idp_metadata(
            SchoolIdpSettings(
                base_url=base_url,
                entity_id=entity_id,
                key_file=folder / "idp.key",
                cert_file=folder / "idp.crt",
                sp_metadata=(),
                school_name="De Demoschool",
                brin="99XX00",
            )
        )

    def sp(base_url: str, entity_id: str) -> str:
        return publisher_sp_metadata(
            PublisherSpSettings(
                base_url=base_url,
                entity_id=entity_id,
                name="Uitgeverij Test",
                key_file=folder / "sp.key",
                cert_file=folder / "sp.crt",
                idp_metadata=(),
            )
        )

    files = Metadata(
        idp=folder / "idp.xml",
        sp=folder / "sp.xml",
        not_saml=folder / "not-saml.xml",
        second_idp=folder / "idp2.xml",
        second_sp=folder / "sp2.xml",
    )
    files.idp.write_text(idp("http://localhost:9201", IDP_ENTITY), encoding="utf-8")
    files.second_idp.write_text(
        idp("http://localhost:9203", "http://localhost:9203/metadata"), encoding="utf-8"
    )
    files.sp.write_text(sp("http://127.0.0.1:9202", SP_ENTITY), encoding="utf-8")
    files.second_sp.write_text(
        sp("http://127.0.0.1:9204", "http://127.0.0.1:9204/metadata"), encoding="utf-8"
    )
    files.not_saml.write_text("<html><body>Not metadata</body></html>", encoding="utf-8")
    return files


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    result = run("init", tmp_path / "broker", "--base-url", "http://127.0.0.1:8000")
    assert result.exit_code == 0, result.output
    return tmp_path / "broker" / "ketenbroker.toml"


def registry_dump(config: Path) -> list[str]:
    database = config.parent / "registry.sqlite3"
    with sqlite3.connect(database) as connection:
        return list(connection.iterdump())


@pytest.fixture(scope="module")
def populated_template(tmp_path_factory: pytest.TempPathFactory, metadata: Metadata) -> Path:
    """A chain, a school and a publisher with a declaration and a requirement, made once."""
    folder = tmp_path_factory.mktemp("template") / "broker"
    assert run("init", folder).exit_code == 0
    config = folder / "ketenbroker.toml"
    result = run(
        "chain", "add", "--config", config, "--id", "leermiddelen", "--name", "Leermiddelen"
    )
    assert result.exit_code == 0, result.output
    result = run(
        "school", "add", "--config", config, "--id", "99XX00", "--name", "De Demoschool",
        "--saml-metadata", metadata.idp, "--scope", "demoschool.example",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run(
        "publisher", "add", "--config", config, "--id", "uitgever", "--name", "Uitgeverij",
        "--saml-metadata", metadata.sp, "--chain", "leermiddelen",
        "--declare", "given_name=om de leerling te begroeten",
        "--require", "affiliation=to show the right materials",
        "--purpose-en", "given_name=to greet the student",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return config


@pytest.fixture
def populated(populated_template: Path, tmp_path: Path) -> Path:
    """A private copy of the template (paths in the file are relative, so a copy just works)."""
    copy = tmp_path / "broker"
    shutil.copytree(populated_template.parent, copy)
    return copy / "ketenbroker.toml"


@pytest.fixture
def unchanged(populated: Path) -> Iterator[Path]:
    """The test must leave the registry exactly as it found it."""
    before = registry_dump(populated)
    yield populated
    assert registry_dump(populated) == before


# -- init --------------------------------------------------------------------------------------
def test_the_module_runs_as_the_command() -> None:
    """`python -m broker.cli.main` is the `ketenbroker` command (it printed nothing)."""
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pseudonym-key" in done.stdout and "publisher" in done.stdout


def test_init_creates_config_keys_and_registry(instance: Path) -> None:
    folder = instance.parent
    assert instance.is_file()
    # Every secret operations.md ("Files and keys") lists, each readable by the broker's user only.
    keys = ("saml-signing.key", "pseudonym-keys.toml", "session-secret", "receipt-key")
    for secret in (*keys, "oidc-rs256.pem", "oidc-es256.pem"):
        mode = stat.S_IMODE((folder / "keys" / secret).stat().st_mode)
        assert mode == 0o600, f"{secret} has mode {oct(mode)}"
    # The file's header names every secret that may come from the environment instead.
    header = instance.read_text(encoding="utf-8").split("[broker]")[0]
    for variable in (
        "KETENBROKER_SECRET_KEY",
        "KETENBROKER_RECEIPT_KEY",
        "KETENBROKER_PSEUDONYM_KEYS",
    ):
        assert variable in header
    assert stat.S_IMODE((folder / "keys").stat().st_mode) == 0o700
    assert (folder / "keys" / "saml-signing.crt").is_file()
    assert (folder / "registry.sqlite3").is_file()
    tables = {line for line in registry_dump(instance) if line.startswith("CREATE TABLE")}
    assert tables
    # The file it wrote is a valid configuration.
    settings = load_settings(instance)
    assert settings.base_url == "http://127.0.0.1:8000"
    assert len(settings.pseudonym_keys.current) == 32


def test_second_init_refuses_and_changes_nothing(instance: Path) -> None:
    folder = instance.parent
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = run("init", folder)
    assert result.exit_code != 0
    assert "exists already" in result.output
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_init_keys_differ_between_instances(tmp_path: Path) -> None:
    assert run("init", tmp_path / "a").exit_code == 0
    assert run("init", tmp_path / "b").exit_code == 0
    a = load_settings(tmp_path / "a" / "ketenbroker.toml")
    b = load_settings(tmp_path / "b" / "ketenbroker.toml")
    assert a.pseudonym_keys.current != b.pseudonym_keys.current
    assert a.secret_key != b.secret_key


# -- adding things -----------------------------------------------------------------------------
def test_chain_school_publisher_policy(populated: Path) -> None:
    result = run("policy", "show", "--config", populated, "--school", "99XX00")
    assert result.exit_code == 0, result.output
    assert (
        "uitgever: v0 releases (pseudonym only); declared: given_name, affiliation*"
        in result.output
    )

    result = run(
        "policy", "set", "--config", populated, "--school", "99XX00", "--publisher", "uitgever",
        "--release", "given_name,affiliation",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Policy version 1" in result.output
    assert "affiliation, given_name" in result.output

    result = run(
        "policy", "set", "--config", populated, "--school", "99XX00", "--publisher", "uitgever",
        "--release", "given_name",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Policy version 2" in result.output

    result = run(
        "policy", "show", "--config", populated, "--school", "99XX00", "--publisher", "uitgever"
    )
    assert result.exit_code == 0, result.output
    assert "uitgever: v2 releases given_name;" in result.output

    result = run(
        "policy", "set", "--config", populated, "--school", "99XX00", "--publisher", "uitgever"
    )
    assert result.exit_code == 0, result.output
    assert "Policy version 3" in result.output and "the pseudonym alone" in result.output


def test_added_entries_are_in_the_registry(populated: Path) -> None:
    from broker.registry import SqlRegistry

    registry = SqlRegistry(load_settings(populated).registry_url)
    try:
        school = registry.school("99XX00")
        assert school is not None
        assert school.idp_entity_id == IDP_ENTITY
        assert school.scopes == ("demoschool.example",)
        service = registry.service("uitgever")
        assert service is not None
        assert service.entity_id == SP_ENTITY
        assert service.chain_id == "leermiddelen"
        assert [
            (d.attribute, d.required, d.purpose, d.purpose_en) for d in service.declarations
        ] == [
            ("given_name", False, "om de leerling te begroeten", "to greet the student"),
            # Without --purpose-en: English pages show this (Dutch) text.
            ("affiliation", True, "to show the right materials", ""),
        ]
        assert registry.chain("leermiddelen") is not None
    finally:
        registry.close()


def test_config_from_environment(populated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBROKER_CONFIG", str(populated))
    result = run("policy", "show", "--school", "99XX00")
    assert result.exit_code == 0, result.output
    assert "uitgever: v0" in result.output


# -- refusals: a specific message, non-zero exit, registry unchanged ---------------------------
def expect_refusal(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output


def test_school_metadata_that_is_not_saml(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--saml-metadata", metadata.not_saml,
    )  # fmt: skip
    expect_refusal(result, "md:EntityDescriptor")


def test_school_metadata_that_is_not_xml(unchanged: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.xml"
    junk.write_text("this is not xml at all")
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--saml-metadata", junk,
    )  # fmt: skip
    expect_refusal(result, "not well-formed XML")


def test_missing_metadata_file(unchanged: Path, tmp_path: Path) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--saml-metadata", tmp_path / "absent.xml",
    )  # fmt: skip
    expect_refusal(result, "cannot read")


def test_publisher_with_idp_metadata(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(result, "SPSSODescriptor")


def test_school_with_sp_metadata(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--saml-metadata", metadata.sp,
    )  # fmt: skip
    expect_refusal(result, "IDPSSODescriptor")


def test_unknown_attribute_in_declare(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.sp, "--declare", "shoe_size=to fit shoes",
    )  # fmt: skip
    expect_refusal(result, "unknown attribute 'shoe_size'", "given_name")


def test_unknown_attribute_in_require(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.sp, "--require", "givenName=to greet",
    )  # fmt: skip
    expect_refusal(result, "unknown attribute 'givenName'")


@pytest.mark.parametrize("declare", ["given_name", "given_name=", "given_name=   "])
def test_declare_without_purpose(unchanged: Path, metadata: Metadata, declare: str) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.sp, "--declare", declare,
    )  # fmt: skip
    expect_refusal(result, "ATTRIBUTE=PURPOSE")


def test_attribute_declared_twice(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.sp, "--declare", "email=to mail",
        "--require", "email=to mail",
    )  # fmt: skip
    expect_refusal(result, "declared twice")


@pytest.mark.parametrize(
    ("purpose_en", "fragment"),
    [("email=to mail", "declare 'email' with --declare or --require first"), ("email", "=")],
)
def test_english_purpose_of_an_undeclared_attribute(
    unchanged: Path, metadata: Metadata, purpose_en: str, fragment: str
) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.sp, "--declare", "given_name=om te begroeten",
        "--purpose-en", purpose_en,
    )  # fmt: skip
    expect_refusal(result, fragment)


def test_unknown_attribute_in_release(unchanged: Path) -> None:
    result = run(
        "policy", "set", "--config", unchanged, "--school", "99XX00", "--publisher", "uitgever",
        "--release", "given_name,shoe_size",
    )  # fmt: skip
    expect_refusal(result, "unknown attribute 'shoe_size'")


def test_release_of_undeclared_attribute(unchanged: Path) -> None:
    result = run(
        "policy", "set", "--config", unchanged, "--school", "99XX00", "--publisher", "uitgever",
        "--release", "given_name,email",
    )  # fmt: skip
    expect_refusal(result, "did not declare email")


def test_policy_for_unknown_school(unchanged: Path) -> None:
    result = run(
        "policy", "set", "--config", unchanged, "--school", "00ZZ00", "--publisher", "uitgever",
        "--release", "given_name",
    )  # fmt: skip
    expect_refusal(result, "no school with id '00ZZ00'")
    expect_refusal(
        run("policy", "show", "--config", unchanged, "--school", "00ZZ00"),
        "unknown school '00ZZ00'",
    )


def test_policy_for_unknown_publisher(unchanged: Path) -> None:
    result = run(
        "policy", "set", "--config", unchanged, "--school", "99XX00", "--publisher", "nobody",
        "--release", "given_name",
    )  # fmt: skip
    expect_refusal(result, "no service with id 'nobody'")
    result = run(
        "policy", "show", "--config", unchanged, "--school", "99XX00", "--publisher", "nobody"
    )
    expect_refusal(result, "unknown publisher 'nobody'")


def test_publisher_in_unknown_chain(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.second_sp, "--chain", "toetsen",
    )  # fmt: skip
    expect_refusal(result, "no chain with id 'toetsen'")


def test_second_publisher_is_accepted(populated: Path, metadata: Metadata) -> None:
    # The control for the refusals above: the same command with valid input succeeds.
    result = run(
        "publisher", "add", "--config", populated, "--id", "other", "--name", "Other",
        "--saml-metadata", metadata.second_sp, "--naming", "plain",
        "--declare", "email=to send the licence",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Service other added (SP http://127.0.0.1:9204/metadata)." in result.output


def test_duplicate_chain(unchanged: Path) -> None:
    result = run("chain", "add", "--config", unchanged, "--id", "leermiddelen", "--name", "Again")
    expect_refusal(result, "a chain with id 'leermiddelen' already exists")


def test_duplicate_school_id(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "99XX00", "--name", "Again",
        "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(result, "already exists", "99XX00")


def test_a_registered_idp_with_other_metadata(
    unchanged: Path, metadata: Metadata, tmp_path: Path
) -> None:
    """Another school on the same IdP (a school board's) must bring the same metadata; the
    same metadata is allowed (test_cli_metadata_update.py)."""
    other_copy = tmp_path / "idp-other.xml"
    other_copy.write_text(metadata.idp.read_text() + "\n<!-- another copy -->\n")
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "Same IdP",
        "--saml-metadata", other_copy,
    )  # fmt: skip
    expect_refusal(
        result, "already registered for school(s) 99XX00 with other metadata", IDP_ENTITY
    )


def test_duplicate_publisher(unchanged: Path, metadata: Metadata) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "uitgever", "--name", "Again",
        "--saml-metadata", metadata.sp,
    )  # fmt: skip
    expect_refusal(result, "already exists", "uitgever")


def test_missing_config(tmp_path: Path) -> None:
    result = run("chain", "add", "--config", tmp_path / "absent.toml", "--id", "c", "--name", "C")
    expect_refusal(result, "cannot read configuration")


@pytest.fixture
def metadata_server(metadata: Metadata) -> Iterator[str]:
    """A loopback HTTP server that serves the second school's metadata at /idp.xml."""
    import http.server
    import threading

    body = Path(metadata.second_idp).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/idp.xml":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_school_metadata_from_loopback_url(populated: Path, metadata_server: str) -> None:
    result = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "By URL",
        "--saml-metadata", f"{metadata_server}/idp.xml",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "School 11AA00 added" in result.output


def test_school_metadata_url_not_found(unchanged: Path, metadata_server: str) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "By URL",
        "--saml-metadata", f"{metadata_server}/missing.xml",
    )  # fmt: skip
    expect_refusal(result, "cannot fetch", "missing.xml")


def test_school_metadata_plain_http_elsewhere_is_refused(unchanged: Path) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "By URL",
        "--saml-metadata", "http://metadata.school.example/idp.xml",
    )  # fmt: skip
    expect_refusal(result, "must be https")


@pytest.mark.parametrize("subject", ["affiliation", "school_id", "given_name", "nonsense"])
def test_school_subject_must_identify_a_student(
    unchanged: Path, metadata: Metadata, subject: str
) -> None:
    result = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "Odd subject",
        "--saml-metadata", metadata.second_idp, "--subject", subject,
    )  # fmt: skip
    expect_refusal(result, "cannot identify a student", "name_id, username, student_number")


@pytest.mark.parametrize("subject", ["username", "student_number"])
def test_a_scoped_subject_needs_the_schools_realms(
    populated: Path, metadata: Metadata, subject: str
) -> None:
    # Without a realm every user name or student number is dropped at login (catalogue.py):
    # no student could sign in, so the school is not registered so.
    before = registry_dump(populated)
    result = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "No realm",
        "--saml-metadata", metadata.second_idp, "--subject", subject,
    )  # fmt: skip
    expect_refusal(result, f"{subject} identifies students", "--scope")
    assert registry_dump(populated) == before
    with_realm = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "With realm",
        "--saml-metadata", metadata.second_idp, "--subject", subject, "--scope", "school.nl",
    )  # fmt: skip
    assert with_realm.exit_code == 0, with_realm.output


# -- publisher add: OpenID Connect clients -----------------------------------------------------
def test_oidc_publisher_prints_its_secret_once_and_stores_only_the_hash(populated: Path) -> None:
    result = run(
        "publisher", "add", "--config", populated, "--id", "woordwijs", "--name", "Woordwijs",
        "--oidc-redirect-uri", "https://woordwijs.example/callback",
        "--oidc-redirect-uri", "http://localhost:8080/callback",
        "--chain", "leermiddelen", "--declare", "given_name=To greet the student.",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = result.output.split("client_secret:")[1].split()[0]
    assert "client_id:     woordwijs" in result.output
    dump = "\n".join(registry_dump(populated))
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump
    service = SqlRegistry(load_settings(populated).registry_url).service("woordwijs")
    assert service is not None and service.oidc is not None
    assert service.entity_id == "woordwijs"
    assert service.oidc.redirect_uris == (
        "https://woordwijs.example/callback",
        "http://localhost:8080/callback",
    )


def test_oidc_public_client_has_no_secret(populated: Path) -> None:
    result = run(
        "publisher", "add", "--config", populated, "--id", "app", "--name", "App",
        "--oidc-redirect-uri", "https://app.example/cb", "--oidc-auth", "none",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "client_secret" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--oidc-redirect-uri", "http://woordwijs.example/cb"), "must be https"),
        (("--oidc-redirect-uri", "https://woordwijs.example/cb#x"), "fragment"),
        (("--oidc-redirect-uri", "https://*.woordwijs.example/cb"), "wildcards"),
        (
            ("--oidc-redirect-uri", "https://wörterbuch.example/cb"),
            "use https://xn--wrterbuch-07a.example/cb",
        ),
        (
            ("--oidc-redirect-uri", "https://w.example/cb", "--oidc-auth", "private_key_jwt"),
            "JWKS URL",
        ),
        ((), "either --saml-metadata or --oidc-redirect-uri"),
    ],
)
def test_bad_oidc_registrations_change_nothing(
    unchanged: Path, arguments: tuple[str, ...], message: str
) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "w", "--name", "W", *arguments
    )  # fmt: skip
    expect_refusal(result, message)


# -- OIDC logout registration ---------------------------------------------------------------------
def _client_of(config: Path, service_id: str) -> OidcClient:
    service = SqlRegistry(load_settings(config).registry_url).service(service_id)
    assert service is not None and service.oidc is not None
    return service.oidc


def test_oidc_publisher_with_logout_uris_then_updated(populated: Path) -> None:
    result = run(
        "publisher", "add", "--config", populated, "--id", "lexi", "--name", "Lexi",
        "--oidc-redirect-uri", "https://lexi.example/cb",
        "--oidc-post-logout-uri", "https://lexi.example/bye",
        "--oidc-post-logout-uri", "http://127.0.0.1:8080/bye",
        "--oidc-backchannel-logout-uri", "https://lexi.example/bcl",
        "--oidc-backchannel-session-required",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = _client_of(populated, "lexi")
    assert client.post_logout_redirect_uris == (
        "https://lexi.example/bye",
        "http://127.0.0.1:8080/bye",
    )
    assert client.backchannel_logout_uri == "https://lexi.example/bcl"
    assert client.backchannel_logout_session_required

    result = run(
        "publisher", "update", "--config", populated, "--id", "lexi",
        "--oidc-post-logout-uri", "https://lexi.example/tot-ziens",
        "--oidc-backchannel-logout-uri", "", "--oidc-backchannel-session-optional",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    updated = _client_of(populated, "lexi")
    assert updated.post_logout_redirect_uris == ("https://lexi.example/tot-ziens",)
    assert updated.backchannel_logout_uri is None
    assert not updated.backchannel_logout_session_required
    assert updated.redirect_uris == client.redirect_uris  # not given: kept
    assert updated.secret_hash == client.secret_hash

    result = run(
        "publisher", "update", "--config", populated, "--id", "lexi", "--oidc-no-post-logout-uris"
    )
    assert result.exit_code == 0, result.output
    assert _client_of(populated, "lexi").post_logout_redirect_uris == ()


def test_an_oidc_client_in_review_is_updated_too(populated: Path) -> None:
    """docs/cli.md: services awaiting approval can be updated too, a client its publisher
    registered in the portal as well (it was "no OpenID Connect client")."""
    registry = SqlRegistry(load_settings(populated).registry_url)
    client = OidcClient(("https://wacht.example/cb",), ClientAuthMethod.SECRET_BASIC, "0" * 64)
    waiting = Service(
        "wacht", "Wacht", "wacht", None, NamingProfile.OID, (),
        protocol=Protocol.OIDC, oidc=client, approved=False,
    )  # fmt: skip
    registry.add_service(waiting, None)
    result = run(
        "publisher", "update", "--config", populated, "--id", "wacht",
        "--oidc-redirect-uri", "https://nieuw.example/cb",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = registry.any_service("wacht")
    registry.close()
    assert found is not None and found.oidc is not None and not found.approved
    assert found.oidc.redirect_uris == ("https://nieuw.example/cb",)
    assert found.oidc.secret_hash == client.secret_hash


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--oidc-post-logout-uri", "http://lexi.example/bye"), "must be https"),
        (("--oidc-post-logout-uri", "https://lexi.example/bye#x"), "fragment"),
        (("--oidc-backchannel-logout-uri", "https://lexi.example/bcl#x"), "fragment"),
        (("--oidc-backchannel-logout-uri", "ftp://lexi.example/bcl"), "must be https"),
    ],
)
def test_bad_logout_uris_change_nothing(
    unchanged: Path, arguments: tuple[str, ...], message: str
) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "w", "--name", "W",
        "--oidc-redirect-uri", "https://w.example/cb", *arguments,
    )  # fmt: skip
    expect_refusal(result, message)


def test_logout_uris_of_a_saml_publisher_or_an_unknown_client_are_refused(
    unchanged: Path, metadata: Metadata
) -> None:
    result = run(
        "publisher", "add", "--config", unchanged, "--id", "saml2", "--name", "S",
        "--saml-metadata", metadata.sp, "--oidc-backchannel-logout-uri", "https://s.example/b",
    )  # fmt: skip
    expect_refusal(result, "go with --oidc-redirect-uri")
    result = run(
        "publisher", "update", "--config", unchanged, "--id", "uitgever",
        "--oidc-post-logout-uri", "https://x.example/bye",
    )  # fmt: skip
    expect_refusal(result, "Service uitgever is a SAML service: the --oidc-* options change")
