"""docker/: the Dockerfile's basics, the compose file (through `docker compose config` where a
docker binary with Compose exists), the secrets script and the configuration they make up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_saml_peers
from broker.cli.instance import init_instance
from broker.config import load_settings
from broker.core.errors import RegistryUnavailable, StoreUnavailable
from broker.registry import SqlRegistry, migrate
from broker.web import key_metrics, metadata_metrics, receipt_metrics

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SECRETS_IN_CONFIG = re.compile(r'"/run/secrets/([a-z0-9_]+)"')
KEY_VOLUME = "/var/lib/ketenbroker/keys"


def _instructions(name: str) -> list[str]:
    lines = (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines()
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[:1] == [name]]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_dockerfile_is_multi_stage_slim_and_runs_as_a_user() -> None:
    stages = _instructions("FROM")
    assert len(stages) >= 2
    assert all(stage.startswith("python:3.11-slim") for stage in stages)
    users = _instructions("USER")
    assert users, "no USER: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert _instructions("CMD")[-1] == '["ketenbroker", "serve"]'


def test_dockerfile_checks_health_and_bakes_in_no_secret() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]
    assert "--interval" in healthcheck
    for copied in _instructions("COPY"):
        assert not re.search(r"secrets|keys/|ketenbroker\.toml|\.pem|\.key\b", copied), copied
    for env in _instructions("ENV"):
        assert not re.search(r"SECRET|PASSWORD|TOKEN|PSEUDONYM", env)


def test_the_build_context_holds_the_sources_only() -> None:
    ignored = (DOCKER.parent / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in ignored if line and not line.startswith("#")]
    # Everything is left out, then only what the Dockerfile copies is let back in.
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "broker"}


def test_compose_has_the_services_and_takes_secrets_as_files() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"broker", "redis", "postgres", "demo-peers", "migrate"} <= set(services)
    declared = compose["secrets"]
    assert all(set(entry) == {"file"} for entry in declared.values())
    # Every secret the broker's configuration names is declared and handed to the broker.
    config = (DOCKER / "ketenbroker.toml").read_text(encoding="utf-8")
    named = set(SECRETS_IN_CONFIG.findall(config))
    assert named <= set(declared)
    assert named <= set(services["broker"]["secrets"])
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    # Published on this machine only.
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    # Nothing secret written into the compose file's environment.
    for service in services.values():
        for key in service.get("environment", {}):
            assert key.endswith("_FILE") or not re.search(r"PASSWORD|SECRET|TOKEN", key)


def _key_volume_mode(service: dict[str, Any]) -> str | None:
    """How a service mounts the key volume: "ro", "rw", or None when it does not."""
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source == "keys":
            assert target == KEY_VOLUME
            return mode[0] if mode else "rw"
    return None


def test_the_key_volume_is_writable_only_where_keys_are_rotated() -> None:
    services = _compose()["services"]
    config = (DOCKER / "ketenbroker.toml").read_text(encoding="utf-8")
    assert f'key_set = "{KEY_VOLUME}/key-set.toml"' in config
    assert f'pseudonym_keys = "{KEY_VOLUME}/pseudonym-keys.toml"' in config
    modes = {
        name: _key_volume_mode(service)
        for name, service in services.items()
        if service.get("image") == "ketenbroker:local"
    }
    # Every container of the broker's image reads the key sets; only the one-shot seeding and
    # the on-demand `cli` (keys rotate, pseudonym-key rotate) may write them.
    assert {name for name, mode in modes.items() if mode == "rw"} == {"keys-init", "cli"}
    assert all(mode == "ro" for name, mode in modes.items() if name not in ("keys-init", "cli"))
    assert services["cli"]["profiles"] == ["tools"]  # never started by `up`
    assert services["cli"]["entrypoint"] == ["ketenbroker"]
    # The pseudonym key set's secret is read once, to seed the volume; no one else mounts it.
    holders = {n for n, s in services.items() if "pseudonym_keys" in s.get("secrets", [])}
    assert holders == {"keys-init"}
    assert "keys-init" in services["migrate"]["depends_on"]


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        found = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if found.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


# A stand-in for the docker client (no engine here): each call is noted in $DOCKER_CALLS;
# `build` does nothing, `run [OPTIONS] ketenbroker:local COMMAND…` runs COMMAND on this machine,
# where this environment's `ketenbroker` stands in for the image's.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_CALLS"
case "$1" in
  build) exit 0 ;;
  run) while [ "$1" != ketenbroker:local ]; do shift; done; shift; exec "$@" ;;
esac
exit 1
"""


