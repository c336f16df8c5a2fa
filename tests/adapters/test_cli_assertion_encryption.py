"""The operator's switch for encrypted assertions from the command line (revision 0019):
`publisher update --assertion-encryption auto|off`, the `assertions` column of `publisher list`
(what each service's logins send it, what an operator runs before rolling workers), metadata
updates of a service set to `off`, and the setting in the registry file. The logins themselves
are in tests/flows/test_encrypted_to_publishers.py."""

from __future__ import annotations

import json
import logging
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import AssertionEncryption, Service
from tests.adapters.test_cli_hosted_domain import dump
from tests.support.cli import registry_of, run
from tests.unit.test_publisher_encryption import AES256_CBC, MD, key_descriptor, rsa_certificate

GCM = "https://gcm.example/sp"
PLAIN = "https://plain.example/sp"
CBC = "https://cbc.example/sp"
CBC_REASON = (
    f"REFUSED: the metadata of {CBC} lists only data encryption algorithms the broker does not "
    f"use ({AES256_CBC}): list http://www.w3.org/2009/xmlenc11#aes256-gcm, or remove the "
    "encryption key to receive signed assertions unencrypted"
)


def sp_metadata(entity_id: str, *keys: str) -> str:
    host = entity_id.split("/")[2]
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
        f'entityID="{entity_id}"><md:SPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        + key_descriptor("signing", rsa_certificate(2048))
        + "".join(keys)
        + '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'Location="https://{host}/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
    )


# A key without `use` (SimpleSAMLphp's, Shibboleth's): for encryption too.
GCM_XML = sp_metadata(GCM, key_descriptor(None, rsa_certificate(2048)))
PLAIN_XML = sp_metadata(PLAIN)
CBC_XML = sp_metadata(CBC, key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,)))


