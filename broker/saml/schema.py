"""SAML 2.0 XML Schema validation of inbound messages, in C (libxml2) instead of pure Python.

pysaml2 validates every signed Response and Assertion against the SAML schema with the
`xmlschema` package, inside its signature check: on the broker's login path that was a quarter
to a third of its CPU (docs/performance.md), twice per school response (the Response, then the
Assertion again on its own), on pysaml2's re-serialisation of the message.

Here the same schema files (the ones pysaml2 ships and validates against) are compiled once with
lxml, and the school's Response is validated once, as received: the bytes the firewall parsed,
which are what the signatures cover. Everything the schema check gave stays: required elements
and attributes (Version, ID, IssueInstant, Issuer of the Assertion, StatusCode's Value …), their
order and cardinality (one Subject, one Conditions …), types (xs:dateTime for every instant,
xs:anyURI, xs:ID), and no unknown elements in SAML namespaces. Only then is pysaml2 told, for
that one call, to skip its own copy of the check (`prevalidated`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from importlib.resources import as_file, files
from typing import Any

import saml2.data.schemas
import saml2.sigver
from lxml import etree

from broker.core.errors import InvalidMessage

log = logging.getLogger(__name__)

PROTOCOL_SCHEMA = "saml-schema-protocol-2.0.xsd"

_PREVALIDATED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ketenbroker_saml_prevalidated", default=False
)
_ORIGINAL_VALIDATE: Callable[..., Any] = getattr(
    saml2.sigver.validate_doc_with_schema,
    "__wrapped__",
    saml2.sigver.validate_doc_with_schema,
)


class _BundledSchemas(etree.Resolver):  # type: ignore[misc]  # lxml ships no type hints here
    """Resolves the schemas' imports (W3C URLs for xmldsig and xmlenc) to pysaml2's bundled
    copies by file name; anything else resolves to nothing, and the parser has no network."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        name = url.rsplit("/", 1)[-1]
        candidate = files(saml2.data.schemas).joinpath(name)
        if name.endswith(".xsd") and candidate.is_file():
            return self.resolve_filename(f"{self.folder}/{name}", context)
        return None


def _compile() -> etree.XMLSchema:
    with as_file(files(saml2.data.schemas)) as folder:
        parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=True)
        parser.resolvers.add(_BundledSchemas(str(folder)))
        document = etree.parse(str(folder / PROTOCOL_SCHEMA), parser)
        return etree.XMLSchema(document)


_SCHEMA = _compile()
# lxml validators keep an error log per object; one validation at a time per schema object.
_LOCK = threading.Lock()


XENC_ENCRYPTED_DATA = "{http://www.w3.org/2001/04/xmlenc#}EncryptedData"


def validate_message(doc: etree._Element) -> bool:
    """Refuse a parsed inbound message that is not valid against the SAML 2.0 protocol schema.

    Returns whether the check saw everything: False when the message carries encrypted parts
    (an EncryptedAssertion, EncryptedAttribute or EncryptedID), whose plaintext is not visible
    yet. A school's EncryptedAssertion is decrypted by the broker and the message validated
    again (encrypted_assertion.py); anything else encrypted is refused (back.py).

    This does not make pysaml2 parse what was validated. It is handed only Responses with an
    error status (back.py, `_refuse_status`), as the POST value, and its `unravel`
    (saml2/entity.py) tries to inflate that value before it falls back to plain base64: the
    bytes it parses, with its own schema check skipped, need not be the bytes checked here.
    What holds instead is on the broker's side: nothing pysaml2 returns is read on that path
    (which StatusError it raises only picks one of two refusals), the status the student is
    told comes from the broker's own tree, and `_error_signed_by` checks the school's
    signature on the broker's own decoded bytes.

    The log line names the failing rule and the element's path, never the offending value
    (which may be a name or an identifier)."""
    with _LOCK:
        valid = _SCHEMA.validate(doc)
        error = _SCHEMA.error_log.last_error if not valid else None
    if error is not None:
        log.info(
            "saml message not valid against the schema rule=%s path=%s", error.type_name, error.path
        )
        raise InvalidMessage("message not valid against the SAML schema", code="schema_invalid")
    return next(doc.iter(XENC_ENCRYPTED_DATA), None) is None


@contextlib.contextmanager
def prevalidated() -> Iterator[None]:
    """Within this block pysaml2 skips its schema check, for a message whose bytes, as the
    broker decoded them, `validate_message` accepted and saw completely (what pysaml2 itself
    parses in the block: `validate_message`'s docstring). Bound to the current thread or
    task, so other messages are never affected."""
    token = _PREVALIDATED.set(True)
    try:
        yield
    finally:
        _PREVALIDATED.reset(token)


def _validate_unless_prevalidated(doc: Any, validator: Any = None) -> Any:
    if _PREVALIDATED.get():
        return None
    return _ORIGINAL_VALIDATE(doc, validator)


_validate_unless_prevalidated.__wrapped__ = _ORIGINAL_VALIDATE  # type: ignore[attr-defined]


def install() -> None:
    """Let `prevalidated` reach pysaml2's signature check; idempotent. Outside a `prevalidated`
    block (the demo's peers, every other message) pysaml2 validates exactly as before."""
    saml2.sigver.validate_doc_with_schema = _validate_unless_prevalidated
