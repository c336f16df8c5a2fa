#!/usr/bin/env bash
# Install Ketenbroker with its test tools and run everything CI runs: lint, types, all tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/install.sh --test
echo "== ruff"
.venv/bin/ruff check broker tests bench
.venv/bin/ruff format --check broker tests bench
echo "== mypy (strict, broker/)"
.venv/bin/mypy broker
echo "== pytest"
.venv/bin/python -m pytest "$@"
