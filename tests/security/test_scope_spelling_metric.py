"""The broker counts logins whose subject scope is spelled otherwise than registered
(login/scope_spelling.py) in `ketenbroker_subject_scope_spelling_total`, with no label: no
school in the metric (its log line names it), never a student's value."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from broker.core.model import School
from tests.support.portal import PortalSite

METRIC = "ketenbroker_subject_scope_spelling_total"


def test_the_running_broker_counts_each_such_login_without_a_label(tmp_path: Path) -> None:
    site = PortalSite(tmp_path)
    try:
        school = School(
            "77ZZ00", "Scopeschool", "https://idp.scope.example", "username", scopes=("school.nl",)
        )
        before = REGISTRY.get_sample_value(METRIC) or 0.0
        spellings = site.broker.flow.scope_spellings
        spellings.note(school, "jan@school.nl")  # the registered spelling: not counted
        spellings.note(school, "jan@School.nl")
        spellings.note(school, "piet@School.nl")  # logged once, counted each time
        assert REGISTRY.get_sample_value(METRIC) == before + 2
        family = next(f for f in REGISTRY.collect() if f.name == METRIC.removesuffix("_total"))
        assert {tuple(sorted(s.labels)) for s in family.samples} <= {()}
    finally:
        site.registry.close()
