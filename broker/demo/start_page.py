"""The demo's start page: every pairing of publisher and school protocol, one click each.

Served by the broker app under /demo, only in `ketenbroker demo`. It gets plain links from the
CLI, so the demo package still knows nothing of the broker's insides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, render_template

_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Pairing:
    publisher: str
    publisher_protocol: str
    school: str
    school_protocol: str
    url: str


def start_page(pairings: tuple[Pairing, ...], others: tuple[tuple[str, str], ...]) -> Blueprint:
    """A blueprint with the page at /demo; `others` are further (name, URL) links."""
    page = Blueprint("demo_start", __name__, template_folder=str(_TEMPLATES))

    @page.get("/demo")
    def show() -> str:
        return render_template("demo_start.html", pairings=pairings, others=others)

    return page
