"""The configuration object (broker/config.py): loading, path resolution, refusals, secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.config import SamlSettings, load_settings, parse_pseudonym_keys
from broker.core.errors import ConfigurationError

KEY_1 = "00" * 32
KEY_2 = "11" * 32
SESSION_SECRET = "s" * 40

CONFIG = """\
[broker]
base_url = "{base_url}"
scope = "{scope}"

[keys]
saml_signing_key = "keys/saml-signing.key"
saml_signing_cert = "keys/saml-signing.crt"
pseudonym_keys = "keys/pseudonym-keys.toml"
session_secret = "keys/session-secret"
receipt_key = "keys/receipt-key"

[registry]
url = "{registry_url}"

[store]
url = "memory://"

[saml]
clock_skew_seconds = {clock_skew}

[login]
ttl_seconds = {ttl}

[organization]
name = "Testbroker"
"""

KEY_SET = f'current = 1\n\n[keys]\n"1" = "{KEY_1}"\n'


def write_instance(
    directory: Path,
    *,
    base_url: str = "https://broker.example",
    scope: str = "broker.example",
    registry_url: str = "sqlite:///registry.sqlite3",
    clock_skew: int = 60,
    ttl: int = 900,
    key_set: str = KEY_SET,
    session_secret: str = SESSION_SECRET,
) -> Path:
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "pseudonym-keys.toml").write_text(key_set, encoding="utf-8")
    (keys / "session-secret").write_text(session_secret, encoding="utf-8")
    (keys / "receipt-key").write_text("ab" * 32, encoding="utf-8")
    config = directory / "ketenbroker.toml"
    config.write_text(
        CONFIG.format(
            base_url=base_url,
            scope=scope,
            registry_url=registry_url,
            clock_skew=clock_skew,
            ttl=ttl,
        ),
        encoding="utf-8",
    )
    return config


@pytest.fixture(autouse=True)
def _no_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KETENBROKER_SECRET_KEY",
        "KETENBROKER_PSEUDONYM_KEYS",
        "KETENBROKER_CONFIG",
        "KETENBROKER_PREVIOUS_SECRET_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_valid_file_loads_with_paths_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_instance(tmp_path / "instance", base_url="https://broker.example/")
    monkeypatch.chdir(tmp_path)  # relative paths follow the file, not the working directory
    settings = load_settings(config)
    folder = (tmp_path / "instance").resolve()
    assert settings.base_url == "https://broker.example"
    assert settings.scope == "broker.example"
    assert settings.saml.signing_key == folder / "keys" / "saml-signing.key"
    assert settings.saml.signing_cert == folder / "keys" / "saml-signing.crt"
    assert settings.registry_url == f"sqlite:///{folder / 'registry.sqlite3'}"
    assert settings.store_url == "memory://"
    assert settings.pseudonym_keys.current == bytes.fromhex(KEY_1)
    assert settings.secret_key == SESSION_SECRET.encode()
    assert settings.organization.name == "Testbroker"
    assert settings.source == config.resolve()
    assert settings.idp_entity_id == "https://broker.example/saml/idp/metadata"
    assert settings.url("/x") == "https://broker.example/x"


def test_the_clock_skew_defaults_to_three_minutes(tmp_path: Path) -> None:
    """Shibboleth SP's default, within SAML2Int's three to five minutes: thousands of schools'
    own IdPs at 08:30 are not all within a minute of the broker."""
    config = write_instance(tmp_path)
    text = config.read_text(encoding="utf-8").replace("clock_skew_seconds = 60\n", "")
    config.write_text(text, encoding="utf-8")
    assert load_settings(config).saml.clock_skew_seconds == 180
    assert SamlSettings(Path("k"), Path("c")).clock_skew_seconds == 180


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_instance(tmp_path)
    monkeypatch.setenv("KETENBROKER_CONFIG", str(config))
    assert load_settings().base_url == "https://broker.example"


def test_no_config_at_all() -> None:
    with pytest.raises(ConfigurationError, match="KETENBROKER_CONFIG"):
        load_settings()


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/registry.sqlite3", "sqlite:///:memory:", "postgresql+psycopg://u@db/reg"],
)
def test_other_registry_urls_stay_as_written(tmp_path: Path, url: str) -> None:
    assert load_settings(write_instance(tmp_path, registry_url=url)).registry_url == url


@pytest.mark.parametrize(
    "base_url",
    [
        "https://broker.example/ketenbroker",
        "https://broker.example/a/b",
        "ftp://broker.example",
        "broker.example",
        "https://",
    ],
)
def test_bad_base_url_names_the_key(tmp_path: Path, base_url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"broker\.base_url"):
        load_settings(write_instance(tmp_path, base_url=base_url))


def test_missing_scope_names_the_key(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    config.write_text(config.read_text().replace('scope = "broker.example"\n', ""))
    with pytest.raises(ConfigurationError, match=r"broker\.scope"):
        load_settings(config)


def test_empty_scope_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"broker\.scope"):
        load_settings(write_instance(tmp_path, scope=""))


def test_short_session_secret_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"keys\.session_secret"):
        load_settings(write_instance(tmp_path, session_secret="too-short" + " " * 40))


def test_unreadable_session_secret_names_the_key(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    (tmp_path / "keys" / "session-secret").unlink()
    with pytest.raises(ConfigurationError, match=r"keys\.session_secret"):
        load_settings(config)


@pytest.mark.parametrize(
    ("key_set", "reason"),
    [
        (f'current = 1\n[keys]\n"1" = "{"zz" * 32}"\n', "64 hex"),
        (f'current = 1\n[keys]\n"1" = "{"00" * 31}"\n', "64 hex"),
        (f'current = 1\n[keys]\n"1" = "{"00" * 33}"\n', "64 hex"),
        ('current = 1\n[keys]\n"1" = 7\n', "64 hex"),
        (f'current = 1\n[keys]\n"one" = "{KEY_1}"\n', "64 hex"),
        (f'current = 2\n[keys]\n"1" = "{KEY_1}"\n', "current"),
        (f'current = "1"\n[keys]\n"1" = "{KEY_1}"\n', "current"),
        (f'[keys]\n"1" = "{KEY_1}"\n', "current"),
        (f'current = 1\nprevious = 3\n[keys]\n"1" = "{KEY_1}"\n', "previous"),
        ("current = 1\n", r"\[keys\]"),
        ("current = 1\n[keys]\n", r"\[keys\]"),
        ("current = = 1", "not valid TOML"),
    ],
    ids=[
        "non-hex",
        "short",
        "long",
        "not-a-string",
        "non-numeric-version",
        "current-not-in-keys",
        "current-not-int",
        "no-current",
        "previous-not-in-keys",
        "no-keys-table",
        "empty-keys-table",
        "not-toml",
    ],
)
def test_bad_pseudonym_key_set(tmp_path: Path, key_set: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=r"pseudonym key") as caught:
        load_settings(write_instance(tmp_path, key_set=key_set))
    assert caught.match(reason)
    # The message never quotes key material back.
    assert KEY_1 not in str(caught.value)


def test_missing_pseudonym_key_file_names_the_key(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    (tmp_path / "keys" / "pseudonym-keys.toml").unlink()
    with pytest.raises(ConfigurationError, match=r"keys\.pseudonym_keys"):
        load_settings(config)


def test_key_set_with_previous_version() -> None:
    keys = parse_pseudonym_keys(
        f'current = 2\nprevious = 1\n[keys]\n"1" = "{KEY_1}"\n"2" = "{KEY_2}"\n'
    )
    assert keys.current == bytes.fromhex(KEY_2)
    assert keys.previous_version == 1


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("clock_skew_seconds = 60", "clock_skew_seconds = 9000"), r"saml\.clock_skew_seconds"),
        (("clock_skew_seconds = 60", 'clock_skew_seconds = "60"'), r"saml\.clock_skew_seconds"),
        (("clock_skew_seconds = 60", "clock_skew_seconds = true"), r"saml\.clock_skew_seconds"),
        (("ttl_seconds = 900", "ttl_seconds = 901"), r"login\.ttl_seconds"),
        (('url = "memory://"', 'url = ""'), r"store\.url"),
        (("[registry]\nurl", "[registry]\n# url"), r"registry\.url"),
        (
            ("[store]", "statement_timeout_seconds = 0\n\n[store]"),
            r"registry\.statement_timeout_seconds must be a whole number from 1 to 60",
        ),
        (
            ("[store]", "statement_timeout_seconds = 0.5\n\n[store]"),
            r"registry\.statement_timeout_seconds",
        ),
        (
            ("[store]", "portal_statement_timeout_seconds = 301\n\n[store]"),
            r"registry\.portal_statement_timeout_seconds must be a whole number from 1 to 300",
        ),
        (
            ("[store]", 'portal_statement_timeout_seconds = "30"\n\n[store]'),
            r"registry\.portal_statement_timeout_seconds",
        ),
    ],
)
def test_other_bad_values_name_the_key(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    config = write_instance(tmp_path)
    text = config.read_text()
    assert edit[0] in text
    config.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ConfigurationError, match=key):
        load_settings(config)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    text = re.sub(r"\[saml\]\n[^\[]*", "", config.read_text())
    config.write_text("saml = 3\n" + text)
    with pytest.raises(ConfigurationError, match=r"\[saml\] must be a table"):
        load_settings(config)


def test_invalid_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "ketenbroker.toml"
    config.write_text("[broker\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(config)


def test_environment_secrets_win_over_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_instance(tmp_path)
    from_env = "e" * 48
    monkeypatch.setenv("KETENBROKER_SECRET_KEY", from_env)
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", f'current = 2\n[keys]\n"2" = "{KEY_2}"\n')
    settings = load_settings(config)
    assert settings.secret_key == from_env.encode()
    assert settings.pseudonym_keys.current_version == 2
    assert settings.pseudonym_keys.current == bytes.fromhex(KEY_2)


def test_environment_secrets_need_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_instance(tmp_path)
    (tmp_path / "keys" / "session-secret").unlink()
    (tmp_path / "keys" / "pseudonym-keys.toml").unlink()
    monkeypatch.setenv("KETENBROKER_SECRET_KEY", "e" * 48)
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", KEY_SET)
    assert load_settings(config).pseudonym_keys.current == bytes.fromhex(KEY_1)


def test_bad_environment_key_set_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_instance(tmp_path)
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", 'current = 1\n[keys]\n"1" = "abc"\n')
    with pytest.raises(ConfigurationError, match="pseudonym key"):
        load_settings(config)


def _with_previous(config: Path, previous: str) -> Path:
    (config.parent / "keys" / "previous-session-secret").write_text(previous, encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            'session_secret = "keys/session-secret"\n',
            'session_secret = "keys/session-secret"\n'
            'previous_session_secret = "keys/previous-session-secret"\n',
        ),
        encoding="utf-8",
    )
    return config


def test_the_previous_session_secret_is_optional_and_opens_what_it_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.core.sealed_secrets import SecretBinding

    config = write_instance(tmp_path)
    assert load_settings(config).previous_secret_key is None
    binding = SecretBinding.school_client_secret("12AB00")
    sealed = load_settings(config).secret_seal().seal("client secret", binding)
    # Rotated: the old secret becomes the previous one, and still opens what it sealed.
    (tmp_path / "keys" / "session-secret").write_text("n" * 40, encoding="utf-8")
    settings = load_settings(_with_previous(config, SESSION_SECRET + "\n"))
    assert settings.secret_key == b"n" * 40
    assert settings.previous_secret_key == SESSION_SECRET.encode()
    assert settings.secret_seal().open(sealed, binding) == "client secret"
    assert SESSION_SECRET not in repr(settings)
    monkeypatch.setenv("KETENBROKER_PREVIOUS_SECRET_KEY", "p" * 40)
    assert load_settings(config).previous_secret_key == b"p" * 40


@pytest.mark.parametrize(
    ("previous", "reason"),
    [("short", "at least 32 characters"), ("n" * 40, "the same as keys.session_secret")],
)
def test_a_previous_session_secret_that_cannot_be_one_is_refused(
    tmp_path: Path, previous: str, reason: str
) -> None:
    config = _with_previous(write_instance(tmp_path, session_secret="n" * 40), previous)
    with pytest.raises(ConfigurationError, match=rf"keys\.previous_session_secret.*{reason}"):
        load_settings(config)


def test_repr_carries_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_instance(
        tmp_path,
        key_set=f'current = 2\nprevious = 1\n[keys]\n"1" = "{KEY_1}"\n"2" = "{"ab" * 32}"\n',
    )
    settings = load_settings(config)
    for shown in (repr(settings), str(settings), repr(settings.pseudonym_keys)):
        assert SESSION_SECRET not in shown
        assert "ab" * 32 not in shown
        assert KEY_1 not in shown
        assert repr(settings.secret_key) not in shown
        assert repr(settings.pseudonym_keys.current) not in shown


def test_without_oidc_keys_there_is_no_provider_and_default_assurance(tmp_path: Path) -> None:
    settings = load_settings(write_instance(tmp_path))
    assert settings.oidc is None
    assert [level.name for level in settings.assurance.levels] == ["password", "mfa"]


def test_oidc_and_assurance_sections(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    text = config.read_text().replace(
        'session_secret = "keys/session-secret"\n',
        'session_secret = "keys/session-secret"\noidc_signing_key = "keys/oidc.pem"\n',
    )
    text += (
        "\n[oidc]\ncode_lifetime_seconds = 30\n"
        '\n[[assurance.levels]]\nname = "strong"\nsaml = ["urn:a"]\noidc = ["urn:b", "urn:c"]\n'
    )
    config.write_text(text)
    settings = load_settings(config)
    assert settings.oidc is not None
    assert settings.oidc.rsa_key == tmp_path / "keys" / "oidc.pem"
    assert settings.oidc.code_lifetime_seconds == 30
    assert settings.oidc.ec_key is None
    assert settings.assurance.level_of("urn:c") == "strong"
    assert settings.issuer == "https://broker.example"


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ("[assurance]\nlevels = 3\n", "non-empty list"),
        ('[[assurance.levels]]\nsaml = ["urn:a"]\n', r"assurance\.levels\[0\]\.name"),
        ('[[assurance.levels]]\nname = "a"\nsaml = "urn:a"\n', r"assurance\.levels\[0\]\.saml"),
        (
            '[[assurance.levels]]\nname = "a"\n[[assurance.levels]]\nname = "a"\n',
            "a name of its own",
        ),
        (
            # Strongest first: every `minimum` and `better` would be judged the wrong way round.
            '[[assurance.levels]]\nname = "mfa"\nsaml = ["https://refeds.org/profile/mfa"]\n'
            '[[assurance.levels]]\nname = "password"\noidc = ["https://refeds.org/profile/sfa"]\n',
            r"weakest first: 'password' \(a password level\) is listed after the stronger 'mfa'",
        ),
    ],
)
def test_bad_assurance_levels_name_the_key(tmp_path: Path, levels: str, message: str) -> None:
    config = write_instance(tmp_path)
    config.write_text(config.read_text() + "\n" + levels)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(config)


def test_levels_of_unknown_strength_are_the_deployments_to_order(tmp_path: Path) -> None:
    """Only references of known strength are judged: a level of the deployment's own may
    stand anywhere, and the password and MFA levels weakest first pass."""
    config = write_instance(tmp_path)
    config.write_text(
        config.read_text()
        + '\n[[assurance.levels]]\nname = "own"\nsaml = ["urn:own:strong"]\n'
        + '[[assurance.levels]]\nname = "password"\nsaml = ["https://refeds.org/profile/sfa"]\n'
        + '[[assurance.levels]]\nname = "mfa"\nsaml = ["https://refeds.org/profile/mfa"]\n'
    )
    settings = load_settings(config)
    assert [level.name for level in settings.assurance.levels] == ["own", "password", "mfa"]


def test_oidc_lifetime_out_of_range(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    text = config.read_text().replace(
        'session_secret = "keys/session-secret"\n',
        'session_secret = "keys/session-secret"\noidc_signing_key = "keys/oidc.pem"\n',
    )
    config.write_text(text + "\n[oidc]\ncode_lifetime_seconds = 3600\n")
    with pytest.raises(ConfigurationError, match=r"oidc\.code_lifetime_seconds"):
        load_settings(config)
