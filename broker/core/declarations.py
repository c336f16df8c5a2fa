"""What changed between two versions of a service's declarations, and whether schools must
confirm their choices again because of it.

The rule, for data minimisation: a school agreed to release some of the attributes a service
declared, under the required-ness it was told. Re-confirmation is needed when that agreement no
longer covers the declarations:

- an attribute *added* (the school never judged it; and an attribute removed and declared again
  must not quietly resume under a choice made before it was removed);
- an attribute's *required-ness* changed (optional → required refuses logins of schools that do
  not release it; required → optional may change a school's mind about releasing it).

It is not needed when only purpose texts changed (a full stop, an English translation) or an
attribute was *removed*: the release rule takes policy ∩ declared, so a removal narrows what is
released at the next login without anyone confirming.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.model import Declaration


@dataclass(frozen=True)
class DeclarationDiff:
    """Attribute names, each tuple in the new declarations' order (removed: the old order)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    now_required: tuple[str, ...] = ()
    now_optional: tuple[str, ...] = ()
    purpose_changed: tuple[str, ...] = ()

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
            d.attribute
            for d in kept
            if (d.purpose, d.purpose_en)
            != (before[d.attribute].purpose, before[d.attribute].purpose_en)
        ),
    )


def reconfirm_version_after(
    old: tuple[Declaration, ...], new: tuple[Declaration, ...], *, current: int, new_version: int
) -> int:
    """The service's `reconfirm_version` once `new` is saved as `new_version` over `old`."""
    return new_version if compare_declarations(old, new).needs_confirmation else current
