"""What `registry import` prints (cli/import_summary.py): each label counted under its own kind."""

from __future__ import annotations

from broker.cli.import_summary import import_summary
from broker.core.model import Chain
from broker.registry.bulk_import import ImportReport
from broker.registry.snapshot import Snapshot


def test_a_removed_move_record_is_a_chain_move_not_a_chain() -> None:
    report = ImportReport(same=["chain lezen"], removed=["chain move boekenplank"])
    file = Snapshot(chains=(Chain("lezen", "Lezen"),))
    lines = import_summary(report, file, file, done=True)
    assert "chains: 0 added, 0 changed, 1 unchanged" in lines
    assert "chain moves: 0 added, 0 changed, 1 removed, 0 unchanged" in lines


def test_a_stopped_required_attribute_says_that_logins_are_refused() -> None:
    report = ImportReport(
        dropped={"99AA00/boekenplank": frozenset({"given_name", "groups"})},
        dropped_required={"99AA00/boekenplank": frozenset({"groups"})},
    )
    (line, *_) = import_summary(report, Snapshot(), Snapshot(), done=False)
    assert line == (
        "would stop   given_name, groups in policy 99AA00/boekenplank (new purpose); groups "
        "required: logins of 99AA00 to boekenplank would be refused until it shares it again"
    )