def fresh_config(folder: Path) -> Path:
    assert run("init", folder).exit_code == 0
    path = folder / "ketenbroker.toml"
    assert run("migrate", "--config", path).exit_code == 0
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A registry with a service whose metadata publishes an encryption key, one without, one
    that lists only CBC (in the registry directly, as a registration from before the check or
    a federation's copy is) and an OpenID Connect client."""
    path = fresh_config(tmp_path / "broker")
    for service_id, xml in (("gcm-sp", GCM_XML), ("plain-sp", PLAIN_XML)):
        source = tmp_path / f"{service_id}.xml"
        source.write_text(xml, encoding="utf-8")
        added = run(
            "publisher", "add", "--config", path, "--id", service_id, "--name", service_id,
            "--saml-metadata", source,
        )  # fmt: skip
        assert added.exit_code == 0, added.output
    with closing(registry_of(path)) as registry:
        registry.add_service(Service("cbc-sp", "CBC", CBC, None), CBC_XML)
    oidc = run(
        "publisher", "add", "--config", path, "--id", "oidc-sp", "--name", "OIDC",
        "--oidc-redirect-uri", "https://oidc.example/callback",
    )  # fmt: skip
    assert oidc.exit_code == 0, oidc.output
    return path


def assertions_column(config: Path) -> dict[str, str | None]:
    listed = run("publisher", "list", "--config", config, "--json")
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    return {line["id"]: line["assertions"] for line in lines}


def update(config: Path, service_id: str, *options: str | Path) -> tuple[int, str]:
    result = run("publisher", "update", "--config", config, "--id", service_id, *options)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def setting_of(config: Path, service_id: str) -> AssertionEncryption:
    with closing(registry_of(config)) as registry:
        found = registry.any_service(service_id)
    assert found is not None
    return found.assertion_encryption


def test_publisher_list_says_what_each_service_receives(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        column = assertions_column(config)
    # A listing logs nothing: "assertions encrypted for service=…" is what logins do.
    assert not [r for r in caplog.records if r.name.startswith("broker.saml")]
    assert column == {
        "cbc-sp": CBC_REASON,
        "gcm-sp": "encrypted (aes256-gcm, RSA 2048)",
        "oidc-sp": None,  # "-" in the table
        "plain-sp": "signed",
    }
    table = run("publisher", "list", "--config", config).output.splitlines()
    assert "ASSERTIONS" in table[0]
    row = {line.split()[0]: line for line in table[1:]}
    assert row["gcm-sp"].endswith("encrypted (aes256-gcm, RSA 2048)")
    assert row["plain-sp"].endswith("  signed")
    assert row["oidc-sp"].endswith("  -")
    assert row["cbc-sp"].endswith(CBC_REASON)


def test_switching_a_service_off_and_back(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="broker.registry.sql_registry"):
        code, output = update(config, "gcm-sp", "--assertion-encryption", "off")
    assert code == 0, output
    assert output == (
        "Service gcm-sp: assertion encryption off; assertions: signed (encryption off).\n"
    )
    assert setting_of(config, "gcm-sp") is AssertionEncryption.OFF
    assert assertions_column(config)["gcm-sp"] == "signed (encryption off)"
    lines = [r.getMessage() for r in caplog.records if "assertion encryption" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(
        "assertion encryption service=gcm-sp from=auto to=off by=cli:"
    )
    # The same again changes nothing and says so.
    code, output = update(config, "gcm-sp", "--assertion-encryption", "off")
    assert code == 0 and "is off already; nothing changed" in output
    code, output = update(config, "gcm-sp", "--assertion-encryption", "auto")
    assert code == 0, output
    assert output == (
        "Service gcm-sp: assertion encryption auto; assertions: encrypted (aes256-gcm, RSA 2048).\n"
    )
    assert assertions_column(config)["gcm-sp"] == "encrypted (aes256-gcm, RSA 2048)"


def test_a_cbc_only_service_set_off_is_served_and_not_set_back_to_auto(config: Path) -> None:
    code, output = update(config, "cbc-sp", "--assertion-encryption", "off")
    assert code == 0 and "assertions: signed (encryption off)" in output
    before = dump(config)
    # Back to auto would refuse every login of it: refused, nothing changed.
    code, output = update(config, "cbc-sp", "--assertion-encryption", "auto")
    assert code == 1
    assert "assertion encryption stays off: with auto its logins would be REFUSED" in output
    assert "lists only data encryption algorithms" in output and "nothing changed" in output
    assert dump(config) == before


def test_what_the_switch_refuses(config: Path) -> None:
    before = dump(config)
    code, output = update(config, "oidc-sp", "--assertion-encryption", "off")
    assert code == 1 and "is an OpenID Connect client, not SAML" in output
    code, output = update(config, "nobody", "--assertion-encryption", "off")
    assert code == 1 and "no service with id 'nobody'" in output
    code, output = update(
        config, "gcm-sp", "--assertion-encryption", "off", "--saml-metadata", "x.xml"
    )
    assert code == 2 and "--assertion-encryption goes alone" in output
    code, output = update(config, "gcm-sp", "--assertion-encryption", "sometimes")
    assert code == 2 and "'sometimes' is not one of 'auto', 'off'" in output
    assert dump(config) == before


def test_metadata_of_a_service_set_off_is_not_refused_for_its_encryption_key(
    config: Path, tmp_path: Path
) -> None:
    # plain-sp's next metadata lists only CBC for a new encryption key.
    cbc_next = tmp_path / "plain-next.xml"
    cbc_next.write_text(
        sp_metadata(PLAIN, key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,))),
        encoding="utf-8",
    )
    before = dump(config)
    code, output = update(config, "plain-sp", "--saml-metadata", cbc_next)
    assert code == 1 and "lists only data encryption algorithms" in output
    assert dump(config) == before
    assert update(config, "plain-sp", "--assertion-encryption", "off")[0] == 0
    code, output = update(config, "plain-sp", "--saml-metadata", cbc_next)
    assert code == 0, output
    assert f"metadata of {PLAIN} updated" in output
    assert assertions_column(config)["plain-sp"] == "signed (encryption off)"


def test_the_setting_travels_with_an_export(config: Path, tmp_path: Path) -> None:
    assert update(config, "gcm-sp", "--assertion-encryption", "off")[0] == 0
    assert update(config, "cbc-sp", "--assertion-encryption", "off")[0] == 0
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text()
    # Written for the services set off only: an `auto` service's entry is as before 0019.
    assert text.count('assertion_encryption = "off"') == 2
    assert "auto" not in text
    # Into a fresh instance: the same settings (the CBC-only service set off imports), and
    # the same file out again.
    fresh = fresh_config(tmp_path / "fresh")
    imported = run("registry", "import", "--config", fresh, exported)
    assert imported.exit_code == 0, imported.output
    assert assertions_column(fresh) == assertions_column(config)
    assert setting_of(fresh, "gcm-sp") is AssertionEncryption.OFF
    assert setting_of(fresh, "plain-sp") is AssertionEncryption.AUTO
    again = tmp_path / "again.toml"
    assert run("registry", "export", "--config", fresh, again).exit_code == 0
    assert again.read_text() == text
    # Into the registry it came from: nothing changes.
    same = run("registry", "import", "--config", config, exported)
    assert same.exit_code == 0 and "services: 0 added, 0 changed, 4 unchanged" in same.output
    # A file without the line (from before 0019, or written by hand) keeps the operator's
    # `off`, as it keeps an IdP's school-naming rule: nothing changes, and the import says so.
    before = dump(fresh)
    kept = run("registry", "import", "--config", fresh, without_setting(text, "gcm-sp", tmp_path))
    assert kept.exit_code == 0, kept.output
    assert "services: 0 added, 0 changed, 4 unchanged" in kept.output
    assert setting_of(fresh, "gcm-sp") is AssertionEncryption.OFF
    assert dump(fresh) == before
    # Back to auto by the file: the line saying so; changed on import.
    changed = run("registry", "import", "--config", fresh, with_auto(text, "gcm-sp", tmp_path))
    assert changed.exit_code == 0 and "changed  service gcm-sp" in changed.output
    assert setting_of(fresh, "gcm-sp") is AssertionEncryption.AUTO
    # ...but not for the CBC-only service: refused as at registration, nothing changed.
    before = dump(fresh)
    refused = run("registry", "import", "--config", fresh, with_auto(text, "cbc-sp", tmp_path))
    assert refused.exit_code == 1
    assert "lists only data encryption algorithms" in refused.output
    assert dump(fresh) == before
    # A new service without the line: auto (the CBC-only one is refused for it).
    newer = fresh_config(tmp_path / "newer")
    refused = run(
        "registry", "import", "--config", newer, without_setting(text, "cbc-sp", tmp_path)
    )
    assert refused.exit_code == 1 and "lists only data encryption algorithms" in refused.output


def with_auto(text: str, service_id: str, folder: Path) -> Path:
    """The exported file with `service_id` set to auto."""
    path = without_setting(text, service_id, folder)
    written = path.read_text(encoding="utf-8").replace(
        f'id = "{service_id}"\n', f'id = "{service_id}"\nassertion_encryption = "auto"\n'
    )
    path.write_text(written, encoding="utf-8")
    return path


def without_setting(text: str, service_id: str, folder: Path) -> Path:
    """The exported file with `service_id`'s assertion_encryption line left out."""
    blocks = text.split("\n[[services]]\n")
    for index, block in enumerate(blocks):
        if block.startswith(f'id = "{service_id}"\n'):
            blocks[index] = block.replace('assertion_encryption = "off"\n', "")
    path = folder / f"without-{service_id}.toml"
    path.write_text("\n[[services]]\n".join(blocks), encoding="utf-8")
    return path


def test_the_file_checks_the_setting(config: Path, tmp_path: Path) -> None:
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        text.replace('id = "gcm-sp"\n', 'id = "gcm-sp"\nassertion_encryption = "never"\n').replace(
            'id = "oidc-sp"\n', 'id = "oidc-sp"\nassertion_encryption = "off"\n'
        ),
        encoding="utf-8",
    )
    before = dump(config)
    refused = run("registry", "import", "--config", config, wrong)
    assert refused.exit_code == 1
    assert "gcm-sp: assertion_encryption: must be auto or off" in refused.output
    assert "oidc-sp: assertion_encryption: only a SAML service has assertions" in refused.output
    assert dump(config) == before


