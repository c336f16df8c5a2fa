"""`registry export`: a registry snapshot written as TOML, meant to be kept in git.

The output is deterministic (entries by id, keys in a fixed order), so exporting the same registry
twice gives the same bytes and a diff shows exactly what changed. The standard library reads
TOML but does not write it; the few shapes this file needs (strings, booleans, integers, lists of
strings, tables) are written here. Strings are JSON-escaped, which is valid TOML.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from broker.cli.registry_chain_moves import chain_move_lines
from broker.cli.registry_idp_rules import KIND as IDP_RULES
from broker.cli.registry_key_versions import key_version_lines
from broker.core.model import AssertionEncryption, School, Service
from broker.registry.snapshot import PolicyEntry, SchoolEntry, ServiceEntry, Snapshot

FORMAT = 1
SECRET_SUFFIX = ".client-secret"  # noqa: S105 - a file name ending, not a secret
HEADER = f"""\
# Ketenbroker registry: chains, publishers, schools, services, release policies and the
# pseudonym key versions of rotated chains.
# Written by `ketenbroker registry export`; read by `ketenbroker registry import`, which adds or
# updates entries by id and deletes nothing. Not in this file: administrators, the history of
# policies and declarations, and secrets (an OpenID provider's client secret is read from the
# file named by `client_secret_file`, next to this one: keep those files out of git).
format = {FORMAT}
"""

Value = str | bool | int | list[str]


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    return "[" + ", ".join(_string(item) for item in value) + "]"


def _xml(text: str) -> str:
    """A multi-line literal string (readable in a diff) when the text allows it, else escaped."""
    plain = all(ch in "\t\n" or (ord(ch) >= 0x20 and ch != "\x7f") for ch in text)
    if plain and "'''" not in text and not text.endswith("'"):
        return "'''\n" + text + "'''"
    return _string(text)


def _pairs(pairs: list[tuple[str, Value | None]]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in pairs if value is not None]


def _fetched_from(metadata: str, url: str | None) -> list[str]:
    """Where a copy of the entry's own was fetched from: `metadata refresh` fetches it again."""
    return _pairs([("saml_metadata_url", url)]) if url and metadata else []


