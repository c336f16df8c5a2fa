"""Everything wrong with a publisher's SP metadata or a school's IdP metadata, as a list (the
portals show all at once).

`metadata_check.sp_entity_id` and `idp_entity_id` stop at the first problem, which suits the
CLI; an administrator uploading a file is better served by every problem in one go. The checks
are the same, and so are the messages: each problem is a `MetadataInvalid`, whose `detail` is
English (the CLI, the registry import) and whose `message` and `params` the portals translate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Generic, TypeVar

from lxml import etree

from broker.saml.metadata_check import (
    MD,
    NO_REDIRECT_SSO,
    NO_SIGNING_KEY,
    MetadataInvalid,
    RefusedEndpoint,
    encryption_problem,
    has_redirect_sso,
    has_signing_key,
    idp_entity_id,
    insecure_endpoints,
    parse_entity,
    sp_entity_id,
)

Problems = tuple[str | None, list[MetadataInvalid]]
T = TypeVar("T")


def sp_metadata_problems(xml: str, *, encrypting: bool = True) -> Problems:
    """(entity id, problems); the entity id only when there are no problems. `encrypting`:
    as `sp_entity_id` takes it (False: the service's assertion encryption is `off`)."""
    return _problems(
        xml,
        partial(sp_entity_id, encrypting=encrypting),
        "SPSSODescriptor",
        partial(_sp_problems, encrypting=encrypting),
    )


def idp_metadata_problems(xml: str) -> Problems:
    """`sp_metadata_problems` for a school's identity provider."""
    return _problems(xml, idp_entity_id, "IDPSSODescriptor", _idp_problems)


def _sp_problems(
    entity_id: str, descriptor: etree._Element, *, encrypting: bool = True
) -> list[MetadataInvalid]:
    problems = []
    if not has_signing_key(descriptor, "sp"):
        problems.append(MetadataInvalid(NO_SIGNING_KEY, entity_id=entity_id))
    problems += insecure_endpoints(entity_id, descriptor, "sp")
    encryption = encryption_problem(entity_id, descriptor) if encrypting else None
    if encryption is not None:
        problems.append(encryption)
    return problems


def _idp_problems(entity_id: str, descriptor: etree._Element) -> list[MetadataInvalid]:
    problems = []
    if not has_signing_key(descriptor, "idp"):
        problems.append(MetadataInvalid(NO_SIGNING_KEY, entity_id=entity_id))
    if not has_redirect_sso(descriptor):
        problems.append(MetadataInvalid(NO_REDIRECT_SSO, entity_id=entity_id))
    problems += insecure_endpoints(entity_id, descriptor, "idp")
    return problems


def _problems(
    xml: str,
    check: Callable[[str], str],
    tag: str,
    more: Callable[[str, etree._Element], list[MetadataInvalid]],
) -> Problems:
    """The first problem `check` finds, then the others `more` finds in the descriptor (when
    the document has one to look into)."""
    try:
        return check(xml), []
    except MetadataInvalid as first:
        problems = [first]
    try:
        root = parse_entity(xml)
    except MetadataInvalid:
        return None, problems
    descriptor = root.find(f"{{{MD}}}{tag}")
    if descriptor is None:
        return None, problems
    for problem in more(root.get("entityID", ""), descriptor):
        if all(problem.detail != known.detail for known in problems):
            problems.append(problem)
    return None, problems


# How `school list` and `publisher list` say it (docs/cli.md); the portals word it themselves.
ENDPOINT_MARKS: dict[RefusedEndpoint, str] = {
    "sso": "SSO URL NOT https: logins refused",
    "acs": "ACS URL NOT https: logins refused",
    "slo": "SLO URL NOT https: no logout messages sent",
}


def refused_endpoints(xml: str | None, role: str) -> list[RefusedEndpoint]:
    """Which endpoints the login and logout paths refuse to send to in a copy the registry
    holds (one registered before intake checked its SSO, ACS and SLO URLs, kept until it is
    read again): the rule of intake (`insecure_endpoints`) on the copy in force, in the order
    of ENDPOINT_MARKS; [] when nothing (or no readable copy)."""
    if not xml:
        return []
    try:
        root = parse_entity(xml)
    except MetadataInvalid:
        return []
    descriptor = root.find(f"{{{MD}}}{'IDPSSODescriptor' if role == 'idp' else 'SPSSODescriptor'}")
    if descriptor is None:
        return []
    # By the kind each problem carries, not its wording: a new or reworded message must not
    # turn the listings and portal pages that call this into errors.
    found = {problem.kind for problem in insecure_endpoints("", descriptor, role)}
    return [kind for kind in ENDPOINT_MARKS if kind in found]


def endpoint_marks(xml: str | None, role: str) -> list[str]:
    """`refused_endpoints` in the words of `school list` and `publisher list`."""
    return [ENDPOINT_MARKS[kind] for kind in refused_endpoints(xml, role)]


class CopyFindings(Generic[T]):
    """What `read` finds in each copy of a metadata map (entity id → copy in force), each
    distinct copy read once and remembered by its text until a map no longer holds it.

    The operator's attention report (operations/attention.py) looks at every school's and service's
    copy on each view: thousands of copies, most unchanged between views (a registry change or
    a source's refresh changes a few). Parsing each every time took most of the page's time;
    a copy's text decides its findings, so a copy seen before costs a dictionary lookup."""

    def __init__(self, read: Callable[[str], T]) -> None:
        self._read = read
        self._known: dict[str, T] = {}

    def of(self, metadata: Mapping[str, str]) -> dict[str, T]:
        known, kept = self._known, {}
        found = {}
        for entity_id, xml in metadata.items():
            finding = known[xml] if xml in known else self._read(xml)
            kept[xml] = finding
            found[entity_id] = finding
        # Only the copies in force stay: the memo never outgrows one map.
        self._known = kept
        return found


def endpoint_findings(role: str) -> CopyFindings[tuple[RefusedEndpoint, ...]]:
    """`refused_endpoints` of every entity of a metadata map."""
    return CopyFindings(lambda xml: tuple(refused_endpoints(xml, role)))
