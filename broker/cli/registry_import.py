"""`registry import`: a registry TOML file, checked completely before anything is written.

Every entry is checked with the same rules as the command or portal page that would create it:
SAML metadata with the metadata checks, OIDC client registrations with `registration_problems`,
attribute names against the catalogue, subjects with `subject_problem`, and every reference
(chain, publisher, school, service, declared attribute) against the file and the registry.
OpenID providers are not contacted: an import restores a configuration even while a school's
provider is down (`school add` and the school's portal do check the provider).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from broker.cli.registry_chain_moves import KIND as CHAIN_MOVES
from broker.cli.registry_chain_moves import check_chain_changes, read_chain_moves
from broker.cli.registry_entries import Entries, Problems, list_of
from broker.cli.registry_idp_rules import KIND as IDP_RULES
from broker.cli.registry_idp_rules import check_idp_rules, read_idp_rules
from broker.cli.registry_key_versions import KIND as KEY_VERSIONS
from broker.cli.registry_key_versions import read_key_versions
from broker.cli.registry_references import check_references
from broker.cli.registry_toml import FORMAT
from broker.cli.school_oidc import SecretFileInvalid, read_secret
from broker.core.admins import Publisher
from broker.core.catalogue import CATALOGUE
from broker.core.chain_ids import chain_id_problem
from broker.core.endpoints import (
    MAX_PRIVACY_CONTACT,
    host_refusal,
    is_acceptable_endpoint,
    privacy_contact_link,
    privacy_contact_problem,
)
from broker.core.hosted_domain import MAX_DOMAIN, checked_hosted_domain
from broker.core.model import (
    AssertionEncryption,
    Chain,
    ClientAuthMethod,
    Declaration,
    NamingProfile,
    OidcClient,
    OidcUpstream,
    Protocol,
    School,
    Service,
)
from broker.core.school_aliases import aliases_problem, clean_aliases
from broker.core.subjects import lacks_realms, subject_problem
from broker.core.towns import MAX_TOWN, clean_town, town_problem
from broker.oidc.registration import logout_problems, registration_problems
from broker.oidc.rp_discovery import ASYMMETRIC_ALGORITHMS
from broker.registry.snapshot import PolicyEntry, SchoolEntry, ServiceEntry, Snapshot
from broker.saml.metadata_check import (
    MAX_METADATA_BYTES,
    MetadataInvalid,
    idp_entity_id,
    single_idp_entity,
)
from broker.saml.metadata_fetch import metadata_url_problem
from broker.saml.metadata_report import sp_metadata_problems

MAX_FILE_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
_SECRET_METHODS = (ClientAuthMethod.SECRET_BASIC, ClientAuthMethod.SECRET_POST)
NAMED = {"id", "name"}
SOURCES = ("saml_metadata", "saml_metadata_file", "saml_entity_id", "oidc")
SCHOOL_KEYS = NAMED | {
    "subject",
    "eck_id",
    "scopes",
    "privacy_contact",
    "town",
    "aliases",
    "idp_names_school",
    # Beside saml_metadata(_file): where that copy came from, fetched by `metadata refresh`.
    "saml_metadata_url",
    *SOURCES,
}
SCHOOL_OIDC_KEYS = {"issuer", "client_id", "client_secret_file", "algorithms", "hosted_domain"}
SERVICE_KEYS = NAMED | {
    "publisher",
    "chain",
    "approved",
    "naming",
    "declaration_version",
    "reconfirm_version",
    "assertion_encryption",
    # Beside saml_metadata(_file): where that copy came from, fetched by `metadata refresh`.
    "saml_metadata_url",
    *SOURCES,
    "declarations",
}
SERVICE_OIDC_KEYS = {
    "client_id",
    "redirect_uris",
    "auth_method",
    "secret_sha256",
    "jwks_uri",
    "id_token_alg",
    "refresh_tokens",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
}
POLICY_KEYS = {"school", "service", "release", "active", "version", "declaration_version"}


class ImportRefused(ValueError):
    """The file has problems; nothing was imported. A command-line answer only (no web page
    shows it), so it is not in the broker's error tree."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


