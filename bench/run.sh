#!/bin/sh
# Run every benchmark with the project venv; extra arguments go to bench/login.py.
set -e
cd "$(dirname "$0")/.."
. .venv/bin/activate
python bench/signature_route.py
python bench/login.py "$@"
python bench/oidc_login.py
