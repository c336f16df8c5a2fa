#!/bin/sh
# One command for the benchmarks, with the project venv (see bench/README.md).
#   bench/run.sh            whole logins through gunicorn (bench/throughput.py, 200 per run)
#   bench/run.sh --quick    the same with 16 logins per run: done within 60 s
#   bench/run.sh --full     the in-process scripts first (signature_route, login, oidc_login),
#                           then the gunicorn benchmark
# Other arguments go to bench/throughput.py (e.g. --logins 50, --workers 2, --broker-src DIR).
# The last line is always throughput.py's RESULT line.
set -e
cd "$(dirname "$0")/.."
. .venv/bin/activate
full=""
for arg in "$@"; do
    [ "$arg" = "--full" ] && full=1
done
if [ -n "$full" ]; then
    python bench/signature_route.py
    python bench/login.py --route in-process
    python bench/oidc_login.py
fi
args=""
for arg in "$@"; do
    [ "$arg" = "--full" ] || args="$args $arg"
done
# shellcheck disable=SC2086  # the arguments are words on purpose
exec python bench/throughput.py $args
