#!/bin/sh
# Make the secrets docker/compose.yaml reads, in docker/secrets/ (or $KB_SECRETS_DIR):
# the broker's keys (from `ketenbroker init`), the PostgreSQL and Redis passwords and the
# metrics token. Run once; it refuses to overwrite (a new pseudonym key changes every pseudonym).
#
#   sh docker/make-secrets.sh                      # with `ketenbroker` on PATH
#   sh docker/make-secrets.sh .venv/bin/ketenbroker
#
# The folder is 0700 (only you, on this machine); the files in it are 0444 so that each
# container's own user (the broker's 10001, Redis's, Prometheus's) can read the one it mounts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${KB_SECRETS_DIR:-$here/secrets}"
ketenbroker="${1:-ketenbroker}"

if [ -e "$out" ]; then
  echo "make-secrets: $out exists; keep it (back up pseudonym_keys!) or remove it first" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
"$ketenbroker" init "$work/instance" >/dev/null

umask 077
mkdir "$out"
keys="$work/instance/keys"
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
echo "make-secrets: back up $out/pseudonym_keys offline now: its loss changes every pseudonym"
