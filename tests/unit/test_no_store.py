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


def _says_no_store(tree: ast.AST) -> list[int]:
    """Lines with a string constant that says no-store in any form (a header assignment,
    `headers.set`, a `headers={...}` argument, "private, no-store"); docstrings aside. An
    attribute `no_store = True` (werkzeug's cache_control) is counted too."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "no-store" in node.value
            and id(node) not in docstrings
        )
        or (isinstance(node, ast.Attribute) and node.attr == "no_store")
    ]


# SOAP answers: SAML bindings 3.2.3.3's own header, not the page rule.
OWN_RULE = {"no_store.py": 1, "soap_errors.py": 1}


def test_only_the_helper_writes_no_store() -> None:
    found = {
        str(path.relative_to(WEB)): len(lines)
        for path in sorted(WEB.rglob("*.py"))
        if (lines := _says_no_store(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == OWN_RULE


def test_the_check_sees_every_way_of_saying_it() -> None:
    source = """
def answer(response):
    response.headers.set("Cache-Control", "no-store")
    response.headers["Cache-Control"] = "private, no-store"
    response.cache_control.no_store = True
    return Response("x", headers={"Cache-Control": "no-store"})
"""
    assert len(_says_no_store(ast.parse(source))) == 4


def test_the_helper_marks_the_answer_and_gives_it_back() -> None:
    with Flask(__name__).app_context():
        answer = Response("page")
        assert no_store(answer) is answer
    assert answer.headers["Cache-Control"] == "no-store"
