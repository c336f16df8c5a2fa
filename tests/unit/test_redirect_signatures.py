"""The Redirect binding's query signature, checked over the query as received
(redirect_query.py, redirect_signature.check_query_signature).

SAML bindings 3.4.4.1: the receiver verifies over the parameters as they were URL-encoded by the
sender; re-encoding is not sufficient. So a signature must verify whichever encoder the sender
used (PHP's `%7E`, .NET's lowercase hex, `%20` for a space), with RSA and with ECDSA, and every
change to what was signed must fail. The routes are tested end to end in
tests/flows/test_redirect_signatures.py.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, quote_plus

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st
from saml2.sigver import verify_redirect_signature
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from broker.core.errors import InvalidMessage
from broker.saml import redirect_signature
from broker.saml.metadata_keys import metadata_public_key
from broker.saml.redirect_query import BINDING_PARAMETERS, RedirectQuery, read_redirect_query
from broker.saml.redirect_signature import (
    MAX_SIGNATURE_CHARS,
    check_query_signature,
    verify_query_signature,
)
from broker.saml.xmlsig import _AllowListRSACrypto
from broker.saml.xmlsig_policy import ALLOWED_SIGNATURE_ALGORITHMS
from tests.support.redirect_signer import (
    ECDSA_SHA1,
    ENCODERS,
    RSA_SHA1,
    XMLDSIG_MORE,
    Signer,
    authn_request,
    make_signer,
    query_parts,
    sign_parts,
    signed_query,
)

REQUEST = authn_request(
    "https://sp.example/metadata", "https://kb.example/sso", "https://sp.example/acs"
)
# The reviewer's RelayState, and one with every kind of character encoders disagree on.
RELAY_STATES = (
    "https://sp.example/~les/1",
    "ga naar les 3 & 4: 100% klaar — ça va? https://les.example/a?b=1&c=%2F#x ~(*)!'",
)
MESSAGE = "SAMLRequest"


@pytest.fixture(scope="module")
def rsa_signer() -> Signer:
    return make_signer("rsa")


@pytest.fixture(scope="module")
def ec_signer() -> Signer:
    return make_signer("p256")


@pytest.fixture(scope="module")
def signers(rsa_signer: Signer, ec_signer: Signer) -> dict[str, Signer]:
    return {"rsa": rsa_signer, "p256": ec_signer}


def check(
    query_string: str, certs: list[str], *, relay_state: str | None = None, value: str = ""
) -> None:
    """check_query_signature as the routes call it: the values read come from the same query."""
    query = read_redirect_query(query_string.encode("latin-1"))
    read = query.value(MESSAGE) if not value else value
    check_query_signature(
        certs,
        (MESSAGE, read or ""),
        query.value("RelayState") if relay_state is None else relay_state,
        query,
    )


def refused(query_string: str, certs: list[str], code: str, **kwargs: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        check(query_string, certs, **kwargs)
    assert caught.value.code == code


# -- every encoder, RSA and ECDSA ---------------------------------------------------------------


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("relay_state", [*RELAY_STATES, None])
@pytest.mark.parametrize("kind", ["rsa", "p256"])
def test_a_signature_verifies_however_the_sender_encoded_the_query(
    signers: dict[str, Signer], kind: str, encoder: str, relay_state: str | None
) -> None:
    signer = signers[kind]
    query_string = signed_query(MESSAGE, REQUEST, relay_state, signer, encoder=encoder)
    check(query_string, [signer.cert])
    query = read_redirect_query(query_string.encode())
    assert query.value("RelayState") == relay_state


def test_the_encoders_really_differ_where_the_review_found_it() -> None:
    """The test data shows the reviewer's cases: the same value, four different queries."""
    value = RELAY_STATES[1]
    encoded = {name: encode(value) for name, encode in ENCODERS.items()}
    assert "~" in encoded["python"] and "%7E" in encoded["php"]
    assert "%3a" in encoded["dotnet"] and "%3A" in encoded["python"]
    assert "%20" in encoded["rfc3986"] and "+" in encoded["python"]
    assert len(set(encoded.values())) == 4


