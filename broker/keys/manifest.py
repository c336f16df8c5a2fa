"""The key set manifest: one TOML file listing every key generation, its files and its moments.

Written only by `ketenbroker keys` (atomically, mode 0600, after the key files it names), read by
every worker. Paths are relative to the manifest's folder, except the first generation's, which
are the files the configuration named before the first rotation.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.config import Settings
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyFiles, KeyGeneration

HEADER = (
    "# The broker's signing key set, written by `ketenbroker keys rotate` / `keys finish`.\n"
    "# Do not edit by hand: `ketenbroker keys status` explains it (docs/operations.md).\n"
)
_FILE_FIELDS = ("saml_key", "saml_cert", "oidc_rsa", "oidc_ec")


def configured_generation(settings: Settings) -> KeyGeneration:
    """The keys the configuration names, as the key set's first generation: published and
    signing since ever, retired never (until a rotation says otherwise)."""
    oidc = settings.oidc
    files = KeyFiles(
        saml_key=settings.saml.signing_key,
        saml_cert=settings.saml.signing_cert,
        oidc_rsa=oidc.rsa_key if oidc else None,
        oidc_ec=oidc.ec_key if oidc else None,
    )
    return KeyGeneration(number=1, files=files, published_from=0.0, signing_from=0.0)


def _moment(entry: Mapping[str, Any], name: str, where: str) -> float:
    value = entry.get(name)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigurationError(f"{where}.{name} must be a date and time with a zone")
    return value.timestamp()


def _generation(entry: Any, where: str, folder: Path) -> KeyGeneration:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a table")
    number = entry.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ConfigurationError(f"{where}.number must be a whole number from 1")
    paths: dict[str, Path | None] = {}
    for field in _FILE_FIELDS:
        value = entry.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{where}.{field} must be a file path")
        paths[field] = folder / value if value else None
    saml_key, saml_cert = paths["saml_key"], paths["saml_cert"]
    if saml_key is None or saml_cert is None:
        raise ConfigurationError(f"{where} needs saml_key and saml_cert")
    published = _moment(entry, "published_from", where)
    signing = _moment(entry, "signing_from", where)
    if signing < published:
        raise ConfigurationError(f"{where}: signing_from before published_from")
    return KeyGeneration(
        number=number,
        files=KeyFiles(saml_key, saml_cert, paths["oidc_rsa"], paths["oidc_ec"]),
        published_from=published,
        signing_from=signing,
        retire_after=_moment(entry, "retire_after", where) if "retire_after" in entry else None,
    )


def parse_manifest(text: str, folder: Path) -> tuple[KeyGeneration, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"key set manifest is not valid TOML: {err}") from None
    entries = data.get("key")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError("key set manifest needs at least one [[key]]")
    generations = tuple(_generation(e, f"key[{i}]", folder) for i, e in enumerate(entries))
    numbers = [g.number for g in generations]
    if len(set(numbers)) != len(numbers):
        raise ConfigurationError("key set manifest: every key needs a number of its own")
    return generations


def read_manifest(path: Path) -> tuple[KeyGeneration, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(f"key set {path}: {err.strerror}") from None
    return parse_manifest(text, path.parent)


def generations_of(settings: Settings) -> tuple[KeyGeneration, ...]:
    """The key set the settings point at: the manifest, or the configured key alone."""
    rotation = settings.key_rotation
    if rotation is None or not rotation.manifest.exists():
        return (configured_generation(settings),)
    return read_manifest(rotation.manifest)


def _time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _quoted(path: Path, folder: Path) -> str:
    shown = path.relative_to(folder) if path.is_relative_to(folder) else path
    text = str(shown)
    if '"' in text or "\\" in text or "\n" in text:
        raise ConfigurationError(f"key file path {text!r} cannot be written to the manifest")
    return f'"{text}"'


def render_manifest(generations: Iterable[KeyGeneration], folder: Path) -> str:
    lines = [HEADER]
    for g in generations:
        lines.append("[[key]]")
        lines.append(f"number = {g.number}")
        lines.append(f"published_from = {_time(g.published_from)}")
        lines.append(f"signing_from = {_time(g.signing_from)}")
        if g.retire_after is not None:
            lines.append(f"retire_after = {_time(g.retire_after)}")
        for field in _FILE_FIELDS:
            path = getattr(g.files, field)
            if path is not None:
                lines.append(f"{field} = {_quoted(path, folder)}")
        lines.append("")
    return "\n".join(lines)


def write_manifest(path: Path, generations: Iterable[KeyGeneration]) -> None:
    """Replace the manifest atomically: a worker reads the old one or the new one, never half."""
    text = render_manifest(generations, path.parent)
    parse_manifest(text, path.parent)  # never write what the workers would refuse
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
