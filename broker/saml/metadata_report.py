"""Everything wrong with a publisher's SP metadata, as a list (the portal shows all at once).

`metadata_check.sp_entity_id` stops at the first problem, which suits the CLI; a publisher
uploading a file is better served by every problem in one go. The checks are the same, and so
are the messages: each problem is a `MetadataInvalid`, whose `detail` is English (the CLI, the
registry import) and whose `message` and `params` the portal translates.
"""

from __future__ import annotations

from lxml import etree

from broker.core.endpoints import is_acceptable_endpoint
from broker.saml.metadata_check import (
    ACS_NOT_HTTPS,
    MAX_METADATA_BYTES,
    MD,
    NO_SIGNING_KEY,
    POST,
    MetadataInvalid,
    sp_entity_id,
)
from broker.saml.xml_parsing import parse_untrusted


def sp_metadata_problems(xml: str) -> tuple[str | None, list[MetadataInvalid]]:
    """(entity id, problems); the entity id only when there are no problems."""
    try:
        return sp_entity_id(xml), []
    except MetadataInvalid as first:
        problems = [first]
    raw = xml.encode()
    if len(raw) > MAX_METADATA_BYTES or b"<!DOCTYPE" in raw:
        return None, problems
    try:
        root = parse_untrusted(raw)
    except etree.XMLSyntaxError:
        return None, problems
    descriptor = root.find(f"{{{MD}}}SPSSODescriptor")
    if descriptor is None:
        return None, problems
    entity_id = root.get("entityID", "")
    if descriptor.find(f"{{{MD}}}KeyDescriptor") is None:
        _add(problems, MetadataInvalid(NO_SIGNING_KEY, entity_id=entity_id))
    for endpoint in descriptor.findall(f"{{{MD}}}AssertionConsumerService"):
        location = endpoint.get("Location", "")
        if endpoint.get("Binding") == POST and not is_acceptable_endpoint(location):
            _add(problems, MetadataInvalid(ACS_NOT_HTTPS, url=location))
    return None, problems


def _add(problems: list[MetadataInvalid], problem: MetadataInvalid) -> None:
    if all(problem.detail != known.detail for known in problems):
        problems.append(problem)
