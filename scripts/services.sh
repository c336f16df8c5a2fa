#!/usr/bin/env bash
# Make sure the system services and packages the test suite talks to are there and running:
# Redis, PostgreSQL (storage tests), Chromium (browser tests), xmlsec1 (a publisher's pysaml2),
# npm (which installs axe-core, scripts/install.sh), Shibboleth SP, SimpleSAMLphp and
# mod_auth_openidc with Apache (the interop tests) and PgBouncer (the connection-pooler tests).
# Installs with apt when run as root on a machine that lacks them; otherwise says what is missing.
set -u

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  if [ "$(id -u)" != "0" ] || ! have apt-get; then
    echo "services: missing $*; install them (Debian: apt-get install $*) and run again" >&2
    return 1
  fi
  if [ -z "${KB_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null && export KB_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
have redis-server || missing+=(redis-server)
[ -d /etc/postgresql ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
# npm installs axe-core for the browser accessibility audit (scripts/install.sh --test).
have npm || missing+=(nodejs npm)
# pysaml2's own xmlsec1 backend, as a publisher runs it (tests/support/pysaml2_publisher.py); the
# broker itself signs and verifies in process and never calls it.
have xmlsec1 || missing+=(xmlsec1)
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  apt_install "${missing[@]}" || exit 1
fi

# Programs whose servers the tests start themselves, on free loopback ports: the SAML and OpenID
# Connect products of tests/interop behind Apache, as publishers and schools run them
# (Shibboleth SP 3: shibd, mod_shib; SimpleSAMLphp 1.19 as an IdP: mod_php, php-xml and
# php-mbstring, which Debian's simplesamlphp does not pull in; mod_auth_openidc 2.4 as a
# publisher's OpenID Connect client), and PgBouncer, as an operator puts it before PostgreSQL
# (tests/storage/test_registry_poolers.py). Installed as programs only: a policy-rc.d (where
# there is none) keeps the packages from starting Apache on port 80, shibd and a PgBouncer.
quiet=()
if [ ! -x /usr/sbin/shibd ] || [ ! -x /usr/sbin/apache2 ] \
  || [ ! -f /usr/lib/apache2/modules/mod_shib.so ]; then
  quiet+=(apache2 libapache2-mod-shib)
fi
if [ ! -f /etc/simplesamlphp/config.php ] || [ ! -f /usr/lib/apache2/modules/libphp8.2.so ] \
  || [ ! -f /etc/php/8.2/apache2/conf.d/20-dom.ini ] \
  || [ ! -f /etc/php/8.2/apache2/conf.d/20-mbstring.ini ]; then
  quiet+=(apache2 simplesamlphp libapache2-mod-php php-xml php-mbstring)
fi
if [ ! -x /usr/sbin/apache2 ] || [ ! -f /usr/lib/apache2/modules/mod_auth_openidc.so ]; then
  quiet+=(apache2 libapache2-mod-auth-openidc)
fi
[ -x /usr/sbin/pgbouncer ] || have pgbouncer || quiet+=(pgbouncer)
if [ ${#quiet[@]} -gt 0 ]; then
  echo "services: installing ${quiet[*]}"
  no_start=""
  if [ "$(id -u)" = "0" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    no_start=1
  fi
  apt_install "${quiet[@]}"
  status=$?
  [ -n "$no_start" ] && rm -f /usr/sbin/policy-rc.d
  [ $status = 0 ] || exit 1
fi

# `docker compose config` checks docker/compose.yaml without an engine (tests/adapters/
# test_docker_files.py). Where the Compose plugin is absent, Debian's docker-compose (1.29, which
# validates against the Compose Specification's schema) does the same check. Optional for a
# developer without root; CI (CI=true) fails that test rather than skip it.
if ! docker compose version >/dev/null 2>&1 && ! have docker-compose; then
  echo "services: installing docker-compose (to check docker/compose.yaml)"
  apt_install docker-compose || echo "services: without docker-compose the compose check is skipped" >&2
fi

# promtool and amtool check docker/alerts.yml, its rule unit tests and docker/alertmanager.yml
# (tests/adapters/test_docker_files.py). Only the two programs are taken from Debian's packages
# (apt-get download, dpkg -x): installing the packages would also set up and start a Prometheus
# and an Alertmanager server, which the tests do not need.
fetch_tool() {  # fetch_tool PACKAGE PROGRAM
  if [ "$(id -u)" != "0" ] || ! have apt-get; then
    echo "services: no $2; install it (Debian: apt-get install $1) to check docker/alerts.yml" >&2
    return 1
  fi
  if [ -z "${KB_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null && export KB_APT_UPDATED=1
  fi
  local work
  work="$(mktemp -d)"
  # apt downloads as its _apt user where it can (as root into a folder of root's, it warns)
  chown _apt "$work" 2>/dev/null || true
  (cd "$work" && apt-get download -qq "$1" >/dev/null && dpkg -x "$1"_*.deb unpacked) \
    && install -m 0755 "$work/unpacked/usr/bin/$2" /usr/local/bin/"$2"
  local status=$?
  rm -rf "$work"
  return $status
}
have promtool || fetch_tool prometheus promtool || echo "services: promtool not fetched" >&2
have amtool || fetch_tool prometheus-alertmanager amtool || echo "services: amtool not fetched" >&2

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "services: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi

for _ in $(seq 1 30); do
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    exit 0
  fi
  sleep 1
done
echo "services: Redis or PostgreSQL did not come up on 127.0.0.1" >&2
exit 1
