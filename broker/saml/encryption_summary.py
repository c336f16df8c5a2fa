"""What a SAML service receives from the broker now, in a few words: the `assertions` column of
`ketenbroker publisher list` and the confirmation of `publisher update --assertion-encryption`.

Worked out as the login path works it out (publisher_encryption.py, from the metadata logins
use) and the operator's switch (core/model.py `AssertionEncryption`), so an operator sees before
rolling workers to a version that encrypts which services will get encrypted assertions and
which would be refused.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned

from broker.core.model import AssertionEncryption
from broker.saml.publisher_encryption import (
    MD_NS,
    EncryptionUnusable,
    chosen_encryption,
    offers_in_descriptor,
)
from broker.saml.xml_parsing import parse_untrusted

SIGNED = "signed"
SIGNED_OFF = "signed (encryption off)"
REFUSED = "REFUSED: "


def assertions_received(entity_id: str, xml: str | None, setting: AssertionEncryption) -> str:
    """`encrypted (aes256-gcm, RSA 2048)`, `signed`, `signed (encryption off)` or
    `REFUSED: <why>` (EncryptionUnusable's English, or metadata there is none of)."""
    if setting is AssertionEncryption.OFF:
        return SIGNED_OFF
    if not xml:
        # A metadata source's copy past its validUntil: logins find no such service.
        return REFUSED + f"no metadata of {entity_id} in force (its source's copy expired)"
    try:
        root = parse_untrusted(xml.encode())
    except etree.XMLSyntaxError:
        return REFUSED + f"the metadata of {entity_id} is not well-formed XML"
    offers = tuple(
        offer
        for descriptor in root.iter(f"{{{MD_NS}}}SPSSODescriptor")
        for offer in offers_in_descriptor(descriptor)
    )
    try:
        chosen = chosen_encryption(entity_id, offers)
    except EncryptionUnusable as err:
        return REFUSED + err.detail
    if chosen is None:
        return SIGNED
    algorithm = chosen.data_algorithm.rsplit("#", 1)[-1]
    return f"encrypted ({algorithm}, RSA {chosen.bits})"


def refused_with_auto(entity_id: str, xml: str) -> str | None:
    """`REFUSED: <why>` when logins of the entity would be refused with `auto` and this
    metadata, else None: the check of a registry import (registry/import_encryption.py)."""
    would = assertions_received(entity_id, xml, AssertionEncryption.AUTO)
    return would if would.startswith(REFUSED) else None