def make_secrets(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """docker/make-secrets.sh of the copy at `copy`, with the docker client faked."""
    fake = copy.parent / "fake-docker"
    fake.write_text(FAKE_DOCKER, encoding="utf-8")
    fake.chmod(0o755)
    scratch = copy.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if k != "KB_SECRETS_DIR"}
    environment.update(
        KB_DOCKER=str(fake),
        DOCKER_CALLS=str(copy.parent / "docker-calls"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]]),
        TMPDIR=str(scratch),
    )
    return subprocess.run(
        ["sh", str(copy / "make-secrets.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )


def docker_calls(copy: Path) -> list[str]:
    return (copy.parent / "docker-calls").read_text(encoding="utf-8").splitlines()


@pytest.fixture
def docker_copy(tmp_path: Path) -> Path:
    """docker/ copied, with secrets made by the script (the real folder stays untouched)."""
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns("secrets"))
    done = make_secrets(copy)
    assert done.returncode == 0, done.stderr
    return copy


def test_make_secrets_needs_docker_only(docker_copy: Path, tmp_path: Path) -> None:
    """The keys come from `ketenbroker init` inside the image it builds first, streamed out
    (no bind mount, no host `ketenbroker`); --no-build uses the image as it is."""
    build, run = docker_calls(docker_copy)
    assert build == f"build -f {docker_copy}/Dockerfile -t ketenbroker:local {docker_copy}/.."
    assert run.startswith("run --rm ketenbroker:local sh -c ")
    assert "ketenbroker init" in run and " -v " not in run
    again = tmp_path / "again"
    shutil.copytree(DOCKER, again / "docker", ignore=shutil.ignore_patterns("secrets"))
    done = make_secrets(again / "docker", "--no-build")
    assert done.returncode == 0, done.stderr
    assert [call.split()[0] for call in docker_calls(again / "docker")] == ["run"]
    assert sorted(p.name for p in (again / "docker" / "secrets").iterdir()) == sorted(
        p.name for p in (docker_copy / "secrets").iterdir()
    )


def test_docker_compose_config_accepts_the_file(docker_copy: Path) -> None:
    command = _compose_command()
    if command is None:
        # CI installs one (scripts/services.sh): there the check must run, not be skipped.
        if os.environ.get("CI") == "true":
            pytest.fail("no docker compose (nor docker-compose) binary on CI")
        pytest.skip("no docker compose (nor docker-compose) binary here")
    done = subprocess.run(
        [*command, "-f", str(docker_copy / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=docker_copy,
    )
    assert done.returncode == 0, done.stderr
    assert "ketenbroker.toml:/etc/ketenbroker/ketenbroker.toml" in done.stdout
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    assert _key_volume_mode(resolved["services"]["cli"]) == "rw"
    assert _key_volume_mode(resolved["services"]["broker"]) == "ro"
    assert all(
        service.get("read_only")
        for service in resolved["services"].values()
        if service.get("image") == "ketenbroker:local"
    )


def test_make_secrets_refuses_to_overwrite(docker_copy: Path) -> None:
    calls = len(docker_calls(docker_copy))
    again = make_secrets(docker_copy)
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert len(docker_calls(docker_copy)) == calls  # refused before building or running


def test_the_secrets_make_a_valid_configuration(
    docker_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = docker_copy / "secrets"
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    text = (docker_copy / "ketenbroker.toml").read_text(encoding="utf-8")
    # What `keys-init` does once: the pseudonym key set from its secret onto the key volume.
    volume = tmp_path / "keys"
    volume.mkdir(mode=0o700)
    shutil.copy(secrets / "pseudonym_keys", volume / "pseudonym-keys.toml")
    text = text.replace("/run/secrets/", f"{secrets}/").replace(KEY_VOLUME, str(volume))
    config = tmp_path / "ketenbroker.toml"
    config.write_text(text, encoding="utf-8")
    for name in (
        "KETENBROKER_SECRET_KEY",
        "KETENBROKER_PSEUDONYM_KEYS",
        "KETENBROKER_METRICS_TOKEN",
    ):
        os.environ.pop(name, None)
    settings = load_settings(config)
    password = (secrets / "postgres_password").read_text(encoding="utf-8")
    assert settings.registry_url == (
        f"postgresql+psycopg://ketenbroker:{password}@postgres:5432/ketenbroker"
    )
    assert settings.store_url.startswith("redis://:") and settings.store_url.endswith(
        "@redis:6379/0"
    )
    assert settings.metrics.token == (secrets / "metrics_token").read_text(encoding="utf-8")
    # The key commands write on the volume: the signing key set and the pseudonym key set.
    assert settings.key_rotation is not None
    assert settings.key_rotation.manifest == volume / "key-set.toml"
    assert settings.pseudonym_keys_file == volume / "pseudonym-keys.toml"


def test_demo_peers_register_once_and_serve_the_school_and_publishers(tmp_path: Path) -> None:
    config = init_instance(tmp_path / "broker", "http://127.0.0.1:8000", "b.example", "Test")
    settings = load_settings(config)
    migrate(settings.registry_url)
    apps = prepare_saml_peers(settings, tmp_path / "peers", 8001)
    assert set(apps) == {f"http://localhost:{port}" for port in range(8001, 8005)}
    again = prepare_saml_peers(settings, tmp_path / "peers", 8001)  # a restart: nothing doubles
    assert set(again) == set(apps)
    registry = SqlRegistry(settings.registry_url)
    try:
        assert registry.school(DEMO_SCHOOL_ID) is not None
        assert {s.id for s in registry.services()} == {"leesplank", "rekenroute", "toetsplein"}
    finally:
        registry.close()


def test_the_key_alerts_name_the_gauges_the_broker_serves() -> None:
    """docker/alerts.yml asks for the key schedule gauges by the names /metrics gives them
    (tests/flows/test_key_metrics.py scrapes them)."""
    rules = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))
    by_name = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    expiring = by_name["KetenbrokerSigningCertificateExpiring"]["expr"]
    assert key_metrics.CERTIFICATE_EXPIRES in expiring and "30 * 86400" in expiring
    assert f"unless on(instance) {key_metrics.NEXT_SIGNS}" in expiring
    window = by_name["KetenbrokerPseudonymWindowEnding"]
    assert window["expr"].startswith(f"{key_metrics.WINDOW_ENDS} < 2 * 86400")
    assert window["labels"]["severity"] == "info"
    served = {
        value
        for name, value in vars(key_metrics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("ketenbroker_")
    }
    named = set(re.findall(r"ketenbroker_[a-z_]+", (DOCKER / "alerts.yml").read_text()))
    # The schools' IdP and services' SP certificates are metadata_metrics' (the test below).
    served |= {metadata_metrics.CERTIFICATES_ENDING, metadata_metrics.SERVICE_CERTIFICATES_ENDING}
    assert {n for n in named if "key" in n or "certificate" in n} <= served


def test_the_metadata_alerts_name_the_source_gauges_the_broker_serves() -> None:
    """docker/alerts.yml pages for an expired or missing metadata source and files tickets for
    a stale one and a copy ending within 2 days, one alert per source, on the gauges by the
    names /metrics gives them (tests/flows/test_metadata_metrics.py scrapes them)."""
    rules = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))
    by_name = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    untrusted = by_name["KetenbrokerMetadataSourceUntrusted"]
    assert untrusted["labels"]["severity"] == "page"
    assert untrusted["expr"].startswith(
        f'max by (source) ({metadata_metrics.STATE}{{state=~"expired|missing"}}) == 1'
    )
    stale = by_name["KetenbrokerMetadataSourceStale"]
    assert stale["labels"]["severity"] == "ticket"
    assert f'{metadata_metrics.STATE}{{state="stale"}}' in stale["expr"]
    ending = by_name["KetenbrokerMetadataSourceExpiringSoon"]
    assert ending["labels"]["severity"] == "ticket"
    assert f"min by (source) ({metadata_metrics.VALID_UNTIL}) < 2 * 86400" in ending["expr"]
    served = {metadata_metrics.STATE, metadata_metrics.VALID_UNTIL, metadata_metrics.LAST_GOOD}
    named = set(re.findall(r"ketenbroker_[a-z_]+", (DOCKER / "alerts.yml").read_text()))
    assert {n for n in named if "metadata_source" in n} <= served


@pytest.mark.parametrize(
    ("alert", "gauge"),
    [
        ("KetenbrokerSchoolCertificatesEnding", metadata_metrics.CERTIFICATES_ENDING),
        ("KetenbrokerSchoolMetadataNotRefreshed", metadata_metrics.NOT_REFRESHED),
        ("KetenbrokerServiceCertificatesEnding", metadata_metrics.SERVICE_CERTIFICATES_ENDING),
        ("KetenbrokerServiceMetadataNotRefreshed", metadata_metrics.SERVICE_NOT_REFRESHED),
    ],
)
def test_the_attention_rule_alerts_name_the_gauges_the_broker_serves(
    alert: str, gauge: str
) -> None:
    """A ticket when schools' IdP or services' SP certificates end within 30 days, or their
    metadata URLs have not given an accepted copy for 3 days, each on the one number /metrics
    gives (tests/security/test_school_certificate_ending.py, tests/flows/
    test_school_refresh_scale.py and tests/security/test_service_refresh_attention.py scrape them): no school or
    service label, one alert however many instances report it."""
    rules = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))
    by_name = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert by_name[alert]["labels"]["severity"] == "ticket"
    assert by_name[alert]["expr"] == f"max({gauge}) > 0"
    assert gauge in {name for name, _, _ in metadata_metrics.RULE_GAUGES}