@dataclass
class _Reading:
    folder: Path
    problems: Problems
    # The names (by kind and id) and towns (by school id) the registry holds: one the file
    # leaves as it is is not checked again, so a name registered before a rule of
    # core/display_text.py does not stop an import that does not change it.
    names: dict[tuple[str, str], str]
    towns: dict[str, str]
    # Each registered service's assertion encryption: what the checks of a file without the
    # key assume (the import leaves the column as it finds it then: snapshot.py).
    encryption: dict[str, AssertionEncryption]

    def name(self, entry: Entries, kind: str) -> str:
        """The entry's name (`kind`: chain, publisher, school, service), checked unless the
        registry holds it for this id."""
        entry_id = entry.table.get("id")
        registered = self.names.get((kind, entry_id)) if isinstance(entry_id, str) else None
        return entry.name(registered=registered)

    def chain_id(self, entry: Entries) -> str:
        """A chain's id: a new one in the one shape of core/chain_ids.py; one the registry
        holds as it is (registered before that rule: renaming it would change every pseudonym
        of its chain, so `registry problems` names it instead)."""
        chain_id = entry.identifier("id")
        registered = ("chain", chain_id) in self.names
        if chain_id and not registered and (problem := chain_id_problem(chain_id)):
            entry.wrong("id", problem)
        return chain_id

    def town(self, entry: Entries) -> str:
        """The school's town as stored (absent: none), checked unless the registry holds it."""
        town = clean_town(entry.optional_text("town", limit=MAX_TOWN) or "")
        entry_id = entry.table.get("id")
        registered = self.towns.get(entry_id) if isinstance(entry_id, str) else None
        if town != registered and (problem := town_problem(town)):
            entry.wrong("town", f"the town {problem}")
        return town

    def metadata(self, entry: Entries) -> str | None:
        """Inline `saml_metadata`, or `saml_metadata_file` relative to the TOML file."""
        if entry.has("saml_metadata"):
            return entry.text("saml_metadata", limit=MAX_METADATA_BYTES)
        path_text = entry.text("saml_metadata_file", limit=1000)
        if not path_text:
            return None
        try:
            return (self.folder / path_text).read_text(encoding="utf-8")
        except OSError as err:
            entry.wrong("saml_metadata_file", f"cannot read {path_text}: {err.strerror}")
        except UnicodeDecodeError:
            entry.wrong("saml_metadata_file", f"{path_text} is not UTF-8 text")
        return None

    def one_source(self, entry: Entries) -> bool:
        """Exactly one of the SAML metadata keys and `oidc`; True when it is `oidc`."""
        given = [k for k in SOURCES if entry.has(k)]
        if len(given) != 1:
            entry.wrong("saml_metadata", f"give one of {', '.join(SOURCES)}")
        return given == ["oidc"]


def _school(reading: _Reading, entry: Entries) -> SchoolEntry | None:
    """A school with its privacy contact, its town and its aliases (absent in the file:
    none)."""
    found = _school_and_provider(reading, entry)
    if found is not None and lacks_realms(found.school):
        entry.wrong(
            "subject",
            f"{found.school.subject_attribute} needs the school's realms: without scopes every "
            "value is dropped and no student can sign in; give scopes, or another subject",
        )
    contact = privacy_contact_link(
        entry.optional_text("privacy_contact", limit=MAX_PRIVACY_CONTACT) or ""
    )
    if contact and (problem := privacy_contact_problem(contact)):
        entry.wrong("privacy_contact", problem)
    town = reading.town(entry)
    aliases = clean_aliases(entry.strings("aliases", default=[]))
    name = entry.table.get("name")  # checked as a name in _school_and_provider
    if problem_of_aliases := aliases_problem(name if isinstance(name, str) else "", aliases):
        entry.wrong("aliases", str(problem_of_aliases))
    # Whether its IdP's logins must name their school (absent: as the registry has it).
    names_school = entry.flag("idp_names_school", False) if entry.has("idp_names_school") else None
    if found is None:
        return None
    school = replace(found.school, privacy_contact=contact, town=town, aliases=aliases)
    return SchoolEntry(school, found.metadata, names_school, _metadata_url(entry))


def _metadata_url(entry: Entries) -> str | None:
    """`saml_metadata_url`: the address the school's or service's copy (`saml_metadata` or its
    file, which it goes beside) was fetched from, kept for `metadata refresh` (cli/url_refresh.py);
    the
    import itself fetches nothing. The fetch's own rule for an address (https, plain http only
    on loopback, no user name or password)."""
    if not entry.has("saml_metadata_url"):
        return None
    url = entry.text("saml_metadata_url", limit=1024)
    if not (entry.has("saml_metadata") or entry.has("saml_metadata_file")):
        entry.wrong(
            "saml_metadata_url",
            "goes beside saml_metadata or saml_metadata_file (the copy fetched from it)",
        )
    elif problem := metadata_url_problem(url):
        entry.wrong("saml_metadata_url", problem)
    return url


