"""The operator's attention report (core/attention.py) from the registry and the metadata in
force: what the operator portal's "Needs attention" page and `ketenbroker registry problems`
show, both from `attention_report` here.

The facts come from where their rules already live: the metadata in force from the registry
(`school_metadata`, `service_metadata`: a source's copy, else the registered one), what each copy
names that the login and logout paths refuse from saml/metadata_report.py `refused_endpoints`,
the sources' states from `source_states` (what `metadata status` and the
`ketenbroker_metadata_source_state` gauge show), the secrets' counts from the registry (what
`registry status` shows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from broker.config import Settings
from broker.core.attention import SHOWN, AttentionReport, Facts
from broker.core.attention import attention_report as report_of
from broker.registry import SqlRegistry
from broker.saml.metadata_report import EndpointFindings
from broker.web.metadata_status import source_states


@dataclass
class Findings:
    """The parsed copies' findings a process keeps between reports (one per app, one per
    command run)."""

    idp: EndpointFindings = field(default_factory=lambda: EndpointFindings("idp"))
    sp: EndpointFindings = field(default_factory=lambda: EndpointFindings("sp"))


def attention_report(
    settings: Settings,
    registry: SqlRegistry,
    now: datetime,
    findings: Findings | None = None,
    shown: int = SHOWN,
) -> AttentionReport:
    """What needs the operator's attention now. Reads the registry (a few queries) and opens
    no secret but the schools' client secrets, as every load of the schools does (an
    unreadable one is a finding)."""
    findings = findings or Findings()
    facts = Facts(
        schools=registry.schools(),
        services=registry.all_services(),
        naming_idps=registry.idps_naming_school(),
        idp_endpoints=findings.idp.of(registry.school_metadata()),
        sp_endpoints=findings.sp.of(registry.service_metadata(approved_only=False)),
        sources=source_states(settings, registry, now),
        secrets_in_clear=registry.secrets_in_clear(),
        sealed_only=registry.sealed_only_since() is not None,
    )
    return report_of(facts, shown)