def test_the_storage_alerts_page_for_the_registry_and_name_the_metrics_the_broker_serves() -> None:
    """A PostgreSQL outage pages on its own gauge (tests/flows/test_receipt_metrics.py scrapes
    it), and logins set back by either store page with the reason the broker counts; both link
    to the runbook section that exists."""
    rules = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))
    by_name = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    unreachable = by_name["KetenbrokerRegistryUnreachable"]
    assert unreachable["labels"]["severity"] == "page"
    assert unreachable["expr"] == f"min({receipt_metrics.REGISTRY_REACHABLE}) == 0"
    unavailable = by_name["KetenbrokerLoginsUnavailable"]
    assert unavailable["labels"]["severity"] == "page"
    for code in (StoreUnavailable.code, RegistryUnavailable.code):
        assert code in unavailable["expr"]
    docs = (DOCKER.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    for rule in (unreachable, unavailable):
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {anchor.replace('-', ' ')}" in docs.lower()


def test_the_first_up_waits_for_postgresql_over_tcp_and_migrate_tries_again() -> None:
    """On a new volume the postgres image runs a temporary socket-only server first: the health
    check asks over TCP, as the broker connects; a failed `migrate` is tried again a bounded
    number of times, and everything of the broker's image waits for it to succeed."""
    services = _compose()["services"]
    check = services["postgres"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"] and check[check.index("-h") + 1] == "127.0.0.1"
    assert re.fullmatch(r"on-failure:\d+", services["migrate"]["restart"])
    waiting = {
        name
        for name, service in services.items()
        if isinstance(depends := service.get("depends_on"), dict)
        and depends.get("migrate") == {"condition": "service_completed_successfully"}
    }
    assert waiting == {"broker", "demo-peers", "receipts-jobs", "metadata-refresh", "cli"}


def test_the_receipts_jobs_survive_a_failure_and_show_it() -> None:
    jobs = _compose()["services"]["receipts-jobs"]
    assert jobs["restart"] == "unless-stopped"
    loop = jobs["command"][-1]
    assert loop.startswith("while :; do") and "exit" not in loop
    assert "receipts prune && ketenbroker receipts verify" in loop
    assert jobs["healthcheck"]["test"] == ["CMD-SHELL", "test ! -e /tmp/receipts-jobs-failed"]


def test_the_metadata_refresh_runs_hourly_and_survives_a_failure() -> None:
    job = _compose()["services"]["metadata-refresh"]
    assert job["restart"] == "unless-stopped"
    loop = job["command"][-1]
    assert loop.startswith("while :; do") and "exit" not in loop
    assert "ketenbroker metadata refresh;" in loop and "sleep 3600" in loop
    assert job["healthcheck"]["test"] == ["CMD-SHELL", "test ! -e /tmp/metadata-refresh-failed"]


def test_containers_stop_on_sigterm_and_the_broker_finishes_its_requests() -> None:
    """A shell loop or a Python process as PID 1 ignores SIGTERM: an init forwards it. The
    broker's gunicorn finishes requests in flight for its graceful timeout (30 s): Docker waits
    longer before its SIGKILL."""
    services = _compose()["services"]
    for name in ("demo-peers", "receipts-jobs", "metadata-refresh"):
        assert services[name].get("init") is True, name
    grace = services["broker"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > 30


def test_prometheus_sends_its_alerts_to_the_alertmanager_of_the_compose_file() -> None:
    services = _compose()["services"]
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    (target,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = services[host]
    assert f"127.0.0.1:{port}:{port}" in alertmanager["ports"]
    assert "./alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    routes = yaml.safe_load((DOCKER / "alertmanager.yml").read_text(encoding="utf-8"))["route"]
    assert {r["receiver"] for r in routes["routes"]} | {routes["receiver"]} == {"page", "tickets"}


PASSIVE_OUTCOMES = "login_required|interaction_required"


def test_the_refusal_alert_leaves_out_the_answers_to_silent_checks() -> None:
    """IsPassive / prompt=none without a session answers login_required (with the notice due,
    interaction_required): neither a refusal nor a login attempt. The rule and the table of
    docs/operations.md say the same expression."""
    rules = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))
    by_name = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    expr = " ".join(by_name["KetenbrokerRefusalsHigh"]["expr"].split())
    refused = f'ketenbroker_logins_total{{outcome!~"ok|{PASSIVE_OUTCOMES}"}}'
    attempted = f'ketenbroker_logins_total{{outcome!~"{PASSIVE_OUTCOMES}"}}'
    assert expr == (
        f"sum(rate({refused}[10m])) / clamp_min(sum(rate({attempted}[10m])), 1e-9) > 0.2"
    )
    operations = (DOCKER.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    assert f"`{expr.replace('|', chr(92) + '|')}`" in operations
    assert 'outcome!="ok"' not in operations


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        # CI fetches both (scripts/services.sh): there the checks must run, not be skipped.
        if os.environ.get("CI") == "true":
            pytest.fail(f"no {name} on CI")
        pytest.skip(f"no {name} here (Debian: apt-get install prometheus prometheus-alertmanager)")
    return found


def test_the_alert_rules_pass_their_unit_tests() -> None:
    """docker/alerts.test.yml: no refusal alert for 60 logins and 30 silent checks a minute, one
    for real refusals; the receipts alert once prune stopped."""
    done = subprocess.run(
        [_tool("promtool"), "test", "rules", str(DOCKER / "alerts.test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_and_alertmanager_accept_their_files(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    # The container's paths, here: the rule file and the token file must exist to be checked.
    (tmp_path / "alerts.yml").write_bytes((DOCKER / "alerts.yml").read_bytes())
    (tmp_path / "metrics_token").write_text("token", encoding="utf-8")
    text = (DOCKER / "prometheus.yml").read_text(encoding="utf-8")
    text = text.replace("/etc/prometheus/", f"{tmp_path}/").replace("/run/secrets/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(text, encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [_tool("amtool"), "check-config", str(DOCKER / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