def _school_and_provider(reading: _Reading, entry: Entries) -> SchoolEntry | None:
    school_id, name = entry.identifier("id"), reading.name(entry, "school")
    eck_id, scopes = entry.flag("eck_id", False), entry.strings("scopes", default=[])
    if reading.one_source(entry):
        oidc = entry.table_of("oidc", SCHOOL_OIDC_KEYS)
        subject = entry.text("subject", limit=64, default="sub")
        if (problem := subject_problem(subject, Protocol.OIDC)) and subject:
            entry.wrong("subject", problem)
        upstream = _upstream(reading, oidc) if oidc is not None else None
        if upstream is None:
            return None
        school = School(school_id, name, upstream.issuer, subject, eck_id, tuple(scopes), upstream)
        return SchoolEntry(school, "")
    subject = entry.text("subject", limit=64, default="name_id")
    if (problem := subject_problem(subject, Protocol.SAML)) and subject:
        entry.wrong("subject", problem)
    if entry.has("saml_entity_id"):
        # Its metadata comes from a [[metadata.sources]] source (operations.md).
        federated = entry.text("saml_entity_id", limit=1024)
        school = School(school_id, name, federated, subject, eck_id, tuple(scopes))
        return SchoolEntry(school, "") if federated else None
    xml = reading.metadata(entry)
    if not xml:
        return None
    xml = single_idp_entity(xml)
    try:
        entity_id = idp_entity_id(xml)
    except MetadataInvalid as err:
        entry.wrong("saml_metadata", err.detail)
        return None
    return SchoolEntry(School(school_id, name, entity_id, subject, eck_id, tuple(scopes)), xml)


def _upstream(reading: _Reading, oidc: Entries) -> OidcUpstream | None:
    issuer = oidc.text("issuer", limit=1024)
    if issuer and (rejected := host_refusal(issuer)) is not None:
        oidc.wrong("issuer", rejected.words)
    elif issuer and not is_acceptable_endpoint(issuer):
        oidc.wrong("issuer", "must be an https URL (plain http only on loopback)")
    client_id = oidc.text("client_id", limit=1024)
    algorithms = oidc.strings("algorithms", default=["RS256"])
    refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if refused or not algorithms:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        oidc.wrong("algorithms", f"{', '.join(refused) or '(none)'} not allowed; use {allowed}")
    # Required for Google's issuer (core/hosted_domain.py): a file without it is refused,
    # an exported school that lacks it among them, with the fix named.
    typed = oidc.optional_text("hosted_domain", limit=MAX_DOMAIN) or ""
    domain, problem = checked_hosted_domain(issuer, typed)
    if issuer and problem:
        oidc.wrong("hosted_domain", problem)
    secret_path = oidc.text("client_secret_file", limit=1000)
    secret = ""
    if secret_path:
        try:
            secret = read_secret(reading.folder / secret_path)
        except SecretFileInvalid as err:
            oidc.wrong("client_secret_file", str(err))
    if not (issuer and client_id and secret):
        return None
    return OidcUpstream(issuer, client_id, secret, tuple(algorithms), domain)