@pytest.mark.parametrize(
    ("encoder", "relay_state"),
    [("php", RELAY_STATES[0]), ("dotnet", RELAY_STATES[0]), ("rfc3986", "les 1")],
)
def test_pysaml2_re_encoding_is_what_failed(
    rsa_signer: Signer, encoder: str, relay_state: str
) -> None:
    """Why pysaml2's verify_redirect_signature is gone from the broker: it re-encodes the
    decoded values the Python way, so these (valid) signatures never verify there."""
    query_string = signed_query(MESSAGE, REQUEST, relay_state, rsa_signer, encoder=encoder)
    values = {k: v[0] for k, v in parse_qs(query_string).items()}
    pem = rsa_signer.cert
    assert not verify_redirect_signature(values, _AllowListRSACrypto(None), pem)
    check(query_string, [pem])  # and ours does


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_ecdsa_on_every_curve_with_every_sha2(curve: str, digest: str) -> None:
    signer = make_signer(curve)
    sigalg = f"{XMLDSIG_MORE}ecdsa-{digest}"
    query_string = signed_query(MESSAGE, REQUEST, "r", signer, sigalg=sigalg, encoder="php")
    check(query_string, [signer.cert])


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_rsa_with_every_sha2(rsa_signer: Signer, digest: str) -> None:
    sigalg = f"{XMLDSIG_MORE}rsa-{digest}"
    query_string = signed_query(MESSAGE, REQUEST, "r", rsa_signer, sigalg=sigalg, encoder="dotnet")
    check(query_string, [rsa_signer.cert])


def test_every_metadata_key_is_tried(rsa_signer: Signer, ec_signer: Signer) -> None:
    """A rollover lists two keys; a certificate nobody can read verifies nothing but does not
    stop the next one."""
    query_string = signed_query(MESSAGE, REQUEST, "r", ec_signer)
    check(
        query_string,
        ["not base64!", base64.b64encode(b"no cert").decode(), rsa_signer.cert, ec_signer.cert],
    )
    refused(query_string, ["not base64!", rsa_signer.cert], "bad_signature")


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "p256"])
def test_a_changed_value_is_refused(signers: dict[str, Signer], kind: str) -> None:
    signer = signers[kind]
    query_string = signed_query(MESSAGE, REQUEST, "signed-state", signer, encoder="php")
    refused(query_string.replace("signed-state", "other-state"), [signer.cert], "bad_signature")
    other = signed_query(MESSAGE, REQUEST.replace("acs", "acs-evil"), "signed-state", signer)
    swapped_message = other.split("&")[0] + "&" + "&".join(query_string.split("&")[1:])
    refused(swapped_message, [signer.cert], "bad_signature")
    # The same value, encoded otherwise than it was signed: not what was signed.
    recoded = query_string.replace("%7E", "~").replace("%3A", "%3a")
    if recoded != query_string:
        refused(recoded, [signer.cert], "bad_signature")


def test_a_relay_state_added_or_removed_is_refused(rsa_signer: Signer) -> None:
    without = signed_query(MESSAGE, REQUEST, None, rsa_signer)
    refused(without + "&RelayState=added", [rsa_signer.cert], "bad_signature")
    empty = without + "&RelayState="  # present though empty: part of the signed octets
    refused(empty, [rsa_signer.cert], "bad_signature")
    with_state = signed_query(MESSAGE, REQUEST, "r", rsa_signer)
    dropped = "&".join(p for p in with_state.split("&") if not p.startswith("RelayState="))
    refused(dropped, [rsa_signer.cert], "bad_signature")


def test_a_signature_over_another_order_is_refused(rsa_signer: Signer) -> None:
    """The signed octets are in the binding's order, whatever the sender signed."""
    sigalg = rsa_signer.sigalg
    parts = query_parts(MESSAGE, REQUEST, "r", sigalg, "python")
    swapped = sign_parts([parts[1], parts[0], parts[2]], rsa_signer, sigalg, "python")
    refused(swapped, [rsa_signer.cert], "bad_signature")
    # The parameters of a good query may stand in any order in the URL.
    good = sign_parts(parts, rsa_signer, sigalg, "python").split("&")
    check("&".join(reversed(good)), [rsa_signer.cert])


