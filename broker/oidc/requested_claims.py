"""The provider's side of claims: what a publisher asks for (scopes, the `claims` parameter) in
canonical attributes, and released attributes as OIDC claims (attributes.md). Pure functions.

What a publisher asked for narrows the release exactly as a SAML service's RequestedAttribute
list does; what comes back is only what the release rule allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from broker.core.catalogue import CATALOGUE
from broker.core.errors import BadRequest

OPENID = "openid"
# The pseudonym under the chain's previous key, during a rotation's window (pseudonyms.md).
PREVIOUS_SUB = "previous_sub"
# Claims that carry several values; every other claim is a single string (OIDC Core 5.1).
MULTI_VALUED = frozenset({"groups", "eduperson_affiliation"})
MAX_CLAIMS_PARAMETER = 4096

_BY_CLAIM = {attribute.claim: attribute.canonical for attribute in CATALOGUE.values()}


def scopes_supported() -> list[str]:
    scopes = {attribute.scope for attribute in CATALOGUE.values()}
    return [OPENID, *sorted(scopes)]


def claims_supported() -> list[str]:
    protocol = {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "sid"}
    # `previous_sub`: only for a client whose chain is in a pseudonym key rotation's window.
    protocol.add(PREVIOUS_SUB)
    return sorted(protocol | set(_BY_CLAIM))


def parse_claims_parameter(raw: str | None) -> dict[str, Any]:
    """The `claims` request parameter (OIDC Core 5.5) as a dict; a malformed one is refused."""
    if not raw:
        return {}
    if len(raw) > MAX_CLAIMS_PARAMETER:
        raise BadRequest("The claims parameter is too long.", code="invalid_claims")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: nested deeper than the interpreter's stack, within the length cap.
        raise BadRequest("The claims parameter is not JSON.", code="invalid_claims") from None
    if not isinstance(value, dict) or not all(
        key in ("id_token", "userinfo") and (member is None or isinstance(member, dict))
        for key, member in value.items()
    ):
        raise BadRequest(
            "The claims parameter may hold only id_token and userinfo objects.",
            code="invalid_claims",
        )
    return value


def requested_attributes(scopes: Iterable[str], claims: Mapping[str, Any]) -> frozenset[str]:
    """Canonical attributes asked for by scope or by name in the `claims` parameter."""
    wanted = set(scopes)
    names = {a.canonical for a in CATALOGUE.values() if a.scope in wanted}
    for member in claims.values():
        for claim in member or {}:
            canonical = _BY_CLAIM.get(claim)
            if canonical is not None:
                names.add(canonical)
    return frozenset(names)


def requested_acr(claims: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    """(`acr` values asked for in the `claims` parameter, whether they are essential)."""
    values: list[str] = []
    essential = False
    for member in claims.values():
        request = (member or {}).get("acr")
        if not isinstance(request, dict):
            continue
        essential = essential or request.get("essential") is True
        if isinstance(request.get("value"), str):
            values.append(request["value"])
        listed = request.get("values")
        if isinstance(listed, list):
            values.extend(v for v in listed if isinstance(v, str))
    return tuple(values), essential


def requested_subjects(claims: Mapping[str, Any]) -> frozenset[str] | None:
    """The `sub` values the `claims` parameter asks for (Core 5.5.1: `value`, or `values`, in
    the `id_token` or `userinfo` member): the provider may answer only for such a student. Where
    several members name values, a student must satisfy each. None: no value asked for (a
    bare `"sub": null` or `{"essential": true}` only asks for the claim, which is always sent)."""
    wanted: frozenset[str] | None = None
    for member in claims.values():
        request = (member or {}).get("sub")
        if not isinstance(request, dict):
            continue
        for name in ("value", "values"):
            if name not in request:
                continue
            given = request[name]
            listed = [given] if name == "value" else given
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                raise BadRequest(
                    f"In the claims parameter, sub {name} must be text.", code="invalid_claims"
                )
            wanted = frozenset(listed) if wanted is None else wanted & frozenset(listed)
    return wanted


def claims_within(claims: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """`claims` less those of catalogue attributes whose scope is not among `scopes`, however
    they were asked for: what a grant narrowed to `scopes` still releases. Claims of no
    catalogue attribute (`previous_sub`, a pseudonym as `sub` is) stay."""
    kept = set(scopes)
    return {
        claim: value
        for claim, value in claims.items()
        if claim not in _BY_CLAIM or CATALOGUE[_BY_CLAIM[claim]].scope in kept
    }


def release_claims(attributes: Mapping[str, tuple[str, ...]]) -> dict[str, str | list[str]]:
    """Released canonical attributes as OIDC claims (single-valued claims take the first)."""
    claims: dict[str, str | list[str]] = {}
    for canonical, values in attributes.items():
        attribute = CATALOGUE.get(canonical)
        if attribute is None or not values:
            continue
        claim = attribute.claim
        claims[claim] = list(values) if claim in MULTI_VALUED else values[0]
    return claims


def claims_as_attributes(claims: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Claims that `release_claims` made, as the canonical attributes they came from (its
    inverse): what a login delivered, for the release rule to be applied to again. Claims of no
    catalogue attribute (`previous_sub`) and values of another shape are left out."""
    attributes: dict[str, tuple[str, ...]] = {}
    for claim, value in claims.items():
        canonical = _BY_CLAIM.get(claim)
        if canonical is None:
            continue
        if isinstance(value, str):
            attributes[canonical] = (value,)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            attributes[canonical] = tuple(value)
    return attributes
