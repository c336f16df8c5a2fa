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


def counting_choices(choices: list[SchoolChoice]) -> int:
    """How many schools' choices count today: a change that needs confirming sets them back to
    the pseudonym alone until each confirms again."""
    return sum(1 for choice in choices if not choice.needs_confirmation)


@dataclass(frozen=True)
class ChangeImpact:
    """What saving a declaration change does to the schools that chose, said before it saves:
    `confirm` schools' choices stop counting (an attribute added, required-ness changed);
    per attribute with a new purpose, how many schools share it now (each stops until it shares
    it again; attributes no school shares are left out); `schools`: how many schools in all
    must choose again."""

    confirm: int
    purposes: tuple[tuple[str, int], ...]
    schools: int
    # A purpose changed of an attribute the service requires: those schools' logins are refused.
    required: bool

    @property
    def asks(self) -> bool:
        """The page asks to save once more before it saves such a change."""
        return self.schools > 0


def change_impact(
    choices: list[SchoolChoice], diff: DeclarationDiff, declarations: tuple[Declaration, ...]
) -> ChangeImpact:
    confirming: set[str] = set()
    if diff.needs_confirmation:
        confirming = {c.school_id for c in choices if not c.needs_confirmation}
    stopping: set[str] = set()
    purposes = []
    for attribute in diff.purpose_changed:
        sharing = {c.school_id for c in choices if attribute in c.attributes}
        if sharing:
            purposes.append((attribute, len(sharing)))
            stopping |= sharing
    shared = {attribute for attribute, _ in purposes}
    return ChangeImpact(
        confirm=len(confirming),
        purposes=tuple(purposes),
        schools=len(confirming | stopping),
        required=any(d.required for d in declarations if d.attribute in shared),
    )


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