@pytest.mark.parametrize("name", sorted(BINDING_PARAMETERS))
def test_a_parameter_given_twice_is_refused(rsa_signer: Signer, name: str) -> None:
    message = "SAMLResponse" if name == "SAMLResponse" else MESSAGE
    query_string = signed_query(message, REQUEST, "r", rsa_signer)
    disguised = f"%{ord(name[0]):02X}{name[1:]}"  # "%53igAlg" reads as "SigAlg"
    for extra in (f"&{name}=x", f"&{name}=", f"&{disguised}=x"):
        with pytest.raises(InvalidMessage) as caught:
            read_redirect_query((query_string + extra).encode())
        assert caught.value.code == "duplicate_parameter"


def test_other_parameters_are_neither_read_nor_signed(rsa_signer: Signer) -> None:
    query_string = signed_query(MESSAGE, REQUEST, "r", rsa_signer)
    check(f"tenant=7&tenant=8&{query_string}&x", [rsa_signer.cert])


@pytest.mark.parametrize(
    "sigalg",
    [
        RSA_SHA1,
        ECDSA_SHA1,
        f"{XMLDSIG_MORE}rsa-md5",
        f"{XMLDSIG_MORE}hmac-sha256",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "",
    ],
)
def test_a_weak_or_unknown_sigalg_is_refused_before_any_cryptography(
    rsa_signer: Signer, sigalg: str
) -> None:
    parts = query_parts(MESSAGE, REQUEST, "r", sigalg, "python")
    signed = "&".join(parts) + "&Signature=" + quote_plus(base64.b64encode(b"x" * 256).decode())
    refused(signed, [rsa_signer.cert], "weak_algorithm")


def test_a_real_sha1_signature_is_refused(rsa_signer: Signer) -> None:
    query_string = signed_query(MESSAGE, REQUEST, "r", rsa_signer, sigalg=RSA_SHA1)
    refused(query_string, [rsa_signer.cert], "weak_algorithm")


def test_unsigned_and_half_signed_queries(rsa_signer: Signer) -> None:
    parts = query_parts(MESSAGE, REQUEST, "r", None, "python")
    refused("&".join(parts), [rsa_signer.cert], "request_unsigned")
    signed = signed_query(MESSAGE, REQUEST, "r", rsa_signer)
    no_sigalg = "&".join(p for p in signed.split("&") if not p.startswith("SigAlg="))
    refused(no_sigalg, [rsa_signer.cert], "bad_signature")
    with pytest.raises(InvalidMessage) as caught:
        check_query_signature([rsa_signer.cert], (MESSAGE, "x"), None, None)
    assert caught.value.code == "request_unsigned"


@pytest.mark.parametrize(
    "signature", ["", "%21%21not-base64", "AAA", "A" * (MAX_SIGNATURE_CHARS + 4)]
)
def test_a_garbled_signature_is_refused(rsa_signer: Signer, signature: str) -> None:
    signed = signed_query(MESSAGE, REQUEST, "r", rsa_signer)
    garbled = signed.split("&Signature=")[0] + "&Signature=" + signature
    refused(garbled, [rsa_signer.cert], "bad_signature")


def test_another_key_is_refused(rsa_signer: Signer, ec_signer: Signer) -> None:
    stranger = make_signer("p256")
    refused(
        signed_query(MESSAGE, REQUEST, "r", stranger),
        [ec_signer.cert, rsa_signer.cert],
        "bad_signature",
    )


def test_values_read_must_be_the_signed_ones(rsa_signer: Signer) -> None:
    """A caller that would read another value than the query's is refused, not trusted."""
    signed = signed_query(MESSAGE, REQUEST, "r", rsa_signer)
    refused(signed, [rsa_signer.cert], "bad_signature", value="another request")
    refused(signed, [rsa_signer.cert], "bad_signature", relay_state="another state")


# -- the verifier itself ----------------------------------------------------------------------


def test_the_verifier_covers_exactly_the_allow_list() -> None:
    covered = set(redirect_signature._RSA_DIGESTS) | set(redirect_signature._ECDSA_DIGESTS)
    assert covered == ALLOWED_SIGNATURE_ALGORITHMS


