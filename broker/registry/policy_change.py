"""One entry of a release policy's history: who changed what, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PolicyChange:
    """The policy a school set for a service at one version.

    The history is append-only, so a receipt's policy version can always be explained later:
    which attributes that version released, who decided it and when (`changed_at` is UTC).
    `changed_by` identifies an administrator, never a student.
    """

    school_id: str
    service_id: str
    version: int
    attributes: frozenset[str]
    changed_at: datetime
    changed_by: str
    active: bool = True
    declaration_version: int = 1
