#!/usr/bin/env bash
# Install Ketenbroker with its test tools and run everything CI runs: lint, types, all tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/install.sh --test
echo "== ruff"
.venv/bin/ruff check broker tests bench tools
.venv/bin/ruff format --check broker tests bench tools
echo "== mypy (strict, broker/ and tests/: a test written against an old signature fails here)"
.venv/bin/mypy broker tests
echo "== dependency audit (pip-audit; passes with a notice when no vulnerability database is reachable)"
.venv/bin/python tools/audit_deps.py
echo "== pytest"
.venv/bin/python -m pytest "$@"
