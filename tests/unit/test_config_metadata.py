"""`[metadata]` and `[[metadata.sources]]` in the configuration: defaults, paths, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import Settings, load_settings
from broker.core.errors import ConfigurationError
from tests.unit.test_config import write_instance


@pytest.fixture(autouse=True)
def _no_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KETENBROKER_SECRET_KEY", "KETENBROKER_PSEUDONYM_KEYS", "KETENBROKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def load_with(tmp_path: Path, extra: str) -> Settings:
    config = write_instance(tmp_path)
    with config.open("a", encoding="utf-8") as handle:
        handle.write("\n" + extra)
    return load_settings(config)


def refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_with(tmp_path, extra)
    assert message in str(caught.value)


def test_defaults_without_the_section(tmp_path: Path) -> None:
    settings = load_settings(write_instance(tmp_path))
    assert settings.metadata.sources == ()
    assert settings.metadata.valid_days == 7
    assert settings.metadata.cache_duration_seconds == 21600


def test_sources_load_with_paths_resolved(tmp_path: Path) -> None:
    settings = load_with(
        tmp_path,
        """
[metadata]
valid_days = 14

[[metadata.sources]]
name = "federation"
url = "https://md.federation.example/aggregate.xml"
signing_certs = ["keys/fed.crt", "keys/fed-2027.crt"]
refresh_seconds = 900
max_validity_days = 10

[[metadata.sources]]
name = "one_school"
file = "metadata/school.xml"
require_signature = false
roles = ["idp"]
""",
    )
    fed, school = settings.metadata.sources
    assert settings.metadata.valid_days == 14
    assert fed.url == "https://md.federation.example/aggregate.xml" and fed.file is None
    assert fed.signing_certs == (tmp_path / "keys/fed.crt", tmp_path / "keys/fed-2027.crt")
    assert fed.refresh_seconds == 900 and fed.roles == ("idp", "sp")
    assert fed.max_validity_days == 10 and school.max_validity_days == 28  # the default
    assert school.file == tmp_path / "metadata/school.xml"
    assert not school.require_signature and school.roles == ("idp",)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('url = "https://a.example/md"', "signing_certs: name the signer's certificate"),
        (
            'url = "https://a.example/md"\nrequire_signature = false',
            "a url source must be signed",
        ),
        (
            'url = "https://a.example/md"\nsigning_certs = ["a", "b", "c"]',
            "at most two (old and new signer)",
        ),
        ('signing_certs = ["a"]', "give either url or file"),
        ('url = "x"\nfile = "y"\nsigning_certs = ["a"]', "give either url or file"),
        ('url = "ftp://a.example/md"\nsigning_certs = ["a"]', "must be an http(s) URL"),
        ('file = "f"\nsigning_certs = ["a"]\nroles = ["op"]', "roles must list 'idp' and/or 'sp'"),
        ('file = "f"\nsigning_certs = ["a"]\nrefresh_seconds = 5', "refresh_seconds must be"),
        ('file = "f"\nsigning_certs = ["a"]\nrequire_valid_until = "yes"', "true or false"),
        (
            'file = "f"\nsigning_certs = ["a"]\nmax_validity_days = 0',
            "metadata.sources[0].max_validity_days must be a whole number from 1 to 365",
        ),
        ('file = "f"\nsigning_certs = ["a"]\nmax_validity_days = "14d"', "max_validity_days"),
    ],
)
def test_bad_sources_name_the_key(tmp_path: Path, source: str, message: str) -> None:
    refused(tmp_path, f'[[metadata.sources]]\nname = "fed"\n{source}\n', message)


def test_names_are_unique_and_plain(tmp_path: Path) -> None:
    one = '[[metadata.sources]]\nname = "fed"\nfile = "f"\nsigning_certs = ["a"]\n'
    refused(tmp_path, one + one, "every source needs a name of its own")
    refused(tmp_path, one.replace('"fed"', '"fed/../x"'), "letters, digits")


def test_valid_days_range(tmp_path: Path) -> None:
    refused(tmp_path, "[metadata]\nvalid_days = 0\n", "metadata.valid_days must be")


SOURCE = '[[metadata.sources]]\nname = "fed"\nfile = "f"\nsigning_certs = ["a"]\n'


def test_registration_authorities_load_in_order(tmp_path: Path) -> None:
    listed = 'registration_authorities = ["http://www.surfconext.nl/", "urn:mace:example:fed"]\n'
    (source,) = load_with(tmp_path, SOURCE + listed).metadata.sources
    assert source.registration_authorities == ("http://www.surfconext.nl/", "urn:mace:example:fed")
    (plain,) = load_with(tmp_path, SOURCE).metadata.sources
    assert plain.registration_authorities == ()  # no list: every entity, as before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"https://a.example/"', "registration_authorities must be a list of URIs"),
        ("[1]", "registration_authorities must be a list of URIs"),
        ('["www.surfconext.nl"]', "'www.surfconext.nl' is not an absolute URI"),
        ('["https:///path"]', "'https:///path' is not an absolute URI"),
        ('[""]', "'' is not an absolute URI"),
        ('[" https://a.example/"]', "is not an absolute URI"),
        ('["https://a.example/ b"]', "is not an absolute URI"),
        ('["http://[::1/"]', "'http://[::1/' is not an absolute URI"),  # urlsplit raises
        (f'["https://{"a" * 1100}.example/"]', "is not an absolute URI"),
        ('["https://a.example/", "https://a.example/"]', "an authority is listed twice"),
        (
            "[" + ", ".join(f'"urn:fed:{i}"' for i in range(21)) + "]",
            "metadata.sources[0].registration_authorities: at most 20 authorities",
        ),
    ],
)
def test_bad_registration_authorities_name_the_key(
    tmp_path: Path, value: str, message: str
) -> None:
    refused(tmp_path, SOURCE + f"registration_authorities = {value}\n", message)
