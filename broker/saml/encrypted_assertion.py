"""A school's EncryptedAssertion, opened by the broker itself and then read as a plain one.

pysaml2 must not decide this path: its second decryption loop (for an `Advice` that carries
another EncryptedAssertion) decrypts with `verified=True`, after which an assertion that merely
holds a `ds:Signature` element counts as signed, and an unsigned assertion encrypted to the
broker's public key logged a student in as anyone (docs/security.md, "Encrypted assertions").

Here the one EncryptedAssertion, a direct child of the Response, is decrypted into the firewall's
own tree, in its place; nothing encrypted may remain, inside the plaintext or elsewhere, and
the plaintext carries no `Advice`. The tree is then checked again as the firewall and the schema
check a received Response, and read by `assertion_reader.read_response` like any plain one. The
Response's own signature covers the ciphertext, so the caller verifies it before this runs
(`assertion_reader.verify_before_decryption`); an Assertion's own signature is verified after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import xmlsec
from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned
from saml2.sigver import DecryptError

from broker.core.errors import InvalidMessage
from broker.saml import firewall, schema
from broker.saml.xmlsig_enc import NotOurKey, decrypt_in_place
from broker.saml.xmlsig_policy import XENC_NS

log = logging.getLogger(__name__)

ENCRYPTED_ASSERTION = f"{{{firewall.SAML}}}EncryptedAssertion"
ASSERTION = f"{{{firewall.SAML}}}Assertion"
ADVICE = f"{{{firewall.SAML}}}Advice"
ENCRYPTED_DATA = f"{{{XENC_NS}}}EncryptedData"
ENCRYPTED_KEY = f"{{{XENC_NS}}}EncryptedKey"
ELEMENT_TYPE = f"{XENC_NS}Element"


def is_encrypted(doc: etree._Element) -> bool:
    """Whether the Response carries an EncryptedAssertion anywhere."""
    return next(doc.iter(ENCRYPTED_ASSERTION), None) is not None


def open_in_place(doc: etree._Element, keys: Sequence[xmlsec.Key]) -> None:
    """Replace the Response `doc`'s one EncryptedAssertion by the Assertion it carries, in `doc`
    itself, and check the result as a received Response is checked. `keys`: the broker's
    decryption keys (none: encrypted assertions are not accepted)."""
    if not keys:
        raise InvalidMessage(
            "encrypted assertion, and encryption is off", code="encrypted_assertion_not_accepted"
        )
    wrapper = _the_encrypted_assertion(doc)
    enc_data = wrapper.find(ENCRYPTED_DATA)
    if enc_data is None:  # the schema requires it; kept so the refusal never depends on that
        raise InvalidMessage("encrypted assertion without data", code="decryption_failed")
    _check_type(enc_data)
    _decrypt(enc_data, keys)
    assertion = _the_plaintext(wrapper)
    doc.replace(wrapper, assertion)
    # The plaintext was seen by no check yet: the same ones as the message as received. After
    # them nothing encrypted is left, so the schema check has seen the whole message.
    firewall.inspect_tree(doc, assertions=1)
    if not schema.validate_message(doc):
        raise InvalidMessage("encrypted element in the response", code="encrypted_element_refused")


def _the_encrypted_assertion(doc: etree._Element) -> etree._Element:
    """The one EncryptedAssertion, a direct child of the Response, and no other encrypted part.

    The firewall already allows one assertion, plain or encrypted; counted again here so this
    function refuses a second one on its own. An EncryptedID or EncryptedAttribute elsewhere in
    the message is not something the broker decrypts."""
    anywhere = list(doc.iter(ENCRYPTED_ASSERTION))
    if len(anywhere) != 1:
        raise InvalidMessage("wrong number of assertions", code="assertion_count")
    wrapper = anywhere[0]
    if wrapper.getparent() is not doc:
        raise InvalidMessage("response without assertion", code="no_assertion")
    others = [e for e in doc.iter(ENCRYPTED_DATA) if e.getparent() is not wrapper]
    if others:
        raise InvalidMessage("encrypted element in the response", code="encrypted_element_refused")
    return wrapper


def _check_type(enc_data: etree._Element) -> None:
    """The EncryptedData holds one element, the Assertion (SAML core 6.1: its Type SHOULD be
    present and, if present, MUST be xenc's Element). Another Type is refused before anything
    is decrypted: libxmlsec would act on it (Content puts the plaintext's nodes in place, an
    unknown Type leaves the ciphertext there). Absent, it is read as Element, which is also
    what makes libxmlsec put the plaintext in place."""
    kind = enc_data.get("Type")
    if kind is None:
        enc_data.set("Type", ELEMENT_TYPE)
    elif kind != ELEMENT_TYPE:
        raise InvalidMessage(
            "encrypted assertion of another type than Element", code="encrypted_assertion_type"
        )


def _decrypt(enc_data: etree._Element, keys: Sequence[xmlsec.Key]) -> None:
    """Decrypt with whichever of the broker's keys the school encrypted for (a school may still
    use the previous key, or already the next one, during a rollover)."""
    for key in keys:
        try:
            decrypt_in_place(enc_data, key)
        except NotOurKey:
            continue
        except DecryptError as err:
            _refuse_decryption(str(err))
        return
    _refuse_decryption("xmlenc: key_unwrap_failed")


def _refuse_decryption(reason: str) -> None:
    # One public code for every decryption failure (no oracle of which step failed); the
    # precise step goes to the log only.
    log.info("assertion decryption refused", extra={"reason": reason})
    raise InvalidMessage("encrypted assertion could not be decrypted", code="decryption_failed")


def _the_plaintext(wrapper: etree._Element) -> etree._Element:
    """The decrypted EncryptedAssertion holds exactly one Assertion, which holds nothing
    encrypted and no Advice (the carriers of pysaml2's second decryption loop)."""
    children = [child for child in wrapper if isinstance(child.tag, str)]
    if len(children) != 1 or children[0].tag != ASSERTION:
        raise InvalidMessage(
            "encrypted assertion holds something else than one assertion",
            code="encrypted_assertion_content",
        )
    assertion = children[0]
    if next(assertion.iter(ENCRYPTED_DATA, ENCRYPTED_KEY, ENCRYPTED_ASSERTION), None) is not None:
        raise InvalidMessage(
            "encrypted part inside an encrypted assertion", code="nested_encryption"
        )
    if next(assertion.iter(ADVICE), None) is not None:
        raise InvalidMessage("advice inside an encrypted assertion", code="assertion_advice")
    return assertion