class _Writer:
    def __init__(self, toml_file: Path, metadata_dir: Path | None) -> None:
        self.folder = toml_file.parent
        self.metadata_dir = metadata_dir

    def metadata(self, kind: str, entity: str, xml: str, entity_id: str) -> str:
        if not xml:
            # Registered by entity id: its metadata comes from a [[metadata.sources]] source.
            return f"saml_entity_id = {_string(entity_id)}"
        if self.metadata_dir is None:
            return f"saml_metadata = {_xml(xml)}"
        path = self.metadata_dir / kind / f"{entity}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(xml, encoding="utf-8")
        relative = Path(os.path.relpath(path, self.folder)).as_posix()
        return f"saml_metadata_file = {_string(relative)}"

    def school(self, entry: SchoolEntry) -> list[str]:
        school: School = entry.school
        lines = ["", "[[schools]]"]
        lines += _pairs(
            [
                ("id", school.id),
                ("name", school.name),
                ("subject", school.subject_attribute),
                ("eck_id", school.use_eck_id),
                ("scopes", list(school.scopes)),
            ]
        )
        if school.town:
            lines += _pairs([("town", school.town)])
        if school.aliases:
            lines += _pairs([("aliases", list(school.aliases))])
        if school.privacy_contact:
            lines += _pairs([("privacy_contact", school.privacy_contact)])
        if entry.idp_names_school:
            # Its IdP's (or issuer's) logins must name their school (a school board's): kept on
            # import.
            lines += _pairs([("idp_names_school", True)])
        if school.oidc is None:
            lines.append(self.metadata("schools", school.id, entry.metadata, school.idp_entity_id))
            return lines + _fetched_from(entry.metadata, entry.metadata_url)
        lines += ["", "[schools.oidc]"]
        lines += _pairs([("issuer", school.oidc.issuer), ("client_id", school.oidc.client_id)])
        if school.oidc.hosted_domain:
            lines += _pairs([("hosted_domain", school.oidc.hosted_domain)])
        lines.append("# Not exported: put the secret, on one line, in this file before importing.")
        lines += _pairs(
            [
                ("client_secret_file", school.id + SECRET_SUFFIX),
                ("algorithms", list(school.oidc.algorithms)),
            ]
        )
        return lines

    def service(self, entry: ServiceEntry) -> list[str]:
        service: Service = entry.service
        lines = ["", "[[services]]"]
        lines += _pairs(
            [
                ("id", service.id),
                ("name", service.name),
                ("publisher", service.publisher_id),
                ("chain", service.chain_id),
                ("approved", service.approved),
                ("naming", service.naming.value),
                ("declaration_version", service.declaration_version),
                ("reconfirm_version", service.reconfirm_version),
            ]
        )
        if service.oidc is None:
            if service.assertion_encryption is not AssertionEncryption.AUTO:
                # Written only when off: a file without it keeps what the registry it goes
                # into has (`auto` for a new service), as files from before 0019 do.
                lines += _pairs([("assertion_encryption", service.assertion_encryption.value)])
            lines.append(
                self.metadata("services", service.id, entry.metadata or "", service.entity_id)
            )
            lines += _fetched_from(entry.metadata or "", entry.metadata_url)
        else:
            client = service.oidc
            lines += ["", "[services.oidc]"]
            lines += _pairs(
                [
                    ("client_id", service.entity_id),
                    ("redirect_uris", list(client.redirect_uris)),
                    ("auth_method", client.auth_method.value),
                    # The hash, not the secret: the client keeps working after an import.
                    ("secret_sha256", client.secret_hash),
                    ("jwks_uri", client.jwks_uri),
                    ("id_token_alg", client.id_token_alg),
                    ("refresh_tokens", client.refresh_tokens),
                    ("post_logout_redirect_uris", list(client.post_logout_redirect_uris)),
                    ("backchannel_logout_uri", client.backchannel_logout_uri),
                    (
                        "backchannel_logout_session_required",
                        client.backchannel_logout_session_required,
                    ),
                ]
            )
        for declaration in service.declarations:
            lines += ["", "[[services.declarations]]"]
            lines += _pairs(
                [
                    ("attribute", declaration.attribute),
                    ("purpose", declaration.purpose),
                    ("purpose_en", declaration.purpose_en or None),
                    ("required", declaration.required),
                ]
            )
        return lines


def _policy(entry: PolicyEntry) -> list[str]:
    pairs = _pairs(
        [
            ("school", entry.school_id),
            ("service", entry.service_id),
            ("release", sorted(entry.attributes)),
            ("active", entry.active),
            ("version", entry.version),
            ("declaration_version", entry.declaration_version),
        ]
    )
    return ["", "[[policies]]", *pairs]


def export_text(snapshot: Snapshot, toml_file: Path, metadata_dir: Path | None = None) -> str:
    """The TOML text; with `metadata_dir`, SAML metadata goes into files there (by kind and id)
    and the TOML names them relative to its own folder."""
    writer = _Writer(toml_file, metadata_dir)
    lines = [HEADER.rstrip("\n")]
    for chain in snapshot.chains:
        lines += ["", "[[chains]]", *_pairs([("id", chain.id), ("name", chain.name)])]
    for publisher in snapshot.publishers:
        lines += ["", "[[publishers]]", *_pairs([("id", publisher.id), ("name", publisher.name)])]
    for school in snapshot.schools:
        lines += writer.school(school)
    for entity_id in snapshot.idps_naming_school:
        # No school is on it now; its logins must still name their school (registry_idp_rules.py).
        lines += ["", f"[[{IDP_RULES}]]", *_pairs([("entity_id", entity_id)])]
    for service in snapshot.services:
        lines += writer.service(service)
    for policy in snapshot.policies:
        lines += _policy(policy)
    for record in snapshot.key_versions:
        lines += key_version_lines(record)
    for move in snapshot.chain_moves:
        lines += chain_move_lines(move)
    return "\n".join(lines) + "\n"
