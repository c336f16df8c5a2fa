"""The cryptography floor of one SAML→SAML login: what no broker can avoid spending.

Usage: python bench/crypto_floor.py [-n 200]

Per login the broker verifies the school's Response (the demo school signs the Response and the
Assertion, as many IdPs do: two verifications) and signs the Assertion and then the Response for
the publisher (two signatures). This script times exactly those four operations with the library
the broker uses in process (broker/saml/xmlsig.py, the `xmlsec` binding), on a Response of the
size a login carries, parse and serialise included. It also reports the Redirect-binding
signature of the AuthnRequest to the school (one bare RSA-SHA256 signature), which is
cryptography too but outside the floor the issue defines.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from saml2 import class_name, saml, samlp
from saml2.sigver import SIGNER_ALGS, RSASigner, import_rsa_key_from_file, pre_signature_part
from signature_route import RSA_SHA256, SHA256, build_response, median_ms, write_key_pair

from broker.saml.xmlsig import InProcessCryptoBackend

RESPONSE_NODE = class_name(samlp.Response())
ASSERTION_NODE = class_name(saml.Assertion())


@dataclass(frozen=True)
class Floor:
    verify_response_ms: float
    verify_assertion_ms: float
    sign_assertion_ms: float
    sign_response_ms: float
    redirect_sign_ms: float

    @property
    def login_ms(self) -> float:
        """Verify the school's two signatures, sign the publisher's assertion and response."""
        return (
            self.verify_response_ms
            + self.verify_assertion_ms
            + self.sign_assertion_ms
            + self.sign_response_ms
        )


def _with_assertion_template(document: str, cert_file: str) -> str:
    """The same Response with a signature template in the Assertion too (signed first)."""
    response = samlp.response_from_string(document)
    cert_body = "".join(
        line for line in Path(cert_file).read_text().splitlines() if "-----" not in line
    )
    assertion = response.assertion[0]
    assertion.signature = pre_signature_part(
        assertion.id, cert_body, 2, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    return str(response)


def measure_floor(rounds: int = 200) -> Floor:
    backend = InProcessCryptoBackend()
    with tempfile.TemporaryDirectory(prefix="kb-bench-floor-") as directory:
        key_file, cert_file = write_key_pair(Path(directory))
        template = _with_assertion_template(build_response(cert_file), cert_file)
        assertion_signed = backend.sign_statement(template, ASSERTION_NODE, key_file, "_assertion1")
        both = backend.sign_statement(assertion_signed, RESPONSE_NODE, key_file, "_response1")
        for node, ident in ((RESPONSE_NODE, "_response1"), (ASSERTION_NODE, "_assertion1")):
            if not backend.validate_signature(both, cert_file, "pem", node, ident):
                raise SystemExit("floor: signature did not verify; figures would be meaningless")
        # pysaml2's RSA-SHA256 signer, as the broker signs its Redirect-binding AuthnRequest.
        signer = RSASigner(SIGNER_ALGS[RSA_SHA256].digest, import_rsa_key_from_file(key_file))
        query = b"SAMLRequest=" + b"x" * 600 + b"&RelayState=abc&SigAlg=" + RSA_SHA256.encode()
        return Floor(
            verify_response_ms=median_ms(
                lambda: backend.validate_signature(
                    both, cert_file, "pem", RESPONSE_NODE, "_response1"
                ),
                rounds,
            ),
            verify_assertion_ms=median_ms(
                lambda: backend.validate_signature(
                    both, cert_file, "pem", ASSERTION_NODE, "_assertion1"
                ),
                rounds,
            ),
            sign_assertion_ms=median_ms(
                lambda: backend.sign_statement(template, ASSERTION_NODE, key_file, "_assertion1"),
                rounds,
            ),
            sign_response_ms=median_ms(
                lambda: backend.sign_statement(
                    assertion_signed, RESPONSE_NODE, key_file, "_response1"
                ),
                rounds,
            ),
            redirect_sign_ms=median_ms(lambda: signer.sign(query), rounds),
        )


def report(floor: Floor) -> str:
    return (
        f"crypto floor per SAML->SAML login: {floor.login_ms:.2f} ms = verify response "
        f"{floor.verify_response_ms:.2f} + verify assertion {floor.verify_assertion_ms:.2f} + "
        f"sign assertion {floor.sign_assertion_ms:.2f} + sign response "
        f"{floor.sign_response_ms:.2f} (plus the AuthnRequest's Redirect signature "
        f"{floor.redirect_sign_ms:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=200)
    args = parser.parse_args()
    print(report(measure_floor(args.rounds)))


if __name__ == "__main__":
    main()
