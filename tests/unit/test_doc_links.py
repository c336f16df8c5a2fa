"""Every relative link in the README and the docs leads to a file that exists (and, with a
#fragment, to a heading of that file): a publisher's engineer following the docs never hits a
dead end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "docker" / "README.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
# [text](target) and ![alt](target), not inside `code`; the target up to a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCED = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"`[^`\n]*`")
# A document named in prose without a link, such as "(pseudonyms.md)": it must exist too.
MENTION = re.compile(r"(?<![\w/.-])((?:\.\./)?(?:[\w-]+/)*[\w-]+\.md)\b")


def _prose(document: Path) -> str:
    return CODE.sub("", FENCED.sub("", document.read_text(encoding="utf-8")))


def _anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation (backticks too) dropped, spaces to
    hyphens."""
    anchors = set()
    for line in FENCED.sub("", document.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def _links(document: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(document)) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in _links(document):
        path, _, fragment = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading #{fragment}")
    for named in MENTION.findall(LINK.sub("", _prose(document))):
        # Named from the document's folder or, as "docs/x.md", from the repository's root.
        if not any((base / named).exists() for base in (document.parent, ROOT)):
            broken.append(f"{named}: named, but no such file")
    assert not broken, f"{document.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_contents_lists_follow_the_headings() -> None:
    """A document's contents list (tools/doc_contents.py) names its headings as they are now:
    a heading added, renamed or moved without running the tool fails here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "doc_contents.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
