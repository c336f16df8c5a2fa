"""Code and configuration blocks of the docs, read for tests that check what the docs promise
(docs/publishers.md's settings per SP software) rather than a copy of it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

PUBLISHERS_DOC = Path(__file__).resolve().parents[2] / "docs" / "publishers.md"
# A fenced block, also one indented under a list item: its fence's indentation, its language.
_FENCED = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)


def doc_snippet(language: str, marker: str, document: Path = PUBLISHERS_DOC) -> str:
    """The one fenced `language` block of `document` that holds `marker`, dedented."""
    found = [
        textwrap.dedent(match.group(3))
        for match in _FENCED.finditer(document.read_text(encoding="utf-8"))
        if match.group(2) == language and marker in match.group(3)
    ]
    assert len(found) == 1, f"{len(found)} {language} blocks in {document.name} hold {marker}"
    return found[0]
