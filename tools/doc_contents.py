"""The contents list at the top of a long document: its `##` and `###` headings, linked.

A long reference (operations.md is read by an operator looking for one procedure at a bad
moment) needs a map. Kept between two markers and written by this script, not by hand, so it
never falls behind the headings; tests/unit/test_doc_links.py fails when it has.

    python tools/doc_contents.py            # rewrite the lists of every document that has one
    python tools/doc_contents.py --check    # exit 1 and name each list that is out of date

A document gets a list by holding the two markers (START and END below, each on its own line).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- contents: written by tools/doc_contents.py -->"
END = "<!-- /contents -->"
_FENCED = re.compile(r"```.*?```", re.S)


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation (backticks too) dropped, spaces to
    hyphens (the rule tests/unit/test_doc_links.py checks links against)."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title.strip().lower()))


def contents(text: str) -> str:
    """The list for `text`: its `## ` headings outside code blocks, in order, each with its
    `### ` headings below it."""
    lines = []
    for line in _FENCED.sub("", text).splitlines():
        level, _, title = line.partition(" ")
        if level in ("##", "###") and title.strip():
            indent = "  " if level == "###" else ""
            lines.append(f"{indent}- [{title.strip()}](#{anchor(title)})")
    return "\n".join([START, "**Contents**", "", *lines, END])


def refreshed(text: str) -> str:
    """`text` with its list rewritten; unchanged without markers."""
    begin, end = text.find(START), text.find(END)
    if begin < 0 or end < begin:
        return text
    return text[:begin] + contents(text) + text[end + len(END) :]


def documents() -> list[Path]:
    return sorted(p for p in (ROOT / "docs").glob("*.md") if START in p.read_text("utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which lists are stale")
    args = parser.parse_args()
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new = refreshed(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{path}: contents {'out of date' if args.check else 'rewritten'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
