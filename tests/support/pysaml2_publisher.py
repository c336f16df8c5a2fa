"""A publisher's own pysaml2 SP, configured as a publisher's engineer configures one: pysaml2's
defaults (its own xmlsec1 backend, its shipped attribute maps), plus whatever settings a test
gives it, such as the ones docs/publishers.md (section 7) says pysaml2 needs, read from the
document itself. So the tests check what the docs promise, not a copy of it.

Unlike the demo publishers (broker/demo/publisher_sp.py: the broker's in-process crypto, every
attribute shown as sent), this one hands the platform what pysaml2 hands it: `ava`.
"""

from __future__ import annotations

import ast
import base64
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Declaration, NamingProfile, Service
from tests.support.client import Browser, Page
from tests.support.doc_snippets import doc_snippet
from tests.support.live import LiveDemo, free_ports

with warnings.catch_warnings():
    # pysaml2 7.5.5 touches cryptography's deprecated CFB mode at import.
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor


def documented_settings() -> dict[str, Any]:
    """The pysaml2 settings docs/publishers.md gives (a Python literal)."""
    settings = ast.literal_eval(doc_snippet("python", '"allow_unknown_attributes"'))
    assert isinstance(settings, dict)
    return settings


def documented_attribute_map(folder: Path) -> Path:
    """An `attribute_map_dir` holding the one module docs/publishers.md gives."""
    source = doc_snippet("python", "ketenbroker_uri.py")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ketenbroker_uri.py").write_text(source, encoding="utf-8")
    return folder


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, nested dictionaries key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Answer:
    """The broker's answer to one login: the page that carries it, and its SAMLResponse."""

    page: Page
    request_id: str

    @property
    def saml_response(self) -> str | None:
        forms = [f for f in self.page.forms if "SAMLResponse" in f.fields]
        return forms[0].fields["SAMLResponse"] if forms else None


class OwnSp:
    """A pysaml2 SP with a key pair of its own, registered in the running demo as `service_id`."""

    def __init__(
        self,
        demo: LiveDemo,
        service_id: str,
        *,
        chain: str | None,
        naming: NamingProfile = NamingProfile.OID,
        released: frozenset[str] = frozenset(),
        sign_requests: bool = False,
    ) -> None:
        self.demo = demo
        base_url = f"http://localhost:{free_ports(1)}"
        self.entity_id = f"{base_url}/metadata"
        self.acs_url = f"{base_url}/acs"
        self.key_file = demo.directory / "peers" / f"{service_id}.key"
        self.cert_file = demo.directory / "peers" / f"{service_id}.crt"
        write_pair(self.key_file, self.cert_file, service_id)
        self.base = {
            "entityid": self.entity_id,
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "metadata": {"inline": [demo.broker.saml_entities.idp_metadata()]},
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)],
                    },
                    "authn_requests_signed": sign_requests,
                    "want_response_signed": True,
                    "want_assertions_signed": True,
                    "allow_unsolicited": False,
                }
            },
        }
        declarations = tuple(
            Declaration(name, "Om de leerling te begroeten.") for name in sorted(released)
        )
        service = Service(
            service_id,
            f"{service_id} (test publisher)",
            self.entity_id,
            chain,
            naming=naming,
            declarations=declarations,
        )
        metadata = str(entity_descriptor(self.client({}).config))
        demo.registry.add_service(service, metadata)
        if released:
            demo.registry.set_policy(DEMO_SCHOOL_ID, service_id, released, "test")

    def client(self, settings: dict[str, Any]) -> Any:
        """The SP with `settings` merged into its configuration."""
        config = SPConfig()
        config.load(merged(self.base, settings))
        return Saml2Client(config=config)

    def login(self, settings: dict[str, Any], uid: str = "sanne.jansen") -> Answer:
        """A login started by the SP with `settings` (Redirect binding), through discovery and
        the school, up to the broker's answer (not delivered)."""
        client = self.client(settings)
        idp = self.demo.idp_entity_id
        request_id, info = client.prepare_for_authenticate(
            entityid=idp, binding=BINDING_HTTP_REDIRECT, relay_state="r1"
        )
        browser = Browser()
        page = browser.get(str(dict(info["headers"])["Location"]))
        if self.demo.shows_discovery(page):
            page = self.demo.choose_school(browser, page)
        if page.url.startswith(f"{self.demo.school_url}/sso"):
            page = self.demo.pick(browser, page, uid)
        return Answer(page, str(request_id))

    def ava(self, answer: Answer, settings: dict[str, Any]) -> dict[str, list[str]]:
        """What pysaml2 with `settings` hands the platform of the answer: its `ava`."""
        saml_response = answer.saml_response
        assert saml_response is not None, answer.page.text[:500]
        in_response_to = etree.fromstring(base64.b64decode(saml_response)).get("InResponseTo")
        assert in_response_to == answer.request_id
        parsed = self.client(settings).parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding={answer.request_id: "/"}
        )
        ava: dict[str, list[str]] = parsed.ava
        return ava
