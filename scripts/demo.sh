#!/usr/bin/env bash
# Install Ketenbroker and start the demo: the broker, a demo school and demo publishers, all on
# this machine, on embedded defaults (SQLite registry, in-memory store).
set -eu
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/ketenbroker demo "$@"
