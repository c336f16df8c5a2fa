"""Where the ACS's CPU goes: the parts of handling one school Response, each timed on its own.

Usage: python bench/acs_breakdown.py [--repeat 200]

Runs one demo login in process (bench/login.py's route), keeps the school's Response the broker
received at `POST /saml/sp/acs`, and then times, on that same message, the broker's whole
`SamlBack.parse_response` and its parts: the firewall and schema check, and the reader's
signatures, checks and reads (`assertion_reader.read_response`). For comparison it also times
pysaml2's own parse of the same message, called here in the bench (the broker no longer lets
pysaml2 read a successful Response: every response took that route before 2026-11-28, encrypted
ones until 2026-11-29): `parse_authn_request_response` and the pieces of its work that are
measurable from outside (building its classes from the string, serialising them back, the two
signature checks, the attribute conversion). The last line is the lower bound measured before
the broker's reader was built: firewall, schema, both signatures on one tree, the reads, without
any of the checks (docs/performance.md, "The ACS and pysaml2").

Medians of `time.thread_time()` per call, so other processes' load does not count. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xmlsec
from saml2 import BINDING_HTTP_POST, samlp
from saml2.sigver import make_temp, pem_format

sys.path.insert(0, str(Path(__file__).parent))
import login  # bench/login.py: the demo route and one login

from broker.saml import assertion_reader, back, firewall, schema
from broker.saml.xmlsig import verification_context
from broker.saml.xmlsig_policy import locate_signed_element

RESPONSE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"


def timed(label: str, call: Callable[[], Any], repeat: int) -> None:
    call()
    spent = []
    for _ in range(repeat):
        start = time.thread_time()
        call()
        spent.append(time.thread_time() - start)
    print(f"{label:64s} {statistics.median(spent) * 1000:7.3f} ms")


def capture_acs_message(directory: Path) -> tuple[Any, str, Any, str]:
    """One login; the arguments of the broker's last `parse_response` call."""
    captured: list[tuple[Any, str, Any, str]] = []
    original = back.SamlBack.parse_response

    def spy(self: Any, saml_response: str, school: Any, request_id: str) -> Any:
        captured.append((self, saml_response, school, request_id))
        return original(self, saml_response, school, request_id)

    back.SamlBack.parse_response = spy  # type: ignore[method-assign]
    try:
        route = login.build_route("in-process", directory, None)
        login.run(route, 1, 0)
    finally:
        back.SamlBack.parse_response = original  # type: ignore[method-assign]
    return captured[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="kb-bench-acs-") as tmp:
        saml_back, message, school, request_id = capture_acs_message(Path(tmp))
        client = saml_back.entities.client
        text = firewall.decode_post(message).decode()

        def pysaml2_parse() -> Any:
            with schema.prevalidated():
                return client.parse_authn_request_response(
                    message, BINDING_HTTP_POST, outstanding={request_id: school.id}
                )

        parsed = pysaml2_parse()
        certs = client.sec.metadata.certs(school.idp_entity_id, "any", "signing")
        cert_file = make_temp(pem_format(certs[0][1]), suffix=".pem", decode=False)
        crypto = client.sec.crypto
        key = xmlsec.Key.from_memory(pem_format(certs[0][1]), xmlsec.constants.KeyDataFormatCertPem)

        def read_directly() -> None:
            doc = firewall.inspect(firewall.decode_post(message), root="Response", assertions=None)
            schema.validate_message(doc)
            assertion = doc.find(f"{{{firewall.SAML}}}Assertion")
            assert assertion is not None
            for node_name, element_id in (
                (RESPONSE, doc.get("ID")),
                (ASSERTION, assertion.get("ID")),
            ):
                element, signature = locate_signed_element(doc.getroottree(), node_name, element_id)
                context = verification_context(key)
                context.register_id(element, "ID")
                context.verify(signature)
            for attribute in assertion.iter(f"{{{firewall.SAML}}}Attribute"):
                [value.text for value in attribute]
            assertion.find(f"{{{firewall.SAML}}}Subject/{{{firewall.SAML}}}NameID")
            assertion.find(f"{{{firewall.SAML}}}Conditions")
            assertion.find(f"{{{firewall.SAML}}}AuthnStatement")

        print(f"one demo Response ({len(text)} bytes), median of {repeat} calls each:")
        timed(
            "SamlBack.parse_response (all of it)",
            lambda: saml_back.parse_response(message, school, request_id),
            repeat,
        )
        timed(
            "  firewall: base64, lxml parse, shape",
            lambda: firewall.inspect(
                firewall.decode_post(message), root="Response", assertions=None
            ),
            repeat,
        )
        doc = firewall.inspect(firewall.decode_post(message), root="Response", assertions=None)
        timed("  schema check in C", lambda: schema.validate_message(doc), repeat)
        # Each call gets its own freshly parsed tree (verification registers IDs on it).
        docs = [
            firewall.inspect(firewall.decode_post(message), root="Response", assertions=None)
            for _ in range(repeat + 1)
        ]
        metadata = client.metadata
        timed(
            "  reader: signatures, checks, reads (assertion_reader)",
            lambda: assertion_reader.read_response(
                docs.pop(),
                metadata,
                school.idp_entity_id,
                saml_back._expectations(request_id),
            ),
            repeat,
        )
        timed(
            "pysaml2 parse_authn_request_response (reference, off the path)",
            pysaml2_parse,
            repeat,
        )
        timed(
            "    string -> its classes (any_response_from_string: parses twice)",
            lambda: samlp.any_response_from_string(text),
            repeat,
        )
        timed(
            "    str(Response) (done only for the skipped schema check)",
            lambda: str(parsed.response),
            repeat,
        )
        timed("    str(Assertion) (likewise)", lambda: str(parsed.assertion), repeat)
        timed(
            "    metadata certs + temporary PEM file (per signature)",
            lambda: make_temp(
                pem_format(client.sec.metadata.certs(school.idp_entity_id, "any", "signing")[0][1]),
                suffix=".pem",
                decode=False,
            ),
            repeat,
        )
        for label, node_name, element_id in (
            ("Response", RESPONSE, parsed.response.id),
            ("Assertion", ASSERTION, parsed.assertion.id),
        ):
            timed(
                f"    signature of the {label} (lxml parse, policy, RSA)",
                lambda n=node_name, i=element_id: crypto.validate_signature(
                    text, cert_file.name, "pem", n, i
                ),
                repeat,
            )
        timed("    get_identity (attribute conversion)", parsed.get_identity, repeat)
        timed(
            "lower bound: firewall, schema, 2 signatures on one tree, reads",
            read_directly,
            repeat,
        )


if __name__ == "__main__":
    main()