# Registered by entity id: its metadata is a metadata source's copy, listing only CBC.
BRON = "https://bron.example/sp"
BRON_XML = sp_metadata(BRON, key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,)))
BRON_REASON = CBC_REASON.replace(CBC, BRON)


def test_the_file_s_auto_for_a_source_service_is_checked_against_the_source_s_copy(
    config: Path, tmp_path: Path
) -> None:
    """`registry import` with `assertion_encryption = "auto"` for a service registered by
    entity id: refused, as `publisher update --assertion-encryption auto` is, while the metadata
    source's copy publishes a key the broker cannot encrypt for; nothing imported."""
    with closing(registry_of(config)) as registry:
        registry.federation.store(
            "feed",
            "one",
            FeedDates(None, None),
            [FederationEntity(BRON, "sp", BRON_XML, None)],
            datetime.now(UTC),
        )
        registry.add_service(Service("bron-sp", "Bron", BRON, None), None)
        assert registry.set_assertion_encryption("bron-sp", AssertionEncryption.OFF)
    assert update(config, "bron-sp", "--assertion-encryption", "auto") == (
        1,
        "Error: Service bron-sp: assertion encryption stays off: with auto its logins would be "
        f"{BRON_REASON}; nothing changed\n",
    )
    path = tmp_path / "bron.toml"
    path.write_text(
        'format = 1\n\n[[services]]\nid = "bron-sp"\nname = "Bron"\n'
        f'saml_entity_id = "{BRON}"\nassertion_encryption = "auto"\n',
        encoding="utf-8",
    )
    before = dump(config)
    for dry_run in ((), ("--dry-run",)):
        refused = run("registry", "import", "--config", config, path, *dry_run)
        assert refused.exit_code == 1, refused.output
        assert refused.output.endswith(
            "Error: service bron-sp: assertion_encryption cannot be auto: its logins would be "
            f"{BRON_REASON}; nothing was imported\n"
        ), refused.output
        assert dump(config) == before
    assert setting_of(config, "bron-sp") is AssertionEncryption.OFF
    # Said `off` (or not at all), the same file imports.
    path.write_text(path.read_text().replace('"auto"', '"off"'), encoding="utf-8")
    imported = run("registry", "import", "--config", config, path)
    assert imported.exit_code == 0, imported.output
