"""`registry export` and `registry import` on SQLite and PostgreSQL: a round trip gives the same
file, a second import changes nothing, an invalid entry anywhere changes nothing, an OIDC
client's secret still authenticates after the trip, and so does the rule of an IdP whose schools
were all removed that its logins name their school.

The source is the demo's registry (both school protocols, SAML and OIDC services, policies) plus
a publisher, an unapproved service, a second declaration version and a switched-off policy."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, prepare_demo
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.cli.registry_import import ImportRefused, read_registry_file
from broker.cli.registry_toml import export_text
from broker.core.admins import Publisher
from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import ClientAuthMethod, Declaration, Protocol, School, Service
from broker.oidc.grants import RegisteredClient
from broker.oidc.registration import new_client
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine
from broker.registry.errors import SchoolIdNotBrin
from broker.registry.tables import Base

SECRET_AT_SCHOOL = "the-demo-oidc-school-secret"
BOARD_IDP = "https://sts.bestuur.example/adfs/services/trust"
_NOW = datetime.now(UTC)
UNDATED = FeedDates(None, None)


@dataclass(frozen=True)
class Source:
    text: str
    client_secret: str


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    folder = tmp_path_factory.mktemp("export-source")
    settings, apps = prepare_demo(folder, 8710)
    registry: SqlRegistry = apps[settings.base_url].extensions["ketenbroker"].registry
    registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    client, secret = new_client(
        ("https://app.lesweb.example/callback", "http://127.0.0.1:9000/cb"),
        ClientAuthMethod.SECRET_POST,
        id_token_alg="ES256",
    )
    assert secret is not None
    registry.add_service(
        Service(
            "lesweb",
            "Lesweb",
            "lesweb",
            "leermiddelen",
            declarations=(Declaration("given_name", "to greet"),),
            protocol=Protocol.OIDC,
            oidc=client,
            approved=False,
            publisher_id="uitgever-a",
        ),
        None,
    )
    registry.set_declarations(
        "leesplank", (Declaration("groups", "to find the class", required=True),), "test"
    )
    registry.set_policy(DEMO_SCHOOL_ID, "rekenroute", frozenset(), "test", active=False)
    text = export_text(registry.snapshot(), folder / "registry.toml")
    registry.close()
    return Source(text, secret)


def _write(folder: Path, text: str) -> Path:
    (folder / f"{DEMO_OIDC_SCHOOL_ID}.client-secret").write_text(SECRET_AT_SCHOOL + "\n")
    path = folder / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


def dump(url: str) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Every row of every table, in primary-key order: what "byte-identical" compares."""
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return [
                (
                    table.name,
                    [
                        tuple(row)
                        for row in connection.execute(
                            select(table).order_by(*table.primary_key.columns)
                        )
                    ],
                )
                for table in Base.metadata.sorted_tables
            ]
    finally:
        engine.dispose()


def _import(registry: SqlRegistry, path: Path) -> list[str]:
    report = registry.import_snapshot(read_registry_file(path, registry.snapshot()), "import:t")
    return report.added + report.changed


def test_round_trip_gives_the_same_file_and_a_second_import_changes_nothing(
    source: Source, sql_registry: SqlRegistry, registry_url: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, source.text)
    touched = _import(sql_registry, path)
    assert "service lesweb" in touched and "policy 99XX00/rekenroute" in touched
    assert export_text(sql_registry.snapshot(), path) == source.text

    before, generation = dump(registry_url), sql_registry.generation()
    assert _import(sql_registry, path) == []
    assert dump(registry_url) == before
    assert sql_registry.generation() == generation

    # Versions and approval survive the trip; the imported registry behaves the same.
    assert sql_registry.service("lesweb") is None  # still waiting for approval
    leesplank = sql_registry.any_service("leesplank")
    assert leesplank is not None and leesplank.declaration_version == 2
    with pytest.raises(Exception, match="switched service rekenroute off"):
        sql_registry.policy(DEMO_SCHOOL_ID, "rekenroute")
    school = sql_registry.school(DEMO_OIDC_SCHOOL_ID)
    assert school is not None and school.oidc is not None
    assert school.oidc.client_secret == SECRET_AT_SCHOOL


