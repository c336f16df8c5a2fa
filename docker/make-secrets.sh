#!/bin/sh
# Make the secrets docker/compose.yaml reads, in docker/secrets/ (or $KB_SECRETS_DIR): the
# broker's keys (from `ketenbroker init`, run inside the broker's image, so the host needs
# Docker and nothing else), the PostgreSQL and Redis passwords and the metrics token. Run once;
# it refuses to overwrite (a new pseudonym key changes every pseudonym).
#
#   sh docker/make-secrets.sh              # builds ketenbroker:local (docker/Dockerfile) first
#   sh docker/make-secrets.sh --no-build   # the image ketenbroker:local is built already
#
# KB_DOCKER names another client with Docker's commands (e.g. podman).
# The folder is 0700 (only you, on this machine); the files in it are 0444 so that each
# container's own user (the broker's 10001, Redis's, Prometheus's) can read the one it mounts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${KB_SECRETS_DIR:-$here/secrets}"
docker="${KB_DOCKER:-docker}"
image=ketenbroker:local
build=yes
case "${1:-}" in
  --no-build) build=no ;;
  "") ;;
  *) echo "make-secrets: unknown argument $1 (only --no-build)" >&2; exit 2 ;;
esac

if [ -e "$out" ]; then
  echo "make-secrets: $out exists; keep it (and its backup, docker/README.md) or remove it first" >&2
  exit 1
fi
if [ "$build" = yes ]; then
  echo "make-secrets: building $image from docker/Dockerfile"
  "$docker" build -f "$here/Dockerfile" -t "$image" "$here/.."
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# `init` in a throwaway container, as the image's own user, its keys coming out as a tar on
# stdout: no bind mount, so no host uid, SELinux label (RHEL) or rootless uid mapping to match.
"$docker" run --rm "$image" sh -c \
  'set -e; d=$(mktemp -d); ketenbroker init "$d/instance" >/dev/null; tar -C "$d/instance/keys" -cf - .' \
  >"$work/keys.tar"
keys="$work/keys"
mkdir "$keys"
tar -C "$keys" -xf "$work/keys.tar"

umask 077
mkdir "$out"
cp "$keys/saml-signing.key" "$out/saml_signing_key"
cp "$keys/saml-signing.crt" "$out/saml_signing_cert"
cp "$keys/pseudonym-keys.toml" "$out/pseudonym_keys"
cp "$keys/session-secret" "$out/session_secret"
cp "$keys/oidc-rs256.pem" "$out/oidc_rs256"
cp "$keys/oidc-es256.pem" "$out/oidc_es256"
cp "$keys/receipt-key" "$out/receipt_key"
random() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48; }
random > "$out/postgres_password"
random > "$out/redis_password"
random > "$out/metrics_token"
chmod 0444 "$out"/*
echo "make-secrets: wrote $(ls "$out" | wc -l) secrets to $out"
echo "make-secrets: back the whole folder up now, encrypted and offline (docker/README.md,"
echo "  \"Backups\"): its keys exist nowhere else, and a lost pseudonym_keys changes every pseudonym"
