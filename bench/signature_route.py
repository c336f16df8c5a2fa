"""Time XML signing and verification of a ~6 KB SAML Response: in process vs pysaml2's xmlsec1.

Usage: python bench/signature_route.py [-n 200]

The in-process route is broker.saml.xmlsig.InProcessCryptoBackend; the stock route is pysaml2's
CryptoBackendXmlSec1 and is only measured when an `xmlsec1` program is on PATH (the broker itself
never needs it). Each figure is the median wall time of one call, parse and serialise included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from saml2 import class_name, saml, samlp
from saml2.sigver import CryptoBackend, CryptoBackendXmlSec1, pre_signature_part

from broker.certificates import write_pair
from broker.saml.xmlsig import InProcessCryptoBackend

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
TARGET_BYTES = 6 * 1024


def write_key_pair(directory: Path) -> tuple[str, str]:
    key_path, cert_path = directory / "idp.key", directory / "idp.crt"
    write_pair(key_path, cert_path, "bench-idp")
    return str(key_path), str(cert_path)


def build_response(cert_file: str) -> str:
    """A Response carrying one Assertion, padded with attributes to about TARGET_BYTES."""
    cert_body = "".join(
        line for line in Path(cert_file).read_text().splitlines() if "-----" not in line
    )
    attributes = [
        saml.Attribute(
            name=f"urn:oid:1.3.6.1.4.1.5923.1.1.1.{index}",
            name_format="urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
            attribute_value=[saml.AttributeValue(text=f"value-{index}-" + "x" * 40)],
        )
        for index in range(10)
    ]
    assertion = saml.Assertion(
        id="_assertion1",
        version="2.0",
        issue_instant="2024-01-01T00:00:00Z",
        issuer=saml.Issuer(text="http://idp.example.test/metadata"),
        subject=saml.Subject(name_id=saml.NameID(text="transient-1")),
        attribute_statement=[saml.AttributeStatement(attribute=attributes)],
    )
    response = samlp.Response(
        id="_response1",
        version="2.0",
        issue_instant="2024-01-01T00:00:00Z",
        issuer=saml.Issuer(text="http://idp.example.test/metadata"),
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
        assertion=[assertion],
    )
    response.signature = pre_signature_part(
        "_response1", cert_body, 1, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    text = str(response)
    while len(text.encode()) < TARGET_BYTES:
        attributes.append(attributes[-1])
        text = str(response)
    return text


def median_ms(action: Callable[[], object], rounds: int) -> float:
    action()  # warm caches (key parsing, imports) the way a running broker has them
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def measure(
    backend: CryptoBackend, document: str, keys: tuple[str, str], rounds: int
) -> tuple[float, float]:
    node = class_name(samlp.Response())
    signed = backend.sign_statement(document, node, keys[0], "_response1")
    if not backend.validate_signature(signed, keys[1], "pem", node, "_response1"):
        raise SystemExit("signature did not verify; figures would be meaningless")
    sign = median_ms(lambda: backend.sign_statement(document, node, keys[0], "_response1"), rounds)
    verify = median_ms(
        lambda: backend.validate_signature(signed, keys[1], "pem", node, "_response1"), rounds
    )
    return sign, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        keys = write_key_pair(Path(directory))
        document = build_response(keys[1])
        rows = [
            (
                "in-process (xmlsec binding)",
                *measure(InProcessCryptoBackend(), document, keys, args.rounds),
            )
        ]
        binary = shutil.which("xmlsec1")
        if binary:
            stock = CryptoBackendXmlSec1(binary)
            rows.append(("pysaml2 xmlsec1 program", *measure(stock, document, keys, args.rounds)))

    print(
        f"Response size: {len(document.encode())} bytes, RSA-2048, median of {args.rounds} rounds"
    )
    print(f"{'route':<30} {'sign ms':>9} {'verify ms':>10}")
    for route, sign, verify in rows:
        print(f"{route:<30} {sign:>9.2f} {verify:>10.2f}")
    if not binary:
        print("xmlsec1 not on PATH: stock pysaml2 route not measured")


if __name__ == "__main__":
    main()
