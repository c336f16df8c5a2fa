#!/bin/sh
# Build docker/Dockerfile and run docker/compose.yaml with podman (no Docker engine), check the
# broker is healthy, ready, non-root and scraped, log in once through the demo (publisher ->
# broker -> school), then remove every container and volume it made. A check by hand; not CI.
#
#   sh tools/podman_check.sh                  # from anywhere in the checkout, as root
#   KB_WHEELS=/path/to/wheels sh tools/podman_check.sh   # pip installs from that folder only
#
# Needs: podman with runc; a Compose that speaks the Docker API (`docker compose`, or Debian's
# docker-compose 1.29); the images compose.yaml and the Dockerfile name (python:3.11-slim,
# postgres:16, redis:7, prom/prometheus, prom/alertmanager) pullable or already tagged locally;
# a Python with the broker and its dependencies for the scripted login (KB_PYTHON, default
# .venv/bin/python); 127.0.0.1 ports 8000-8004, 9090 and 9093 free. Uses docker/secrets/ if it exists, else makes
# throwaway secrets and removes them at the end. Compose project `kbcheck`: its volumes are not
# the ones `docker compose -f docker/compose.yaml up` makes.
set -eu
cd "$(dirname "$0")/.."
python="${KB_PYTHON:-.venv/bin/python}"
# bench/login.py imports its neighbours as top-level modules (bench_instance), as the bench
# scripts do when run from bench/: both folders on the path.
pythonpath="$PWD:$PWD/bench"
project=kbcheck
work=$(mktemp -d)
made_secrets=""
service_pid=""
health_pid=""
compose_cmd=""

say() { echo "podman_check: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
compose() { $compose_cmd -p "$project" -f docker/compose.yaml "$@"; }
container_of() {
  podman ps -a -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" | head -n 1
}

cleanup() {
  set +e
  if [ -n "$compose_cmd" ] && [ -n "$service_pid" ]; then
    compose down -v --remove-orphans >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
  fi
  [ -n "$health_pid" ] && kill "$health_pid" 2>/dev/null
  [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null
  [ -n "$made_secrets" ] && rm -rf docker/secrets
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v podman >/dev/null || fail "podman is not installed"
PYTHONPATH=$pythonpath "$python" -c "import broker, bench.login, requests" 2>/dev/null \
  || fail "$python cannot import the broker and bench/login.py (set KB_PYTHON)"

# 1. The image. --format docker: podman's default (OCI) image format has no HEALTHCHECK.
set --
if [ -n "${KB_WHEELS:-}" ]; then
  printf '[global]\nno-index = true\nfind-links = /wheels\n' >"$work/pip.conf"
  set -- -v "$KB_WHEELS:/wheels:ro" -v "$work/pip.conf:/etc/pip.conf:ro"
fi
say "building ketenbroker:local"
podman build --format docker -f docker/Dockerfile -t ketenbroker:local "$@" . \
  >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; fail "podman build"; }

# 2. Secrets, podman's Docker API for Compose, and health checks where no systemd runs them.
if [ ! -e docker/secrets ]; then
  # `init` in the image step 1 built (building again would drop --format docker).
  KB_DOCKER=podman sh docker/make-secrets.sh --no-build >/dev/null
  made_secrets=1
fi
podman system service --time=0 "unix://$work/podman.sock" >"$work/service.log" 2>&1 &
service_pid=$!
export DOCKER_HOST="unix://$work/podman.sock"
for _ in $(seq 50); do [ -S "$work/podman.sock" ] && break; sleep 0.2; done
if docker compose version >/dev/null 2>&1; then compose_cmd="docker compose"
elif command -v docker-compose >/dev/null; then compose_cmd="docker-compose"
else fail "no Compose: neither \`docker compose\` nor docker-compose"; fi
if [ ! -d /run/systemd/system ]; then
  # podman runs HEALTHCHECKs from systemd timers; without them depends_on: service_healthy waits
  # for ever. Run them here instead.
  (while :; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$project"); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 5
  done) &
  health_pid=$!
fi

# 3. Up, without building again (step 1 built the image with the options given).
say "compose up ($compose_cmd)"
compose up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  seconds=$1 what=$2; shift 2
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 5)); [ "$i" -le "$seconds" ] || fail "$what (waited ${seconds}s)"
    sleep 5
  done
  say "ok: $what"
}
fetch() {  # fetch URL [TOKEN]: prints the status code and the body
  "$python" - "$@" <<'EOF'
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    request.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(response.status, response.read().decode().strip())
except urllib.error.HTTPError as error:
    print(error.code)
EOF
}
status_of() { fetch "$@" | sed -n '1{s/ .*//;p;}'; }
ready() { [ "$(fetch http://127.0.0.1:8000/readyz)" = "200 ready" ]; }
healthy() {
  [ "$(podman inspect --format '{{.State.Health.Status}}' "$(container_of "$1")")" = healthy ]
}
scraped() { fetch http://127.0.0.1:9090/api/v1/targets | grep -q '"health":"up"'; }
peers_up() { [ "$(status_of http://localhost:8002/)" = 200 ]; }

wait_for 300 "/readyz says ready" ready
wait_for 120 "the broker's HEALTHCHECK passes" healthy broker
[ "$(podman exec "$(container_of broker)" id -u)" = 10001 ] || fail "the broker is not user 10001"
say "ok: the broker runs as user 10001"
[ "$(status_of http://127.0.0.1:8000/metrics)" = 401 ] || fail "/metrics without the token"
[ "$(status_of http://127.0.0.1:8000/metrics "$(cat docker/secrets/metrics_token)")" = 200 ] \
  || fail "/metrics with the token"
say "ok: /metrics refuses the published port without the token, answers with it"
wait_for 120 "Prometheus scrapes the broker" scraped
wait_for 300 "the demo publisher answers" peers_up

# 4. A student's login over HTTP, with bench/login.py's browser (cookies per host name).
PYTHONPATH=$pythonpath "$python" - <<'EOF' || fail "demo login"
import requests
from bench.login import one_login

class Response:
    def __init__(self, response):
        self.status_code = response.status_code
        self.headers = self
        self._response = response
    def getlist(self, name):
        return self._response.raw.headers.getlist(name)
    def __getitem__(self, name):
        return self._response.headers[name]
    def get_data(self, as_text=True):
        return self._response.text

class Client:
    def open(self, url, method="GET", data=None, headers=None):
        return Response(requests.request(method, url, data=data, headers=headers or {},
                                         allow_redirects=False, timeout=60))

origins = ["http://127.0.0.1:8000"] + [f"http://localhost:{port}" for port in range(8001, 8005)]
clients = {origin: Client() for origin in origins}
pseudonym = one_login(clients, "http://localhost:8002", "sanne.jansen")
print(f"podman_check: ok: demo login through the containers (pseudonym {pseudonym[:8]}...)")
EOF

compose run --rm cli keys status >"$work/cli.log" 2>&1 \
  || { cat "$work/cli.log" >&2; fail "cli keys status"; }
say "ok: the cli service runs the key commands"
say "all checks passed; removing the containers and volumes"