def test_key_type_and_algorithm_must_match(rsa_signer: Signer, ec_signer: Signer) -> None:
    octets = b"SAMLRequest=x&SigAlg=y"
    rsa_key = metadata_public_key(rsa_signer.cert)
    ec_key = metadata_public_key(ec_signer.cert)
    assert rsa_key is not None and ec_key is not None
    rsa_sig = rsa_signer.sign(octets, rsa_signer.sigalg)
    ec_sig = ec_signer.sign(octets, ec_signer.sigalg)
    assert verify_query_signature(rsa_key, rsa_signer.sigalg, rsa_sig, octets)
    assert verify_query_signature(ec_key, ec_signer.sigalg, ec_sig, octets)
    assert not verify_query_signature(rsa_key, ec_signer.sigalg, rsa_sig, octets)
    assert not verify_query_signature(ec_key, rsa_signer.sigalg, ec_sig, octets)
    assert not verify_query_signature(ec_key, ECDSA_SHA1, ec_sig, octets)


def test_ecdsa_takes_r_and_s_concatenated_or_der(ec_signer: Signer) -> None:
    """XML-DSig's ECDSA SignatureValue (RFC 4051 3.3): r‖s, each as long as the curve's order
    in bytes; and the DER sequence Java's and .NET's default signers make. A value of any other
    shape, or a valid signature over other octets, verifies nothing."""
    octets = b"SAMLRequest=x&SigAlg=y"
    key = metadata_public_key(ec_signer.cert)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    raw = ec_signer.sign(octets, ec_signer.sigalg)
    assert len(raw) == 64
    der = ec_signer.sign(octets, ec_signer.sigalg, der=True)
    assert der[0] == 0x30 and len(der) != 64
    assert verify_query_signature(key, ec_signer.sigalg, raw, octets)
    assert verify_query_signature(key, ec_signer.sigalg, der, octets)
    assert not verify_query_signature(key, ec_signer.sigalg, der, octets + b"&x")
    assert not verify_query_signature(key, ec_signer.sigalg, der[:-1], octets)
    assert not verify_query_signature(key, ec_signer.sigalg, der + b"\0", octets)
    assert not verify_query_signature(key, ec_signer.sigalg, raw[:-1], octets)
    assert not verify_query_signature(key, ec_signer.sigalg, raw + b"\0", octets)
    assert not verify_query_signature(key, ec_signer.sigalg, bytes(64), octets)
    assert not verify_query_signature(key, ec_signer.sigalg, b"", octets)


# -- the query as received --------------------------------------------------------------------


def test_the_signed_octets_are_the_raw_values_in_the_bindings_order() -> None:
    query = read_redirect_query(
        b"Signature=sig&SigAlg=alg%3a&RelayState=%7e+a%20b&SAMLRequest=req%2b&x=1"
    )
    assert (
        query.signed_octets("SAMLRequest")
        == b"SAMLRequest=req%2b&RelayState=%7e+a%20b&SigAlg=alg%3a"
    )
    assert query.value("RelayState") == "~ a b"
    assert query.value("SAMLRequest") == "req+"
    assert query.value("SAMLResponse") is None
    assert (
        RedirectQuery({"SAMLResponse": b"r", "SigAlg": b"a"}).signed_octets("SAMLResponse")
        == b"SAMLResponse=r&SigAlg=a"
    )


_QUERY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@given(
    values=st.dictionaries(st.sampled_from([*sorted(BINDING_PARAMETERS), "other"]), _QUERY_TEXT),
    encoder=st.sampled_from(sorted(ENCODERS)),
)
def test_values_read_are_what_werkzeug_reads(values: dict[str, str], encoder: str) -> None:
    """The values the broker now reads from the query are the ones `request.args` had."""
    encode = ENCODERS[encoder]
    query_string = "&".join(f"{name}={encode(value)}" for name, value in values.items())
    args = Request(EnvironBuilder(query_string=query_string).get_environ()).args
    query = read_redirect_query(query_string.encode())
    for name in BINDING_PARAMETERS:
        assert query.value(name) == args.get(name)
