"""The broker counts logins whose subject scope is spelled otherwise than registered
(login/scope_spelling.py) in `ketenbroker_subject_scope_spelling_total`, with no label: no
school in the metric (its log line names it), never a student's value."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from broker.core.model import School, UpstreamIdentity
from broker.login.login_model import LoginRequest
from tests.support.portal import PortalSite

METRIC = "ketenbroker_subject_scope_spelling_total"
SCHOOL = School(
    "77ZZ00", "Scopeschool", "https://idp.scope.example", "username", scopes=("school.nl",)
)


def test_the_running_broker_counts_each_such_login_without_a_label(tmp_path: Path) -> None:
    """Logins through the running broker's login flow (as its SAML and OIDC backs complete a
    school's answer), the counter the web edge wires in: the registered spelling is not
    counted, each login with another spelling is, however often its line was logged."""
    site = PortalSite(tmp_path)
    try:
        site.registry.add_school(SCHOOL, "")
        flow = site.broker.flow

        def log_in(subject: str) -> None:
            identity = UpstreamIdentity(SCHOOL.id, subject, {"username": (subject,)})
            flow.complete(LoginRequest("leesplank"), identity, time.time())

        before = REGISTRY.get_sample_value(METRIC) or 0.0
        log_in("jan@school.nl")  # the registered spelling: not counted
        assert (REGISTRY.get_sample_value(METRIC) or 0.0) == before
        log_in("jan@School.nl")
        log_in("piet@School.nl")  # logged once, counted each time
        assert REGISTRY.get_sample_value(METRIC) == before + 2
        family = next(f for f in REGISTRY.collect() if f.name == METRIC.removesuffix("_total"))
        assert {tuple(sorted(s.labels)) for s in family.samples} <= {()}
    finally:
        site.registry.close()
