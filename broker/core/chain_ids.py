"""The one shape of a chain id, for every way a chain is registered (CLI, registry import,
operator portal), checked where the registry writes one (pseudonyms.md, "Derivation").

A chain id is an input of the chain pseudonym, and so is `service:<service id>` for a service in
no chain (model.py `pseudonym_chain`). A chain id of that form would give its services the very
pseudonyms of that service: the chains would no longer be unlinkable. Lower-case letters, digits
and hyphens cannot take that form (no ':'), and leave no two spellings of one id.

Ids registered before this rule are never renamed: the id is in every pseudonym of its chain, so
a new id would be a new pseudonym for every student. The operator's attention report names them
(attention.py `chains_id_not_plain`) instead.
"""

from __future__ import annotations

import re

from broker.core.errors import BadRequest

# Also the operator portal's shape of a publisher's and a service's id (web/portal/field_checks.py).
IDENTIFIER = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
IDENTIFIER_RULE = (
    "lower-case letters, digits and hyphens, starting with a letter or digit (at most 63)"
)


def chain_id_problem(chain_id: str) -> str | None:
    """Why `chain_id` may not be a new chain's id, or None when it may."""
    if IDENTIFIER.match(chain_id):
        return None
    if ":" in chain_id:
        return (
            f"chain id {chain_id!r} has a ':': a chain id must be {IDENTIFIER_RULE}, so that it "
            "can never equal the pseudonym input of a service in no chain (service:<id>)"
        )
    return f"chain id {chain_id!r} must be {IDENTIFIER_RULE}"


class ChainIdRefused(BadRequest):
    """A new chain's id that breaks the rule (module note); nothing was registered."""

    code = "chain_id_refused"
    public_message = "Use lower-case letters, digits and hyphens (at most 63)."


def check_chain_id(chain_id: str) -> None:
    """Refuse (`ChainIdRefused`) a new chain's id that breaks the rule."""
    if (problem := chain_id_problem(chain_id)) is not None:
        raise ChainIdRefused(problem)
