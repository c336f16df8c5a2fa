"""The broker's own metadata shows it to federation registries: mdui:UIInfo in both roles (from
`[organization]`), ContactPerson where configured; still signed, and read by pysaml2."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlsec
from lxml import etree

from broker.cli.instance import init_instance
from broker.config import Settings, load_settings
from broker.core.errors import ConfigurationError
from broker.saml.entities import idp_config, signed_metadata, sp_config
from broker.saml.xmlsig import enable_inprocess_crypto

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysaml2 touches a deprecated cryptography mode at import
    from saml2.config import Config
    from saml2.mdstore import InMemoryMetaData

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MDUI = "urn:oasis:names:tc:SAML:metadata:ui"
DS = "http://www.w3.org/2000/09/xmldsig#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
UI = """
display_name_nl = "Ketenbroker van Voorbeeld"
display_name_en = "Example Chain Broker"
information_url = "https://www.example.org/ketenbroker"
privacy_statement_url = "https://www.example.org/privacy"
logo_url = "https://www.example.org/logo.png"
logo_width = 80
logo_height = 60
support_email = "helpdesk@example.org"
"""
TECHNICAL = 'contact_email = "ict@example.org"\n'
ROLES: dict[str, tuple[Callable[[Settings, list[str]], Config], str]] = {
    "idp": (idp_config, "IDPSSODescriptor"),
    "sp": (sp_config, "SPSSODescriptor"),
}


def _instance(directory: Path, organization: str = "") -> Path:
    """A fresh instance with `organization` lines added to its [organization] (which has an
    empty contact_email: a line giving one replaces it)."""
    config = init_instance(directory / "kb", "https://kb.example", "kb", "KB Broker")
    text = config.read_text(encoding="utf-8")
    if "contact_email" in organization:
        text = text.replace('contact_email = ""\n', "")
    config.write_text(text.replace("[organization]\n", f"[organization]\n{organization}"))
    return config


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    enable_inprocess_crypto()
    return load_settings(_instance(tmp_path_factory.mktemp("ui"), UI + TECHNICAL))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    enable_inprocess_crypto()
    return load_settings(_instance(tmp_path_factory.mktemp("plain")))


def _metadata(settings: Settings, which: str) -> bytes:
    make, _ = ROLES[which]
    return signed_metadata(make(settings, []), settings).encode()


def _verified(xml: bytes, settings: Settings) -> etree._Element:
    doc = etree.fromstring(xml)
    xmlsec.tree.add_ids(doc, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(
        str(settings.saml.signing_cert), xmlsec.constants.KeyDataFormatCertPem
    )
    signature = doc.find(f"{{{DS}}}Signature")
    assert signature is not None
    context.verify(signature)
    return doc


def _pysaml2_ui(xml: bytes, settings: Settings) -> Any:
    """The UIInfo as pysaml2 parses the metadata (as a peer on pysaml2 reads it)."""
    parsed = InMemoryMetaData(None, xml.decode())
    parsed.load()
    (entity,) = parsed.entity.values()
    (role_name,) = [k for k in entity if k.endswith("sso_descriptor")]
    (role,) = entity[role_name]
    (ui,) = [
        e for e in role["extensions"]["extension_elements"] if e["__class__"].endswith("UIInfo")
    ]
    return ui


@pytest.mark.parametrize("which", ["idp", "sp"])
def test_the_configured_ui_info_is_in_both_roles_signed(configured: Settings, which: str) -> None:
    xml = _metadata(configured, which)
    doc = _verified(xml, configured)
    _, role = ROLES[which]
    (ui,) = doc.findall(f"{{{MD}}}{role}/{{{MD}}}Extensions/{{{MDUI}}}UIInfo")
    names = {e.get(XML_LANG): e.text for e in ui.iterfind(f"{{{MDUI}}}DisplayName")}
    assert names == {"nl": "Ketenbroker van Voorbeeld", "en": "Example Chain Broker"}
    for local, url in (
        ("InformationURL", "https://www.example.org/ketenbroker"),
        ("PrivacyStatementURL", "https://www.example.org/privacy"),
    ):
        assert {(e.get(XML_LANG), e.text) for e in ui.iterfind(f"{{{MDUI}}}{local}")} == {
            ("nl", url),
            ("en", url),
        }
    (logo,) = ui.iterfind(f"{{{MDUI}}}Logo")
    assert (logo.text, logo.get("width"), logo.get("height")) == (
        "https://www.example.org/logo.png",
        "80",
        "60",
    )
    contacts = {
        c.get("contactType"): c.findtext(f"{{{MD}}}EmailAddress")
        for c in doc.iterfind(f"{{{MD}}}ContactPerson")
    }
    assert contacts == {
        "technical": "mailto:ict@example.org",
        "support": "mailto:helpdesk@example.org",
    }
    ui_read = _pysaml2_ui(xml, configured)
    assert {(d["lang"], d["text"]) for d in ui_read["display_name"]} == {
        ("nl", "Ketenbroker van Voorbeeld"),
        ("en", "Example Chain Broker"),
    }
    # Control: a changed display name no longer verifies.
    with pytest.raises(xmlsec.Error):
        _verified(xml.replace(b"Example Chain Broker", b"Evil Broker"), configured)


@pytest.mark.parametrize("which", ["idp", "sp"])
def test_without_ui_keys_the_display_names_are_the_organization_name(
    plain: Settings, which: str
) -> None:
    doc = _verified(_metadata(plain, which), plain)
    _, role = ROLES[which]
    (ui,) = doc.findall(f"{{{MD}}}{role}/{{{MD}}}Extensions/{{{MDUI}}}UIInfo")
    assert [(e.tag.split("}")[1], e.get(XML_LANG), e.text) for e in ui] == [
        ("DisplayName", "nl", "KB Broker"),
        ("DisplayName", "en", "KB Broker"),
    ]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ('information_url = "http://www.example.org/"', r"organization\.information_url"),
        ('privacy_statement_url = "javascript:alert(1)"', r"organization\.privacy_statement_url"),
        ('information_url = "https://exa mple.org/"', r"organization\.information_url"),
        ('information_url = "https://[::1/"', r"organization\.information_url"),
        ("information_url = 7", r"organization\.information_url"),
        ('logo_url = "https://www.example.org/l.png"', r"organization\.logo_width"),
        ('logo_url = "https://e.org/l.png"\nlogo_width = 0\nlogo_height = 5', "logo_width"),
        ('logo_url = "https://e.org/l.png"\nlogo_width = 5\nlogo_height = 5000', "logo_height"),
        ("logo_width = 80\nlogo_height = 60", "need logo_url"),
        (f'display_name_en = "{"x" * 121}"', r"organization\.display_name_en"),
        ('display_name_nl = " Ketenbroker"', r"organization\.display_name_nl"),
        ('display_nam_nl = "Ketenbroker"', "display_nam_nl"),
    ],
    ids=[
        "http",
        "javascript",
        "space",
        "bracket",
        "not-text",
        "logo-without-size",
        "logo-zero",
        "logo-huge",
        "size-without-logo",
        "name-too-long",
        "name-with-space",
        "unknown-key",
    ],
)
def test_a_bad_ui_key_stops_start_up_with_the_key(tmp_path: Path, lines: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        load_settings(_instance(tmp_path, lines + "\n"))