def _service(reading: _Reading, entry: Entries) -> ServiceEntry | None:
    service_id, name = entry.identifier("id"), reading.name(entry, "service")
    publisher = entry.optional_text("publisher", limit=64)
    chain = entry.optional_text("chain", limit=64)
    naming = entry.text("naming", limit=8, default="oid")
    if naming and naming not in {n.value for n in NamingProfile}:
        entry.wrong("naming", "must be oid or plain")
        naming = "oid"
    declarations = _declarations(entry)
    declaration_version = entry.number("declaration_version", 1)
    # Absent (a file written by hand, or before revision 0010): every version counts as one
    # that schools confirmed again, as it then did.
    reconfirm_version = entry.number("reconfirm_version", declaration_version)
    if reconfirm_version > declaration_version:
        entry.wrong("reconfirm_version", "must not be above declaration_version")
        reconfirm_version = declaration_version
    encryption = _assertion_encryption(entry, reading.encryption.get(service_id))
    base = Service(
        service_id,
        name,
        "",
        chain,
        NamingProfile(naming or "oid"),
        declarations,
        approved=entry.flag("approved", False),
        publisher_id=publisher,
        declaration_version=declaration_version,
        reconfirm_version=reconfirm_version,
        assertion_encryption=encryption,
    )
    url = _metadata_url(entry)
    if reading.one_source(entry):
        oidc = entry.table_of("oidc", SERVICE_OIDC_KEYS)
        client = _client(oidc) if oidc is not None else None
        if client is None or oidc is None:
            return None
        if entry.has("assertion_encryption"):
            entry.wrong("assertion_encryption", "only a SAML service has assertions to encrypt")
        # The client id is the service id unless the registry says otherwise.
        client_id = oidc.text("client_id", limit=1024, default=service_id)
        service = replace(
            base,
            entity_id=client_id,
            protocol=Protocol.OIDC,
            oidc=client,
            assertion_encryption=AssertionEncryption.AUTO,
        )
        return ServiceEntry(service, None)
    # Absent: written as the registry has it when the import writes (snapshot.py).
    given = entry.has("assertion_encryption")
    if entry.has("saml_entity_id"):
        # An explicit `auto` is checked against the source's copy in the import's transaction
        # (registry/import_encryption.py): the file does not hold the metadata logins use.
        federated = entry.text("saml_entity_id", limit=1024)
        service = replace(base, entity_id=federated)
        return ServiceEntry(service, None, encryption_given=given) if federated else None
    xml = reading.metadata(entry)
    if not xml:
        return None
    xml = single_idp_entity(xml)
    # A service set to `off` is never encrypted for: its key is no reason to refuse it.
    entity_id, problems = sp_metadata_problems(
        xml, encrypting=encryption is AssertionEncryption.AUTO
    )
    for problem in problems:
        entry.wrong("saml_metadata", problem.detail)
    if entity_id is None:
        return None
    return ServiceEntry(
        replace(base, entity_id=entity_id), xml, encryption_given=given, metadata_url=url
    )


def _assertion_encryption(
    entry: Entries, registered: AssertionEncryption | None
) -> AssertionEncryption:
    """`auto` or `off` as the file says; absent (a file from before revision 0019, an export,
    which writes only `off`, or one written by hand): as the registry has it for this service
    (`registered`), as `idp_names_school` is; `auto` for a new one. That is only what the
    file's checks assume: the import does not write an absent setting (`encryption_given`), so
    an operator's `off`, also one set while the import runs, is never undone by a file that
    does not mention it."""
    if not entry.has("assertion_encryption"):
        return registered or AssertionEncryption.AUTO
    value = entry.text("assertion_encryption", limit=8)
    try:
        return AssertionEncryption(value)
    except ValueError:
        if value:
            entry.wrong("assertion_encryption", "must be auto or off")
        return AssertionEncryption.AUTO


def _declarations(entry: Entries) -> tuple[Declaration, ...]:
    found: dict[str, Declaration] = {}
    for item in entry.tables("declarations", {"attribute", "purpose", "purpose_en", "required"}):
        attribute = item.text("attribute", limit=64)
        # `purpose` is the Dutch text (every page's fallback), `purpose_en` the optional English.
        purpose = item.text("purpose", limit=500)
        purpose_en = item.optional_text("purpose_en", limit=500) or ""
        required = item.flag("required", False)
        if attribute and attribute not in CATALOGUE:
            item.wrong("attribute", f"unknown attribute {attribute!r}")
        elif attribute in found:
            item.wrong("attribute", f"{attribute!r} is declared twice")
        elif attribute:
            found[attribute] = Declaration(attribute, purpose, required, purpose_en)
    return tuple(found.values())


def _client(oidc: Entries) -> OidcClient | None:
    uris = tuple(oidc.strings("redirect_uris"))
    method_text = oidc.text("auth_method", limit=32, default="client_secret_basic")
    methods = {m.value: m for m in ClientAuthMethod}
    method = methods.get(method_text)
    if method is None:
        oidc.wrong("auth_method", f"must be one of {', '.join(methods)}")
        return None
    jwks_uri = oidc.optional_text("jwks_uri", limit=1024)
    alg = oidc.text("id_token_alg", limit=16, default="RS256")
    post_logout = tuple(oidc.strings("post_logout_redirect_uris", default=[]))
    backchannel = oidc.optional_text("backchannel_logout_uri", limit=1024)
    problems = registration_problems(uris, method, jwks_uri, alg)
    for key, problem in problems + logout_problems(post_logout, backchannel):
        oidc.wrong(key, problem)
    secret_hash = oidc.optional_text("secret_sha256", limit=64)
    if method in _SECRET_METHODS and not (secret_hash and _SHA256.match(secret_hash)):
        oidc.wrong("secret_sha256", f"{method.value} needs the secret's SHA-256 (64 hex digits)")
    elif method not in _SECRET_METHODS and secret_hash is not None:
        oidc.wrong("secret_sha256", f"{method.value} has no secret")
    refresh = oidc.flag("refresh_tokens", False)
    return OidcClient(
        uris,
        method,
        secret_hash,
        jwks_uri,
        alg,
        refresh,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=backchannel,
        backchannel_logout_session_required=oidc.flag("backchannel_logout_session_required", False),
    )


