"""Every control shows where the keyboard is: a focus ring that stands out at least 3:1 from
what is around it (WCAG 2.1 2.4.7 focus visible, 1.4.11 non-text contrast; axe measures
neither).

The student's pages (the walk of test_phone_width.py: home, discovery, the notice, the answer to
the platform, my data, the logout pages, the error pages) and a few of the portal's (sign-in,
the receipts with their filter and many links, a service's choice with its checkboxes, the
privacy contact, registering an OIDC client with its text areas, the operator's administrators
with a select) are walked with the Tab key, as a keyboard user walks them, until
the focus comes round again. For each control reached, from its computed style while focused:

- a ring is drawn: an outline (style not none, width above 0) or a box-shadow;
- one of the ring's colours has a contrast ratio of at least 3:1 (WCAG's relative luminance)
  against the colour behind the control (the nearest ancestor's opaque background: the page,
  a card, the blue header), and one against the control's own background when it has one (a
  blue button, a white field): a ring of one light colour fails on a light page, one of one
  dark colour on the blue header.

In English at a desktop's width only: the ring depends on neither, and the walk is long. A run
fails with every control that fails, by page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from tests.browser.test_phone_width import (
    PUBLISHER,
    PUBLISHER_ID,
    SCHOOL,
    NewContext,
    Screen,
    _administrator,
    _measured,
    _wide_registry,
    student_pages,
)
from tests.support.live import LiveDemo, running_demo

MINIMUM_RATIO = 3.0
# More presses than any page has controls (the receipts: some 60): a walk that never comes
# round fails instead of hanging.
MOST_TABS = 400

# The focused element, named, with its ring and the colours next to it; None when the focus is
# on no control of this document (the body between the last control and the first, or inside
# a frame).
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el.tagName === 'IFRAME') return null;
  const path = [];
  for (let node = el; node && node !== document.body; node = node.parentElement) {
    path.unshift(`${node.tagName}:${[...node.parentElement.children].indexOf(node)}`);
  }
  // Chromium gives an opaque colour as rgb(), any other as rgba().
  let behind = 'rgb(255, 255, 255)';  // the canvas, when nothing is painted
  for (let node = el.parentElement; node; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (colour.startsWith('rgb(')) { behind = colour; break; }
  }
  const style = getComputedStyle(el);
  // A link's or a button's words; a field is named by its id.
  const text = el.matches('a, button, summary')
    ? el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 40) : '';
  return {
    path: path.join('/'),
    name: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (el.className && typeof el.className === 'string'
        ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
      + (text ? ` "${text}"` : ''),
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
      ? style.outlineColor : null,
    shadow: style.boxShadow,
    behind,
    own: style.backgroundColor,
  };
}"""

RGB = re.compile(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)")
Colour = tuple[float, float, float]


def _colours(css: str) -> list[tuple[Colour, float]]:
    """Every `rgb()`/`rgba()` colour in a computed value, with its alpha."""
    return [
        ((float(r), float(g), float(b)), float(a) if a else 1.0) for r, g, b, a in RGB.findall(css)
    ]


def _over(colour: Colour, alpha: float, under: Colour) -> Colour:
    """`colour` at `alpha` painted over `under`: the colour the eye sees."""
    r, g, b = (alpha * c + (1 - alpha) * u for c, u in zip(colour, under, strict=True))
    return r, g, b


def _luminance(colour: Colour) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0-255 channels)."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: Colour, other: Colour) -> float:
    """WCAG 2.x contrast ratio, 1 to 21."""
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _hex(colour: Colour) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in colour)


def ring_problems(focused: dict[str, Any]) -> list[str]:
    """What is wrong with one focused control's ring (nothing: an empty list)."""
    (behind, _), *_ = _colours(focused["behind"])
    painted = _colours(focused["outline"] or "") + _colours(focused["shadow"])
    ring = [_over(colour, alpha, behind) for colour, alpha in painted if alpha > 0]
    if not ring:
        return [f"{focused['name']}: no focus ring (outline none, box-shadow {focused['shadow']})"]
    adjacent = {"the background behind it": behind}
    own = _colours(focused["own"])
    if own and own[0][1] == 1.0:
        adjacent["its own background"] = own[0][0]
    problems = []
    for where, colour in adjacent.items():
        best = max(contrast(tone, colour) for tone in ring)
        if best < MINIMUM_RATIO:
            problems.append(
                f"{focused['name']}: ring {', '.join(map(_hex, ring))} against {where} "
                f"{_hex(colour)}: {best:.2f}:1"
            )
    return problems


def test_contrast_ratio_is_wcag_s() -> None:
    """The formula against WCAG's own extremes and the stylesheet's colours (style.css)."""
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((255, 191, 71), (245, 246, 248)) < MINIMUM_RATIO  # yellow on the page
    assert contrast((27, 36, 48), (245, 246, 248)) > MINIMUM_RATIO  # ink on the page
    assert contrast((255, 191, 71), (29, 79, 145)) > MINIMUM_RATIO  # yellow on the header


@dataclass
class Keyboard(Screen):
    """The phone walks' check replaced by a walk with the Tab key; the rings that fail are kept
    under the page's name (`overflowing`, as the phone's misfits) for one report at the end."""

    def check(self, page: Page, name: str) -> None:
        page.wait_for_load_state()
        seen: set[str] = set()
        last = ""
        problems: list[str] = []
        for _ in range(MOST_TABS):
            page.keyboard.press("Tab")
            focused: dict[str, Any] | None = page.evaluate(FOCUSED)
            # Tab steps through a date field's day, month and year: one control, measured once.
            if focused is None or focused["path"] == last:
                continue
            if focused["path"] in seen:
                break
            seen.add(focused["path"])
            last = focused["path"]
            problems += ring_problems(focused)
        else:
            problems.append(f"the focus did not come round in {MOST_TABS} presses of Tab")
        if not seen:
            problems.append("no control reached with Tab")
        if problems:
            self.overflowing[f"{name} ({page.url})"] = "\n  " + "\n  ".join(problems)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("focus-demo")) as demo:
        _wide_registry(demo, tmp_path_factory.mktemp("focus-keys"))
        yield demo


@pytest.fixture
def keyboard(live: LiveDemo, new_context: NewContext) -> Iterator[Keyboard]:
    """Walks pages with the Tab key in English at a desktop's width; at the end, fails with
    every control whose ring is missing or too faint."""
    yield from _measured(Keyboard(live, new_context, {}, "en", phone=False))


def test_student_pages_show_the_focus(keyboard: Keyboard) -> None:
    student_pages(keyboard)


def test_portal_pages_show_the_focus(keyboard: Keyboard) -> None:
    school = {
        "school: receipts": f"{SCHOOL}/receipts",
        "school: a service with a history": f"{SCHOOL}/services/leesplank",
        "school: who receives what": f"{SCHOOL}/overview",
    }
    _administrator(keyboard, AdminRole.SCHOOL, DEMO_SCHOOL_ID, school)
    publisher = {
        "publisher: register an OIDC client": f"{PUBLISHER}/new-oidc",
        "publisher: services": PUBLISHER,
    }
    _administrator(keyboard, AdminRole.PUBLISHER, PUBLISHER_ID, publisher)
    operator = {"operator: administrators": "/portal/operator/admins"}
    _administrator(keyboard, AdminRole.OPERATOR, None, operator)