def test_an_oidc_client_still_authenticates_after_the_trip(
    source: Source, sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    _import(sql_registry, _write(tmp_path, source.text))
    client = RegisteredClient(sql_registry.any_service("lesweb"))  # type: ignore[arg-type]
    assert client.check_client_secret(source.client_secret)
    assert not client.check_client_secret(source.client_secret + "x")
    assert client.check_endpoint_auth_method("client_secret_post", "token")
    assert client.check_redirect_uri("http://127.0.0.1:9000/cb")
    woordwijs = sql_registry.service(OIDC_PUBLISHER_ID)
    assert woordwijs is not None and woordwijs.oidc is not None
    assert woordwijs.oidc.refresh_tokens


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def _naming(text: str, entity_id: str) -> str:
    """The file with an `[[idps_naming_school]]` entry for `entity_id` at its end."""
    return text + f'\n[[idps_naming_school]]\nentity_id = "{entity_id}"\n'


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return found[1]


BREAKAGES: dict[str, tuple[Callable[[str], str], str]] = {
    "school metadata": (
        lambda t: _replace(t, "saml_metadata = '''\n<", "saml_metadata = '''\n<broken"),
        "schools[1] 99XX00: saml_metadata:",
    ),
    "redirect uri": (
        lambda t: _replace(t, "https://app.lesweb.example/callback", "http://app.example/cb"),
        "services[2] lesweb: oidc: redirect_uris:",
    ),
    "unknown attribute": (
        lambda t: _replace(t, 'release = ["affiliation", "given_name"]', 'release = ["shoe"]'),
        "unknown attribute 'shoe'",
    ),
    "undeclared release": (
        lambda t: re.sub(
            r'(service = "woordwijs"\nrelease = )\["given_name"\]', r'\1["email"]', t, count=1
        ),
        "woordwijs did not declare email",
    ),
    "missing chain": (
        lambda t: _replace(t, 'chain = "toetsen"', 'chain = "nergens"'),
        "no chain 'nergens'",
    ),
    "missing publisher": (
        lambda t: _replace(t, 'publisher = "uitgever-a"', 'publisher = "uitgever-x"'),
        "no publisher 'uitgever-x'",
    ),
    "typo in a key": (
        lambda t: _replace(t, "approved = true", "aproved = true"),
        "aproved: unknown key",
    ),
    "secret hash": (
        lambda t: re.sub(r'secret_sha256 = "[0-9a-f]+"', 'secret_sha256 = "abc"', t, count=1),
        "needs the secret's SHA-256",
    ),
    "duplicate id": (
        lambda t: t + '\n[[chains]]\nid = "toetsen"\nname = "Again"\n',
        "chains[3] toetsen: id: chain 'toetsen' appears twice",
    ),
    "idp rule for google's issuer": (
        lambda t: _naming(t, "https://accounts.google.com"),
        "idps_naming_school[1]: entity_id: https://accounts.google.com sends no school_id claim",
    ),
    "idp rule twice": (
        lambda t: _naming(_naming(t, BOARD_IDP), BOARD_IDP),
        f"idps_naming_school[2]: entity_id: '{BOARD_IDP}' appears twice in the file",
    ),
    "idp rule against a school's false": (
        lambda t: _naming(
            _replace(
                t,
                f'id = "{DEMO_SCHOOL_ID}"\n',
                f'id = "{DEMO_SCHOOL_ID}"\nidp_names_school = false\n',
            ),
            _first(r'entityID="([^"]+)"', t),
        ),
        f"schools[1] {DEMO_SCHOOL_ID}: idp_names_school: must not be false: [[idps_naming_school]]",
    ),
    "late in the file": (
        lambda t: t + '\n[[policies]]\nschool = "00NONE"\nservice = "leesplank"\n',
        "no school '00NONE'",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_an_invalid_entry_anywhere_changes_nothing(
    source: Source, sql_registry: SqlRegistry, registry_url: str, tmp_path: Path, breakage: str
) -> None:
    # A registry holding the good file already, and one change more in it (the first chain).
    _import(sql_registry, _write(tmp_path, source.text))
    changed = _replace(source.text, 'name = "Leermiddelen"', 'name = "Leermiddelen en meer"')
    break_it, expected = BREAKAGES[breakage]
    path = _write(tmp_path, break_it(changed))
    before = dump(registry_url)
    with pytest.raises(ImportRefused) as refused:
        read_registry_file(path, sql_registry.snapshot())
    assert any(expected in problem for problem in refused.value.problems), refused.value.problems
    assert dump(registry_url) == before


def test_merge_adds_and_updates_by_id_and_deletes_nothing(
    source: Source, sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    sql_registry.accounts.add_publisher(Publisher("alleen-hier", "Only in the registry"))
    path = _write(tmp_path, source.text)
    _import(sql_registry, path)
    changed = _replace(source.text, 'release = ["affiliation", "given_name"]', "release = []")
    touched = _import(sql_registry, _write(tmp_path, changed))
    assert touched == [f"policy {DEMO_SCHOOL_ID}/leesplank"]
    assert sql_registry.accounts.publisher("alleen-hier") is not None
    history = sql_registry.policy_history(DEMO_SCHOOL_ID, "leesplank")
    assert [c.version for c in history] == [1, 2]
    assert history[-1].changed_by == "import:t" and history[-1].attributes == frozenset()


def _board_idp_left_without_schools(url: str) -> SqlRegistry:
    """A registry whose board IdP had two schools, both removed since: the rule stays."""
    migrate(url)
    registry = SqlRegistry(url)
    registry.add_school(School("10AA", "Lyceum Noord", BOARD_IDP), "<board/>")
    registry.add_school(School("10AA01", "Lyceum Zuid", BOARD_IDP), "<board/>")
    for school_id in ("10AA", "10AA01"):
        registry.remove_school(school_id, apply=True, removed_by="cli:ops")
    assert registry.idps_naming_school() == frozenset({BOARD_IDP})
    return registry


def test_the_rule_of_an_idp_no_school_is_on_survives_the_trip(
    sql_registry: SqlRegistry, registry_url: str, tmp_path: Path
) -> None:
    """Exported as `[[idps_naming_school]]`, imported as the rule (a dry run only says so), the
    same file again changes nothing, and the board's next school is held to the rule."""
    source = _board_idp_left_without_schools(f"sqlite:///{tmp_path}/source.sqlite3")
    path = tmp_path / "registry.toml"
    text = export_text(source.snapshot(), path)
    source.close()
    assert f'[[idps_naming_school]]\nentity_id = "{BOARD_IDP}"\n' in text
    path.write_text(text, encoding="utf-8")

    before, generation = dump(registry_url), sql_registry.generation()
    snapshot = read_registry_file(path, sql_registry.snapshot())
    preview = sql_registry.import_snapshot(snapshot, "import:t", apply=False)
    assert preview.changed == [f"IdP {BOARD_IDP} names school"]
    assert dump(registry_url) == before and sql_registry.generation() == generation
    assert _import(sql_registry, path) == [f"IdP {BOARD_IDP} names school"]
    assert sql_registry.idps_naming_school() == frozenset({BOARD_IDP})
    assert export_text(sql_registry.snapshot(), path) == text

    before, generation = dump(registry_url), sql_registry.generation()
    again = sql_registry.import_snapshot(read_registry_file(path, sql_registry.snapshot()), "t")
    assert again.same == [f"IdP {BOARD_IDP}"] and not again.touched
    assert dump(registry_url) == before and sql_registry.generation() == generation
    with pytest.raises(SchoolIdNotBrin):
        sql_registry.add_school(School("lyceum-west", "Lyceum West", BOARD_IDP), "<board/>")
    # Nor through a file that names the school alone: refused with its place, before writing.
    path.write_text(
        'format = 1\n\n[[schools]]\nid = "lyceum-west"\nname = "Lyceum West"\n'
        f'saml_entity_id = "{BOARD_IDP}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ImportRefused) as refused:
        read_registry_file(path, sql_registry.snapshot())
    assert refused.value.problems[0].startswith(
        "schools[1] lyceum-west: id: school id 'lyceum-west' is not a BRIN"
    )
    sql_registry.add_school(School("10AA02", "Lyceum West", BOARD_IDP), "<board/>")
    assert sql_registry.idp_names_school(BOARD_IDP)


BOARD_ISSUER = "https://keycloak.bestuur.example/realms/scholen"


def _oidc_school_entry(school_id: str, client_id: str = "board-client") -> str:
    return (
        f'\n[[schools]]\nid = "{school_id}"\nname = "School {school_id}"\nsubject = "sub"\n'
        f'\n[schools.oidc]\nissuer = "{BOARD_ISSUER}"\nclient_id = "{client_id}"\n'
        'client_secret_file = "board.client-secret"\n'
    )


def test_schools_on_one_openid_issuer_import_as_a_board_and_export_so(
    sql_registry: SqlRegistry, registry_url: str, tmp_path: Path
) -> None:
    """A board's Keycloak realm in a file: two schools (one client) on its issuer are imported
    with the issuer marked, exported with `idp_names_school = true`; a school whose id is not a
    BRIN is refused with its place, before anything is written."""
    (tmp_path / "board.client-secret").write_text("board-secret\n")
    path = tmp_path / "registry.toml"
    refused_text = "format = 1\n" + _oidc_school_entry("30CC") + _oidc_school_entry("oost")
    path.write_text(refused_text, encoding="utf-8")
    before = dump(registry_url)
    with pytest.raises(ImportRefused) as refused:
        read_registry_file(path, sql_registry.snapshot())
    assert refused.value.problems[0].startswith(
        "schools[2] oost: id: school id 'oost' is not a BRIN"
    )
    assert dump(registry_url) == before

    text = "format = 1\n" + _oidc_school_entry("30CC") + _oidc_school_entry("30CC01")
    path.write_text(text, encoding="utf-8")
    _import(sql_registry, path)
    assert sql_registry.idps_naming_school() == frozenset({BOARD_ISSUER})
    assert [s.id for s in sql_registry.schools_by_idp(BOARD_ISSUER)] == ["30CC", "30CC01"]
    exported = export_text(sql_registry.snapshot(), path)
    assert exported.count("idp_names_school = true") == 2
    # Nor may a file take the mark off while two schools are on the issuer.
    path.write_text(
        "format = 1\n"
        + _oidc_school_entry("30CC").replace(
            'subject = "sub"', 'subject = "sub"\nidp_names_school = false'
        ),
        encoding="utf-8",
    )
    with pytest.raises(ImportRefused) as kept:
        read_registry_file(path, sql_registry.snapshot())
    assert "must be true: the IdP is shared with school(s) 30CC01" in kept.value.problems[0]


def test_the_rule_is_refused_over_a_registered_school_without_a_brin(
    sql_registry: SqlRegistry, registry_url: str, tmp_path: Path
) -> None:
    """A school the file does not name, on the IdP the file says must name the school, needs a
    BRIN as id (as `school update --idp-names-school` says): nothing is imported."""
    sql_registry.add_school(School("lyceum-west", "Lyceum West", BOARD_IDP), "<board/>")
    path = tmp_path / "registry.toml"
    path.write_text(_naming("format = 1\n", BOARD_IDP), encoding="utf-8")
    before = dump(registry_url)
    with pytest.raises(ImportRefused) as refused:
        read_registry_file(path, sql_registry.snapshot())
    assert refused.value.problems == [
        "idps_naming_school[1]: entity_id: the registry's school on this IdP: school id "
        "'lyceum-west' is not a BRIN (two digits and two capitals, and two digits for a "
        "location: 12AB, 12AB01), and logins through an IdP that must name the school compare "
        "the BRIN it sends with the school's id exactly: register the school with its BRIN as id"
    ]
    assert dump(registry_url) == before


def test_a_mark_set_or_cleared_by_entity_id_goes_with_the_file(
    sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    """`school update-idp` on an IdP no school is on: the export carries the mark it set (as
    `[[idps_naming_school]]`) and not one it cleared; an import sets a mark again, never clears
    one, and the registry rebuilt from the file exports the same file."""
    sql_registry.federation.store(
        "board", "digest", UNDATED, [FederationEntity(BOARD_IDP, "idp", "<board/>", None)], _NOW
    )
    path = tmp_path / "registry.toml"
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, True) == (True, ())
    marked = export_text(sql_registry.snapshot(), path)
    assert f'[[idps_naming_school]]\nentity_id = "{BOARD_IDP}"\n' in marked
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, False) == (True, ())
    cleared = export_text(sql_registry.snapshot(), path)
    assert "idps_naming_school" not in cleared

    other_url = f"sqlite:///{tmp_path}/other.sqlite3"
    migrate(other_url)
    other = SqlRegistry(other_url)
    try:
        path.write_text(marked, encoding="utf-8")
        assert _import(other, path) == [f"IdP {BOARD_IDP} names school"]
        assert export_text(other.snapshot(), path) == marked
        # The file without it keeps the mark (an import deletes nothing); the command clears
        # it, with no school on the IdP and no source holding it there, and the trip is whole.
        path.write_text(cleared, encoding="utf-8")
        assert _import(other, path) == [] and other.idp_names_school(BOARD_IDP)
        assert other.set_names_school_of_idp(BOARD_IDP, False) == (True, ())
        assert export_text(other.snapshot(), path) == cleared
    finally:
        other.close()
    # Back here: the file with the mark sets it again.
    path.write_text(marked, encoding="utf-8")
    assert _import(sql_registry, path) == [f"IdP {BOARD_IDP} names school"]
    assert sql_registry.idp_names_school(BOARD_IDP)
