#!/usr/bin/env bash
# Install Ketenbroker into ./.venv (created with the machine's python3, 3.11 or newer).
# With --test also the test tools, and axe-core for the browser accessibility audit.
set -eu
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
[ -x .venv/bin/python ] || python3 -m venv .venv
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"

# axe-core (tests/browser/test_accessibility.py) at the version tests/browser/axe/ pins (its
# package-lock.json holds the checksum), into tests/browser/axe/node_modules; skipped when that
# version is there already. npm comes from Debian's `npm` (scripts/services.sh installs it);
# without it the audit is skipped on a developer's machine and fails on CI.
if [ "${1:-}" = "--test" ]; then
  axe=tests/browser/axe
  pinned=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dependencies"]["axe-core"])' \
    "$axe/package.json")
  installed=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$axe/node_modules/axe-core/package.json" 2>/dev/null || true)
  if [ "$installed" != "$pinned" ]; then
    if command -v npm >/dev/null 2>&1; then
      (cd "$axe" && npm ci --ignore-scripts --loglevel=error >/dev/null)
    else
      echo "install: npm is missing, so axe-core is not installed (Debian: apt-get install nodejs npm)" >&2
    fi
  fi
fi
