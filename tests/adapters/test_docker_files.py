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
from broker.registry import SqlRegistry, migrate
from broker.web import key_metrics, metadata_metrics

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


@pytest.fixture
def docker_copy(tmp_path: Path) -> Path:
    """docker/ copied, with secrets made by the script (the real folder stays untouched)."""
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns("secrets"))
    ketenbroker = str(Path(sys.executable).parent / "ketenbroker")
    done = subprocess.run(
        ["sh", str(copy / "make-secrets.sh"), ketenbroker],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "KB_SECRETS_DIR"},
    )
    assert done.returncode == 0, done.stderr
    return copy


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
    again = subprocess.run(
        ["sh", str(docker_copy / "make-secrets.sh"), "unused"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1
    assert "exists" in again.stderr


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