def _policy(entry: Entries) -> tuple[PolicyEntry, bool] | None:
    school, service = entry.text("school", limit=64), entry.text("service", limit=64)
    release = entry.strings("release", default=[])
    for name in release:
        if name not in CATALOGUE:
            entry.wrong("release", f"unknown attribute {name!r}")
    if not (school and service):
        return None
    accepted = entry.number("declaration_version", 1)
    policy = PolicyEntry(
        school,
        service,
        frozenset(release),
        entry.number("version", 1),
        entry.flag("active", True),
        accepted,
    )
    return policy, entry.has("declaration_version")


def read_registry_file(
    path: Path, current: Snapshot, held_idps: frozenset[str] = frozenset()
) -> Snapshot:
    """The file as a snapshot, or `ImportRefused` with every problem (nothing half-read).
    `held_idps`: the IdP entity ids a metadata source holds (their schools' own copies are
    not used, so not compared: registry/shared_idps.py)."""
    problems = Problems()
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            raise ImportRefused([f"{path}: larger than 64 MiB"])
        document = tomllib.loads(raw.decode("utf-8"))
    except OSError as err:
        raise ImportRefused([f"{path}: cannot read it ({err.strerror})"]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ImportRefused([f"{path}: not a TOML file ({err})"]) from None
    top = Entries(document, path.name, problems, {"format", *_KINDS})
    if document.get("format") != FORMAT:
        top.wrong("format", f"must be {FORMAT} (this broker's export format)")
    reading = _Reading(path.parent, problems, *_registered(current))
    chains = [
        (e, Chain(reading.chain_id(e), reading.name(e, "chain")))
        for e in list_of(document, "chains", problems, NAMED)
    ]
    publishers = [
        (e, Publisher(e.identifier("id"), reading.name(e, "publisher")))
        for e in list_of(document, "publishers", problems, NAMED)
    ]
    schools = [
        (e, _school(reading, e)) for e in list_of(document, "schools", problems, SCHOOL_KEYS)
    ]
    services = [
        (e, _service(reading, e)) for e in list_of(document, "services", problems, SERVICE_KEYS)
    ]
    policies = [(e, _policy(e)) for e in list_of(document, "policies", problems, POLICY_KEYS)]
    idp_rules = read_idp_rules(document, problems)
    snapshot = check_references(
        current,
        chains,
        publishers,
        schools,
        services,
        policies,
        held_idps=held_idps,
        named_idps=frozenset(entity_id for _, entity_id in idp_rules),
    )
    now = datetime.now(UTC)
    key_versions = read_key_versions(document, problems, current, snapshot, now)
    check_chain_changes(services, current, now)
    moves = read_chain_moves(document, problems, current, snapshot, now)
    named = check_idp_rules(idp_rules, current, snapshot)
    snapshot = replace(
        snapshot, key_versions=key_versions, chain_moves=moves, idps_naming_school=named
    )
    if problems.lines:
        raise ImportRefused(problems.lines)
    return snapshot


def _registered(
    current: Snapshot,
) -> tuple[dict[tuple[str, str], str], dict[str, str], dict[str, AssertionEncryption]]:
    """The names, towns and assertion encryption settings of what the registry holds, as
    `_Reading` looks them up."""
    names = {("chain", c.id): c.name for c in current.chains}
    names |= {("publisher", p.id): p.name for p in current.publishers}
    names |= {("school", s.school.id): s.school.name for s in current.schools}
    names |= {("service", s.service.id): s.service.name for s in current.services}
    encryption = {s.service.id: s.service.assertion_encryption for s in current.services}
    return names, {s.school.id: s.school.town for s in current.schools}, encryption


_KINDS = (
    "chains",
    "publishers",
    "schools",
    IDP_RULES,
    "services",
    "policies",
    KEY_VERSIONS,
    CHAIN_MOVES,
)
