"""core/chain_ids.py: the one shape of a new chain's id (the portal's, the registry's), which a
`service:<id>` chain input can never take."""

from __future__ import annotations

import pytest

from broker.core.chain_ids import ChainIdRefused, chain_id_problem, check_chain_id
from broker.core.model import pseudonym_chain


@pytest.mark.parametrize("chain_id", ["leermiddelen", "toetsen", "po-2", "7", "a" * 63])
def test_lower_case_letters_digits_and_hyphens_pass(chain_id: str) -> None:
    assert chain_id_problem(chain_id) is None
    check_chain_id(chain_id)


@pytest.mark.parametrize(
    "chain_id", ["", "Leermiddelen", "leer_middelen", "leer.middelen", "-po", "a" * 64, "é"]
)
def test_other_shapes_are_refused(chain_id: str) -> None:
    problem = chain_id_problem(chain_id)
    assert problem == (
        f"chain id {chain_id!r} must be lower-case letters, digits and hyphens, starting with a "
        "letter or digit (at most 63)"
    )
    with pytest.raises(ChainIdRefused):
        check_chain_id(chain_id)


def test_no_chain_id_can_be_a_services_own_chain_input() -> None:
    """The review's collision: a chain `service:los` derived the pseudonyms of los itself."""
    own = pseudonym_chain(None, "los")
    assert own == "service:los"
    problem = chain_id_problem(own)
    assert problem is not None and "has a ':'" in problem
    with pytest.raises(ChainIdRefused) as refused:
        check_chain_id(own)
    assert refused.value.code == "chain_id_refused" and refused.value.status == 400
