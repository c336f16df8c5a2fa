"""The import direction of architecture.md and house-style.md, checked on every module.

Every module under broker/ is parsed with `ast` (nothing is imported), its imports collected with
line numbers (also those inside functions and `if TYPE_CHECKING:`, and `importlib.import_module`
with a literal name), and each rule lists the offending module:line pairs when it fails.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = ROOT / "broker"
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. broker.saml.front
    line: int
    target: str  # the imported module, e.g. saml2.server or broker.core.errors

    @property
    def top(self) -> str:
        return self.target.split(".")[0]

    @property
    def part(self) -> str | None:
        """For a broker import: the part it lands in (core, saml, config, ...)."""
        pieces = self.target.split(".")
        if pieces[0] != "broker":
            return None
        return pieces[1] if len(pieces) > 1 else ""

    def __str__(self) -> str:
        path = self.module.replace(".", "/")
        return f"{path}.py:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def imports_in(source: str, module: str, is_package: bool) -> list[Import]:
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(module, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(module, node.lineno, target))
            # `from broker.saml import firewall` lands in broker.saml.firewall, not only the
            # package; `from urllib import request` in urllib.request (the stdlib rule needs it).
            if target.startswith("broker") or target.split(".")[0] in STDLIB:
                found.extend(
                    Import(module, node.lineno, f"{target}.{alias.name}")
                    for alias in node.names
                    if alias.name != "*"
                )
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in ("import_module", "__import__")
                )
            )
        ):
            found.append(Import(module, node.lineno, node.args[0].value))
    return found


def collect(root: Path = BROKER) -> list[Import]:
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path)
        found.extend(
            imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        )
    return found


ALL_IMPORTS = collect()


# -- the rules ---------------------------------------------------------------------------------
Check = Callable[[Import], bool]  # True when the import is allowed


def in_parts(*parts: str) -> Callable[[str], bool]:
    return lambda module: part_of(module) in parts


def only(
    broker_parts: Iterable[str], third_party: Iterable[str], broker_modules: Iterable[str] = ()
) -> Check:
    """Allowed: the stdlib, the listed broker parts (or exact broker modules), the listed
    third-party top-level packages. Everything else is a wrong-way arrow."""
    parts = frozenset(broker_parts)
    modules = frozenset(broker_modules)
    libraries = frozenset(third_party)

    def check(imp: Import) -> bool:
        if imp.part is not None:
            if imp.part in parts:
                return True
            # A named module, a name inside it, or a package on its way (`from broker.saml
            # import xmlsig` also names the package broker.saml, whose __init__ runs anyway).
            return any(
                imp.target == m or imp.target.startswith(m + ".") or m.startswith(imp.target + ".")
                for m in modules
            )
        return imp.top in STDLIB or imp.top in libraries

    return check


def none_of(modules: Iterable[str], exceptions: Iterable[tuple[str, str]] = ()) -> Check:
    """Forbidden: the listed modules and their submodules, except the (importing module,
    module) pairs in `exceptions`."""
    names = tuple(modules)
    allowed = frozenset(exceptions)

    def check(imp: Import) -> bool:
        hit = next((n for n in names if imp.target == n or imp.target.startswith(n + ".")), None)
        return hit is None or (imp.module, hit) in allowed

    return check


def library_only_in(libraries: Iterable[str], *parts: str) -> Check:
    names = frozenset(libraries)
    return lambda imp: imp.top not in names or part_of(imp.module) in parts


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[str], bool]  # to the importing module
    allowed: Check


FLASK_FAMILY = ("flask", "werkzeug", "flask_babel", "flask_wtf")
# The standard library's I/O: files, processes, the network, databases. The pure core is handed
# what it needs (house-style.md); `io` stays allowed for in-memory StringIO/BytesIO (the CSV
# export), and a function that opened a file with `io.open` would still be caught in review.
STDLIB_IO = (
    "os",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "fileinput",
    "mmap",
    "fcntl",
    "socket",
    "ssl",
    "select",
    "selectors",
    "socketserver",
    "asyncio",
    "subprocess",
    "multiprocessing",
    "urllib.request",
    "http.client",
    "http.server",
    "http.cookiejar",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "xmlrpc",
    "sqlite3",
    "dbm",
    "shelve",
    "webbrowser",
)
CORE_IO_EXCEPTIONS = (
    # The signing key schedule names the key files of a generation: `Path` as a value type in
    # a frozen dataclass; nothing in broker.core reads or writes them (broker/keys.py does).
    ("broker.core.key_schedule", "pathlib"),
)
DEMO_MAY_USE = ("broker.saml.xmlsig", "broker.certificates")

RULES = [
    Rule(
        # idna: pure tables and code, no I/O: an internationalised host in the xn-- form
        # browsers use (UTS #46, core/endpoints.py). The stdlib's encodings.idna is IDNA 2003,
        # which names another domain for some (`faß.de` → `fass.de`, browsers: xn--fa-hia.de).
        "broker.core imports only the stdlib, cryptography, idna and broker.core",
        in_parts("core"),
        only({"core"}, {"cryptography", "idna"}),
    ),
    Rule(
        "broker.core does no I/O: no file, process, network or database module of the stdlib",
        in_parts("core"),
        none_of(STDLIB_IO, CORE_IO_EXCEPTIONS),
    ),
    Rule(
        "broker.login imports only broker.core (and the stdlib, cryptography)",
        in_parts("login"),
        only({"core", "login"}, {"cryptography"}),
    ),
    Rule(
        "broker.config and broker.certificates import only broker.core, the stdlib, cryptography",
        in_parts("config", "certificates"),
        only({"core"}, {"cryptography"}),
    ),
    Rule(
        "broker.keys (the signing key set on disk) imports only core, config and certificates",
        in_parts("keys"),
        only({"core", "config", "certificates", "keys"}, {"cryptography"}),
    ),
    Rule(
        # Shared by broker.saml and broker.oidc, so below both: the stdlib's socket and threads.
        "broker.name_lookup (the checked name lookup of outbound calls) imports only broker.core",
        in_parts("name_lookup"),
        only({"core"}, ()),
    ),
    Rule(
        # Shared by broker.saml and broker.oidc too: their sockets, connected to what
        # name_lookup checked, every wait within a deadline.
        "broker.deadline_socket (the sockets of outbound calls) imports only broker.name_lookup",
        in_parts("deadline_socket"),
        only({"name_lookup"}, ()),
    ),
    Rule(
        "broker.pseudonym_key_file (the key set file) imports only broker.core and broker.config",
        in_parts("pseudonym_key_file"),
        only({"core", "config"}, ()),
    ),
    Rule(
        # name_lookup, deadline_socket: the checked, bounded name lookup and the sockets metadata
        # fetches share with broker.oidc.
        "broker.saml imports only core, login, config, name_lookup, deadline_socket and "
        "saml2/lxml/xmlsec",
        in_parts("saml"),
        only(
            {"core", "login", "config", "name_lookup", "deadline_socket", "saml"},
            {"saml2", "lxml", "xmlsec", "cryptography"},
        ),
    ),
    Rule(
        # The OIDC adapter is a sibling of the SAML one, never its user, and below the web edge.
        # urllib3: the transport of calls to providers, pinned to checked addresses.
        "broker.oidc imports only core, login, config, name_lookup, deadline_socket and "
        "authlib/joserfc/requests/urllib3",
        in_parts("oidc"),
        only(
            {"core", "login", "config", "name_lookup", "deadline_socket", "oidc"},
            {"authlib", "joserfc", "requests", "urllib3", "cryptography"},
        ),
    ),
    Rule(
        # psycopg: the driver under SQLAlchemy, for the per-answer deadline (answer_deadline.py).
        "broker.registry imports only broker.core (and sqlalchemy, alembic, psycopg)",
        in_parts("registry"),
        only({"core", "registry"}, {"sqlalchemy", "alembic", "psycopg"}),
    ),
    Rule(
        # The operator's reports, shown by both the portal and the CLI: below both of them.
        "broker.operations imports only core, config, registry and saml",
        in_parts("operations"),
        only({"core", "config", "registry", "saml", "operations"}, ()),
    ),
    Rule(
        "broker.accounts imports only broker.core (and argon2)",
        in_parts("accounts"),
        only({"core", "accounts"}, {"argon2"}),
    ),
    Rule(
        "broker.store imports only broker.core (and redis)",
        in_parts("store"),
        only({"core", "store"}, {"redis"}),
    ),
    Rule(
        "broker.demo (stand-ins for outside parties) uses only broker.saml.xmlsig and "
        "broker.certificates of the broker",
        in_parts("demo"),
        # Its libraries are bounded by the library rules below; here only the broker side counts.
        lambda imp: imp.part is None or only({"demo"}, (), DEMO_MAY_USE)(imp),
    ),
    Rule(
        "nothing imports broker.web except broker.cli",
        lambda module: part_of(module) not in ("web", "cli"),
        lambda imp: imp.part != "web",
    ),
    Rule(
        "pysaml2 (saml2) only under broker/saml and broker/demo",
        lambda module: True,
        library_only_in({"saml2"}, "saml", "demo"),
    ),
    Rule(
        "lxml only under broker/saml and broker/demo",
        lambda module: True,
        library_only_in({"lxml"}, "saml", "demo"),
    ),
    Rule(
        # The broker's own JOSE work goes through joserfc (broker/oidc); PyJWT is the demo's.
        "PyJWT (jwt) only under broker/demo",
        lambda module: True,
        library_only_in({"jwt"}, "demo"),
    ),
    Rule(
        "redis only under broker/store",
        lambda module: True,
        library_only_in({"redis"}, "store"),
    ),
    Rule(
        "sqlalchemy and alembic only under broker/registry",
        lambda module: True,
        library_only_in({"sqlalchemy", "alembic"}, "registry"),
    ),
    Rule(
        "flask, werkzeug, flask_babel, flask_wtf only under broker/web, broker/demo, broker/cli",
        lambda module: True,
        library_only_in(FLASK_FAMILY, "web", "demo", "cli"),
    ),
    Rule(
        "argon2 only under broker/accounts",
        lambda module: True,
        library_only_in({"argon2"}, "accounts"),
    ),
    Rule(
        # The demo's stand-ins for schools' and publishers' OIDC software use authlib too.
        "authlib (and joserfc, its JOSE library) only under broker/oidc and broker/demo",
        lambda module: True,
        library_only_in({"authlib", "joserfc"}, "oidc", "demo"),
    ),
    Rule(
        # Metrics are recorded at the web edge; gunicorn's configuration tidies their files.
        "prometheus_client only under broker/web and broker/cli",
        lambda module: True,
        library_only_in({"prometheus_client"}, "web", "cli"),
    ),
    Rule(
        "requests (outbound HTTP) only under broker/oidc, broker/cli and broker/demo",
        lambda module: True,
        library_only_in({"requests"}, "oidc", "cli", "demo"),
    ),
]


def violations(rule: Rule, imports: Iterable[Import]) -> list[str]:
    return [str(imp) for imp in imports if rule.applies(imp.module) and not rule.allowed(imp)]


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_import_rule(rule: Rule) -> None:
    wrong = violations(rule, ALL_IMPORTS)
    assert not wrong, f"{rule.name}; wrong-way imports:\n  " + "\n  ".join(wrong)


# -- the checker itself ------------------------------------------------------------------------
def test_walker_sees_every_part() -> None:
    modules = {imp.module for imp in ALL_IMPORTS}
    for part in ("core", "login", "saml", "registry", "store", "web", "cli", "demo", "accounts"):
        assert any(part_of(m) == part for m in modules), part
    assert "broker.config" in modules
    assert "broker.certificates" in modules
    # Function-level imports count too (the CLI imports the web app lazily).
    assert any(i.module == "broker.cli.main" and i.part == "web" for i in ALL_IMPORTS)


SYNTHETIC = [
    ("broker.core.bad", False, "import flask\n", "broker.core imports only"),
    ("broker.core.bad", False, "from broker.login import flow\n", "broker.core imports only"),
    ("broker.login.bad", False, "from ..saml import front\n", "broker.login imports only"),
    ("broker.saml.bad", False, "from broker.registry import SqlRegistry\n", "broker.saml imports"),
    ("broker.saml.bad", False, "def f():\n    import broker.store\n", "broker.saml imports"),
    ("broker.registry.bad", False, "import redis\n", "redis only"),
    ("broker.store.bad", False, "from broker.registry import x\n", "broker.store imports"),
    ("broker.saml.bad", False, "from broker.web import app\n", "nothing imports broker.web"),
    ("broker.web.bad", False, "from saml2 import BINDING_HTTP_POST\n", "pysaml2"),
    ("broker.saml.bad", False, "import flask\n", "flask, werkzeug"),
    ("broker.demo.bad", False, "from broker.saml.front import X\n", "broker.demo"),
    ("broker.demo.bad", False, "from broker.saml import xmlsig, front\n", "broker.demo"),
    ("broker.demo.bad", False, "import broker.config\n", "broker.demo"),
    ("broker.demo.bad", False, "import redis\n", "redis only"),
    ("broker.web.bad", False, "from authlib.oauth2 import rfc6749\n", "authlib"),
    ("broker.core.bad", False, "from joserfc import jwt\n", "authlib"),
    ("broker.saml.bad", False, "import requests\n", "requests"),
    ("broker.oidc.bad", False, "from flask import request\n", "flask, werkzeug"),
    ("broker.accounts.bad", False, "import sqlalchemy\n", "broker.accounts imports only"),
    ("broker.web.bad", False, "import argon2\n", "argon2 only"),
    ("broker.config", False, "from broker.saml import xmlsig\n", "broker.config and"),
    (
        "broker.core.bad",
        False,
        "import importlib\nimportlib.import_module('sqlalchemy')\n",
        "broker.core imports only",
    ),
    ("broker.core.bad", False, "import socket\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "from urllib import request\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "import urllib.request\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "def f():\n    import subprocess\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "import sqlite3\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "from os import path\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "from pathlib import Path\n", "broker.core does no I/O"),
    ("broker.core.bad", False, "import http.client\n", "broker.core does no I/O"),
    ("broker.web.bad", False, "from lxml import etree\n", "lxml only"),
    ("broker.oidc.bad", False, "import lxml.etree\n", "lxml only"),
    ("broker.oidc.bad", False, "import jwt\n", "PyJWT"),
    ("broker.web.bad", False, "from jwt import decode\n", "PyJWT"),
    ("broker.oidc.bad", False, "from broker.saml import xmlsig\n", "broker.oidc imports only"),
    ("broker.oidc.bad", False, "from broker.web.login_finish import x\n", "broker.oidc imports"),
    ("broker.oidc.bad", False, "from ..registry import SqlRegistry\n", "broker.oidc imports"),
    ("broker.oidc.bad", False, "import saml2\n", "broker.oidc imports only"),
    ("broker.name_lookup", False, "import requests\n", "broker.name_lookup"),
    ("broker.name_lookup", False, "from broker.saml import xmlsig\n", "broker.name_lookup"),
    ("broker.deadline_socket", False, "import urllib3\n", "broker.deadline_socket"),
    ("broker.deadline_socket", False, "from broker.oidc import x\n", "broker.deadline_socket"),
    ("broker.name_lookup", False, "from broker.deadline_socket import x\n", "broker.name_lookup"),
    ("broker.operations.bad", False, "from broker.web import attention_words\n", "broker.oper"),
    ("broker.operations.bad", False, "import flask_babel\n", "broker.operations imports"),
]


@pytest.mark.parametrize(("module", "is_package", "source", "rule_start"), SYNTHETIC)
def test_checker_catches_wrong_way_imports(
    module: str, is_package: bool, source: str, rule_start: str
) -> None:
    imports = imports_in(source, module, is_package)
    broken = [rule.name for rule in RULES if violations(rule, imports)]
    assert any(name.startswith(rule_start) for name in broken), broken
    message = violations(next(r for r in RULES if r.name.startswith(rule_start)), imports)[0]
    assert message.startswith(module.replace(".", "/") + ".py:")


ALLOWED = [
    ("broker.core.ok", False, "from cryptography.hazmat.primitives import hashes\n"),
    ("broker.login.ok", False, "from broker.core.model import School\nfrom . import sealed\n"),
    ("broker.saml.ok", False, "from broker.login.flow import LoginFlow\nimport xmlsec\n"),
    (
        "broker.demo.ok",
        False,
        "from broker.saml.xmlsig import x\nfrom broker.certificates import y\n",
    ),
    ("broker.cli.ok", False, "from broker.web import create_app\nimport flask\n"),
    ("broker.oidc.ok", False, "from authlib.oauth2 import rfc6749\nimport requests\n"),
    ("broker.oidc.ok", False, "from broker.login.login_model import Completion\nimport socket\n"),
    ("broker.core.ok", False, "import io\nimport csv\nfrom urllib.parse import quote\n"),
    ("broker.core.key_schedule", False, "from pathlib import Path\n"),
    ("broker.saml.ok", False, "from lxml import etree\n"),
    ("broker.saml.ok", False, "from broker.name_lookup import checked_destinations\n"),
    ("broker.oidc.ok", False, "from broker.name_lookup import LookupTimedOut\n"),
    ("broker.name_lookup", False, "import socket\nfrom broker.core.endpoints import x\n"),
    ("broker.saml.ok", False, "from broker.deadline_socket import Limits\n"),
    ("broker.oidc.ok", False, "from broker.deadline_socket import connect\n"),
    ("broker.deadline_socket", False, "import ssl\nfrom broker.name_lookup import x\n"),
    ("broker.demo.ok", False, "import jwt\nfrom lxml import etree\n"),
    ("broker.demo.ok", False, "from authlib.oidc.core import UserInfo\n"),
    (
        "broker.web.ok",
        False,
        "from broker.registry import SqlRegistry\nfrom broker.store import s\n",
    ),
    ("broker.operations.ok", False, "from broker.saml.metadata_report import x\n"),
    ("broker.cli.ok", False, "from broker.operations.sources import source_states\n"),
]


@pytest.mark.parametrize(("module", "is_package", "source"), ALLOWED)
def test_checker_allows_right_way_imports(module: str, is_package: bool, source: str) -> None:
    imports = imports_in(source, module, is_package)
    assert not [rule.name for rule in RULES if violations(rule, imports)]


def test_relative_imports_resolve() -> None:
    imports = imports_in("from . import a\nfrom ..core import b\n", "broker.login", True)
    assert {i.target for i in imports} >= {
        "broker.login",
        "broker.login.a",
        "broker.core",
        "broker.core.b",
    }


def test_the_registry_commands_load_no_web_edge() -> None:
    """`ketenbroker registry …` registers `registry problems` at import: loading the commands
    loads neither the web edge nor Flask (the report's words are imported when it runs)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, broker.cli.registry_commands; print(*sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.split()
    assert "broker.operations.attention" in loaded
    assert not [m for m in loaded if m.startswith(("broker.web", "flask"))]
