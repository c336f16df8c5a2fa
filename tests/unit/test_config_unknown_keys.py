"""One rule for the whole configuration file: a table or key the loader does not read stops the
start, naming it and its table and, when a known key is close, suggesting that one. A typo was
ignored before: `[[metadata.source]]` meant "no sources" (and a full refresh dropped every
source's copy), `registration_authority` switched the interfederation rule off without a word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.config import KNOWN_KEYS, load_settings
from broker.core.errors import ConfigurationError
from tests.unit.test_config import write_instance

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SOURCE = 'name = "federation"\nfile = "feed.xml"\nsigning_certs = ["signer.crt"]\n'


@pytest.fixture(autouse=True)
def _no_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KETENBROKER_SECRET_KEY", "KETENBROKER_PSEUDONYM_KEYS", "KETENBROKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _refused(tmp_path: Path, edit: tuple[str, str], extra: str) -> str:
    config = write_instance(tmp_path)
    text = config.read_text(encoding="utf-8")
    assert edit[0] in text
    config.write_text(text.replace(*edit) + "\n" + extra, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config)
    return str(caught.value)


@pytest.mark.parametrize(
    ("edit", "extra", "said"),
    [
        (
            ("", ""),
            f"[[metadata.source]]\n{SOURCE}",
            "unknown table [[metadata.source]] (did you mean [[metadata.sources]]?)",
        ),
        (
            ("", ""),
            f'[[metadata.sources]]\n{SOURCE}registration_authority = ["https://fed.example/"]\n',
            "unknown key metadata.sources[0].registration_authority "
            "(did you mean registration_authorities?)",
        ),
        (
            ("", ""),
            f"[[metadata.sources]]\n{SOURCE}refresh_second = 60\n",
            "unknown key metadata.sources[0].refresh_second (did you mean refresh_seconds?)",
        ),
        (
            ("clock_skew_seconds = 60", "clock_skew = 1800"),
            "",
            "unknown key saml.clock_skew (did you mean clock_skew_seconds?)",
        ),
        (("[saml]\n", "[sam1]\n"), "", "unknown table [sam1] (did you mean [saml]?)"),
        (("", ""), "[rate_limits]\nssso = '1/second'\n", "unknown key rate_limits.ssso"),
        (
            ("", ""),
            "[keys.rotation]\npublish_weeks = 1\n",
            "unknown key keys.rotation.publish_weeks",
        ),
        (("", ""), "[gunicorn]\nworkers = 4\n", "unknown table [gunicorn]"),
    ],
)
def test_an_unknown_key_or_table_stops_the_start_naming_it(
    tmp_path: Path, edit: tuple[str, str], extra: str, said: str
) -> None:
    message = _refused(tmp_path, edit, extra)
    assert said in message
    assert "docs/configuration.md" in message


def test_a_key_above_every_table_says_where_it_belongs(tmp_path: Path) -> None:
    config = write_instance(tmp_path)
    config.write_text("proxy_hops = 1\n" + config.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"proxy_hops before the first \[table\]"):
        load_settings(config)


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    """An operator fixes the file once, not once per start."""
    message = _refused(tmp_path, ("[saml]\n", "[sam1]\n"), "[oidc]\ncode_lifetime = 60\n")
    assert "[sam1]" in message
    assert "oidc.code_lifetime (did you mean code_lifetime_seconds?)" in message


def test_every_known_key_is_documented() -> None:
    """The table of known keys and docs/configuration.md name the same keys."""
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))

    def keys(table: object) -> set[str]:
        found: set[str] = set()
        if isinstance(table, dict):
            for key, inner in table.items():
                found |= keys(inner) if inner is not None else {key}
        return found

    assert keys(KNOWN_KEYS) <= documented
