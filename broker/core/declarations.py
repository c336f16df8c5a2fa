"""What changed between two versions of a service's declarations, and what schools must do
about it.

The rule, for data minimisation: a school agreed to release some of the attributes a service
declared, for the purposes and under the required-ness it was told. When the declarations no
longer match that agreement:

- an attribute *added* (the school never judged it; and an attribute removed and declared again
  must not quietly resume under a choice made before it was removed), or an attribute's
  *required-ness* changed (optional → required refuses logins of schools that do not release it;
  required → optional may change a school's mind about releasing it): every school's earlier
  choice stops counting until the school confirms it (`needs_confirmation`);
- an attribute's *purpose* changed (its Dutch text states another purpose, core/purposes.py):
  that attribute is taken out of the choice of every school that released it, the rest of the
  choice stays released, until the school ticks it again (`purpose_changed`; the registry writes
  that narrowed choice as a new version of each such school's policy, so the release rule stays
  school policy ∩ declared).

Nothing is needed when the texts changed without a new purpose (a full stop, a capital, an
English translation: `reworded`) or an attribute was *removed*: the release rule takes
policy ∩ declared, so a removal narrows what is released at the next login without anyone
confirming.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.model import Declaration
from broker.core.purposes import same_purpose


@dataclass(frozen=True)
class DeclarationDiff:
    """Attribute names, each tuple in the new declarations' order (removed: the old order)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    now_required: tuple[str, ...] = ()
    now_optional: tuple[str, ...] = ()
    # A new purpose (core/purposes.py): schools that released it stop until they tick it again.
    purpose_changed: tuple[str, ...] = ()
    # New texts for the same purpose (or a new English translation): every choice kept.
    reworded: tuple[str, ...] = ()

    @property
    def needs_confirmation(self) -> bool:
        """Schools' earlier choices stop counting (module docstring)."""
        return bool(self.added or self.now_required or self.now_optional)

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.now_required
            or self.now_optional
            or self.purpose_changed
            or self.reworded
        )


def compare_declarations(
    old: tuple[Declaration, ...], new: tuple[Declaration, ...]
) -> DeclarationDiff:
    """How `new` differs from `old` (the order of the attributes does not count)."""
    before = {d.attribute: d for d in old}
    after = {d.attribute: d for d in new}
    kept = [d for d in new if d.attribute in before]
    return DeclarationDiff(
        added=tuple(d.attribute for d in new if d.attribute not in before),
        removed=tuple(d.attribute for d in old if d.attribute not in after),
        now_required=tuple(
            d.attribute for d in kept if d.required and not before[d.attribute].required
        ),
        now_optional=tuple(
            d.attribute for d in kept if not d.required and before[d.attribute].required
        ),
        purpose_changed=tuple(
            d.attribute for d in kept if not same_purpose(before[d.attribute], d)
        ),
        reworded=tuple(
            d.attribute
            for d in kept
            if same_purpose(before[d.attribute], d)
            and (d.purpose, d.purpose_en)
            != (before[d.attribute].purpose, before[d.attribute].purpose_en)
        ),
    )
