"""The one way the broker parses XML it did not write.

No DTD loading, no entity expansion, no network, no huge trees: a DOCTYPE is refused outright by
the callers, and these settings make sure nothing is fetched or expanded even before that check.
"""

from __future__ import annotations

from lxml import etree

SAFE_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=False,
    remove_comments=False,
)


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse with SAFE_PARSER; raises lxml's XMLSyntaxError on malformed input."""
    return etree.fromstring(data, parser=SAFE_PARSER)


def has_doctype(root: etree._Element) -> bool:
    """Whether the parsed document carried a DOCTYPE (named, or an internal subset): the check
    the callers make on the tree, since a byte search for `<!DOCTYPE` misses it in UTF-16."""
    docinfo = root.getroottree().docinfo
    return bool(docinfo.doctype) or docinfo.internalDTD is not None
