"""Between the declarations form and the registry: the declarations a form holds, the form
filled from a service, what a change will mean for the schools that chose, and the history's
lines saying what each version changed (core/declarations.py)."""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.catalogue import CATALOGUE
from broker.core.declarations import DeclarationDiff, compare_declarations
from broker.core.model import Declaration, Service
from broker.registry.portal_reading import DeclarationChange, SchoolChoice
from broker.web.portal.service_forms import ServiceForm


def declarations_of(form: ServiceForm) -> tuple[Declaration, ...]:
    chosen = []
    for name in CATALOGUE:
        need = form[f"need_{name}"].data
        if need:
            purpose = (form[f"purpose_{name}"].data or "").strip()
            english = (form[f"purpose_en_{name}"].data or "").strip()
            chosen.append(Declaration(name, purpose, need == "required", english))
    return tuple(chosen)


def prefill(service: Service) -> dict[str, str]:
    data = {"naming": service.naming.value}
    for d in service.declarations:
        data[f"need_{d.attribute}"] = "required" if d.required else "optional"
        data[f"purpose_{d.attribute}"] = d.purpose
        data[f"purpose_en_{d.attribute}"] = d.purpose_en
    return data


def schools_to_confirm(choices: list[SchoolChoice]) -> int:
    """How many schools' choices count today: a change that needs confirming sets them back to
    the pseudonym alone until each confirms again."""
    return sum(1 for choice in choices if not choice.needs_confirmation)


@dataclass(frozen=True)
class HistoryLine:
    change: DeclarationChange
    # None for a service's first version (nothing to compare with).
    diff: DeclarationDiff | None


def history_lines(history: list[DeclarationChange]) -> list[HistoryLine]:
    """Newest first, each version with what it changed against the one before."""
    lines = []
    previous: DeclarationChange | None = None
    for change in history:
        diff = None
        if previous is not None:
            diff = compare_declarations(previous.declarations, change.declarations)
        lines.append(HistoryLine(change, diff))
        previous = change
    return lines[::-1]
