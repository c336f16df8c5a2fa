"""`no_store` (web/no_store.py) is the one place the web layer says `Cache-Control: no-store`:
every answer that must not be kept asks it, so the rule reads the same everywhere and a change to
it (an added `Pragma`, say) is made once. SOAP answers say `no-cache, no-store` (SAML bindings
3.2.3.3) and the demo's stand-ins are outside parties: neither is the broker's page rule."""

from __future__ import annotations

import ast
from pathlib import Path

from flask import Flask
from werkzeug.wrappers import Response

from broker.web.no_store import no_store

WEB = Path(__file__).resolve().parents[2] / "broker" / "web"


def _sets_no_store(tree: ast.AST) -> list[int]:
    """Lines that assign the literal "no-store" to a header themselves."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and node.value.value == "no-store"
    ]


def test_only_the_helper_writes_no_store() -> None:
    found = {
        str(path.relative_to(WEB)): len(lines)
        for path in sorted(WEB.rglob("*.py"))
        if (lines := _sets_no_store(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {"no_store.py": 1}


def test_the_helper_marks_the_answer_and_gives_it_back() -> None:
    with Flask(__name__).app_context():
        answer = Response("page")
        assert no_store(answer) is answer
    assert answer.headers["Cache-Control"] == "no-store"
