"""Several schools on one SAML IdP or OpenID issuer (a school board's, revisions 0014 and 0015)
on SQLite and PostgreSQL: the registry admits the shared entity id or issuer, keeps one metadata
per IdP (none compared while a source holds it), keeps one protocol per provider, keeps whether
the provider's logins name their school (set by the second school, kept when schools leave, BRIN
ids only), locks it on PostgreSQL, and the migrations go down and up again."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, inspect, text

from broker.core.errors import BadRequest, ConfigurationError
from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import OidcUpstream, School
from broker.registry import DuplicateEntry, SqlRegistry, migrate
from broker.registry.cached import CachedRegistryReader
from broker.registry.errors import (
    MetadataChanged,
    SchoolIdNotBrin,
    SharedIdpMetadataDiffers,
    SharedIdpNamesSchool,
    UnknownIdp,
)
from broker.registry.migration import migration_connection, model_drift
from broker.registry.shared_idps import _IDP_LOCK_SPACE
from broker.registry.snapshot import SchoolEntry, Snapshot
from tests.storage.test_publisher_integrity import HEAD, _move, _revision
from tests.support.sealing import TEST_SEAL

BOARD_IDP = "https://sts.bestuur.example/adfs/services/trust"
BOARD_XML = "<board-idp/>"
NOORD = School("10AA", "Lyceum Noord", BOARD_IDP)
ZUID = School("10AA01", "Lyceum Zuid", BOARD_IDP)
ELSEWHERE = School("20BB", "Ander College", "https://idp.ander.example")
_NOW = datetime.now(UTC)
UNDATED = FeedDates(None, None)


def test_two_schools_share_one_idp_with_its_metadata(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(ZUID, BOARD_XML)
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    # By id, both: no reader picks one of them.
    assert sql_registry.schools_by_idp(BOARD_IDP) == (NOORD, ZUID)
    assert CachedRegistryReader(sql_registry).schools_by_idp(BOARD_IDP) == (NOORD, ZUID)
    assert sql_registry.schools_by_idp(ELSEWHERE.idp_entity_id) == (ELSEWHERE,)
    assert sql_registry.schools_by_idp("https://idp.unknown.example") == ()
    assert sql_registry.school_metadata()[BOARD_IDP] == BOARD_XML


def test_a_school_joining_with_other_metadata_is_refused(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    generation = sql_registry.generation()
    with pytest.raises(SharedIdpMetadataDiffers) as refused:
        sql_registry.add_school(ZUID, "<older-board-idp/>")
    assert refused.value.school_ids == ("10AA",)
    assert "school update --id 10AA --saml-metadata" in refused.value.detail
    assert sql_registry.school(ZUID.id) is None
    assert sql_registry.generation() == generation


def test_an_update_of_one_schools_metadata_is_the_idps(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ZUID, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    also = sql_registry.update_school_metadata(ZUID.id, "<new-board-idp/>", BOARD_XML)
    assert also == (NOORD.id,)
    for school in (NOORD, ZUID):
        assert sql_registry.registered_metadata("idp", school.id) == "<new-board-idp/>"
    assert sql_registry.registered_metadata("idp", ELSEWHERE.id) == "<other/>"
    # Compare-and-set over every school on the IdP: a stale copy changes none of them.
    with pytest.raises(MetadataChanged):
        sql_registry.update_school_metadata(NOORD.id, "<stale/>", BOARD_XML)
    assert sql_registry.registered_metadata("idp", ZUID.id) == "<new-board-idp/>"
    # An IdP of one school: nothing else to say.
    assert sql_registry.update_school_metadata(ELSEWHERE.id, "<other-2/>") == ()


BOARD_ISSUER = "https://login.microsoftonline.com/bestuur-tenant/v2.0"


def _on_issuer(school_id: str, client_id: str = "board-client", secret: str = "s") -> School:
    upstream = OidcUpstream(BOARD_ISSUER, client_id, secret)
    return School(school_id, f"OIDC {school_id}", BOARD_ISSUER, "sub", oidc=upstream)


def test_schools_share_an_openid_issuer_as_they_share_an_idp(sql_registry: SqlRegistry) -> None:
    """A board's Entra ID tenant or Keycloak realm: the rule of a board's SAML IdP, by issuer.
    Each school keeps its own client (id, secret); two may hold the same client id."""
    view = CachedRegistryReader(sql_registry)
    north, south = _on_issuer("30CC", secret="north"), _on_issuer("30CC01", secret="south")
    east = _on_issuer("30CC02", client_id="east-client")
    sql_registry.add_school(north, "")
    assert not sql_registry.idp_names_school(BOARD_ISSUER)
    sql_registry.add_school(south, "")
    # Set by the write that put the second school on the issuer.
    assert sql_registry.idp_names_school(BOARD_ISSUER) and view.idp_names_school(BOARD_ISSUER)
    sql_registry.add_school(east, "")
    assert sql_registry.schools_by_idp(BOARD_ISSUER) == (north, south, east)
    assert view.schools_by_idp(BOARD_ISSUER) == (north, south, east)
    opened = sql_registry.school(south.id)
    assert opened is not None and opened.oidc is not None
    assert (opened.oidc.client_id, opened.oidc.client_secret) == ("board-client", "south")
    generation = sql_registry.generation()
    with pytest.raises(SchoolIdNotBrin, match="'lyceum-oost' is not a BRIN"):
        sql_registry.add_school(_on_issuer("lyceum-oost"), "")
    with pytest.raises(SharedIdpNamesSchool):
        sql_registry.set_idp_names_school(north.id, False)
    with pytest.raises(SharedIdpNamesSchool):
        sql_registry.set_names_school_of_idp(BOARD_ISSUER, False)
    assert sql_registry.generation() == generation
    # Kept when schools leave: the tenant still signs in every school's students.
    for school in (south, east):
        sql_registry.remove_school(school.id, apply=True, removed_by="cli:ops")
    assert view.idp_names_school(BOARD_ISSUER)
    assert sql_registry.snapshot().schools[0].idp_names_school is True
    assert sql_registry.set_names_school_of_idp(BOARD_ISSUER, False) == (True, (north.id,))
    assert sql_registry.set_idp_names_school(north.id, True) == (BOARD_ISSUER, True)


def test_an_entity_id_and_an_issuer_are_not_one_provider(sql_registry: SqlRegistry) -> None:
    """A SAML school on an OpenID school's issuer (or the other way round) is refused: one
    text, two providers."""
    sql_registry.add_school(_on_issuer("30CC"), "")
    with pytest.raises(DuplicateEntry):
        sql_registry.add_school(School("30CC01", "SAML on the issuer", BOARD_ISSUER), "<x/>")
    sql_registry.add_school(NOORD, BOARD_XML)
    with pytest.raises(DuplicateEntry):
        twin = School("30CC02", "OIDC", BOARD_IDP, "sub", oidc=OidcUpstream(BOARD_IDP, "b", "s"))
        sql_registry.add_school(twin, "")
    assert [s.id for s in sql_registry.schools_by_idp(BOARD_ISSUER)] == ["30CC"]
    assert not sql_registry.idp_names_school(BOARD_ISSUER)


def test_googles_issuer_keeps_one_school(sql_registry: SqlRegistry) -> None:
    """Its schools are told apart by hosted domain, and Google sends no `school_id`: a board
    mark would refuse every login of both, the first school's too."""
    google = "https://accounts.google.com"

    def on_google(school_id: str, domain: str) -> School:
        upstream = OidcUpstream(google, "c", "s", hosted_domain=domain)
        return School(school_id, school_id, google, "sub", oidc=upstream)

    sql_registry.add_school(on_google("30CC", "noord.example"), "")
    with pytest.raises(DuplicateEntry):
        sql_registry.add_school(on_google("30CC01", "zuid.example"), "")
    # Nor is it marked by the operator: every login of its school would be refused.
    for mark in (
        lambda: sql_registry.set_idp_names_school("30CC", True),
        lambda: sql_registry.set_names_school_of_idp(google, True),
    ):
        with pytest.raises(BadRequest, match="sends no school_id claim") as refused:
            mark()
        assert refused.value.code == "idp_names_school_google"
    assert not sql_registry.idp_names_school(google)


def test_a_schools_portal_cannot_move_it_onto_a_shared_issuer(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(_on_issuer("30CC"), "")
    own = "https://keycloak.school.example/realms/school"
    alone = School("40DD", "Eigen", own, "sub", oidc=OidcUpstream(own, "c", "s"))
    sql_registry.add_school(alone, "")
    with pytest.raises(DuplicateEntry):
        sql_registry.update_school_idp(replace(_on_issuer("40DD"), name="Eigen"), "")
    assert sql_registry.schools_by_idp(own) == (alone,)


def test_a_schools_portal_cannot_move_it_onto_a_shared_idp(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    moved = School(ELSEWHERE.id, ELSEWHERE.name, BOARD_IDP)
    with pytest.raises(DuplicateEntry):
        sql_registry.update_school_idp(moved, BOARD_XML)
    assert sql_registry.school(ELSEWHERE.id) == ELSEWHERE


def test_revision_0014_goes_down_only_without_a_shared_idp(registry_url: str) -> None:
    migrate(registry_url)
    with closing(SqlRegistry(registry_url)) as registry:
        registry.add_school(NOORD, BOARD_XML)
        registry.add_school(ZUID, BOARD_XML)
    _refused_down(registry_url, "0013", "1 identity provider")
    with closing(SqlRegistry(registry_url)) as registry:
        registry.remove_school(ZUID.id, apply=True, removed_by="cli:ops")
        registry.set_idp_names_school(NOORD.id, False)  # else 0015 refuses to go down
    _move(registry_url, "0013", down=True)
    with migration_connection(registry_url) as connection:
        unique = inspect(connection).get_unique_constraints("schools")
        assert [u["column_names"] for u in unique] == [["idp_entity_id"]]
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    with migration_connection(registry_url) as connection:
        assert inspect(connection).get_unique_constraints("schools") == []
        indexes = inspect(connection).get_indexes("schools")
        assert [(i["column_names"], i["unique"]) for i in indexes] == [(["idp_entity_id"], False)]
    with closing(SqlRegistry(registry_url)) as registry:
        registry.add_school(ZUID, BOARD_XML)
        assert registry.schools_by_idp(BOARD_IDP) == (NOORD, ZUID)


def _refused_down(url: str, revision: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        _move(url, revision, down=True)
    assert _revision(url) == HEAD  # nothing was changed


# -- revision 0015: whether an IdP's logins name their school is the IdP's, and it stays ------
def test_the_second_school_makes_the_idp_name_its_school_and_it_stays(
    sql_registry: SqlRegistry,
) -> None:
    view = CachedRegistryReader(sql_registry)
    sql_registry.add_school(NOORD, BOARD_XML)
    assert not sql_registry.idp_names_school(BOARD_IDP) and not view.idp_names_school(BOARD_IDP)
    sql_registry.add_school(ZUID, BOARD_XML)
    assert sql_registry.idp_names_school(BOARD_IDP) and view.idp_names_school(BOARD_IDP)
    # Clearing it while two schools are on the IdP: refused, nothing changed.
    generation = sql_registry.generation()
    with pytest.raises(SharedIdpNamesSchool):
        sql_registry.set_idp_names_school(NOORD.id, False)
    assert sql_registry.generation() == generation
    # One school leaves: the board's IdP still signs in its students, the rule stays.
    sql_registry.remove_school(ZUID.id, apply=True, removed_by="cli:ops")
    assert sql_registry.idp_names_school(BOARD_IDP) and view.idp_names_school(BOARD_IDP)
    # The operator clears it for the IdP of one school, and sets it again.
    assert sql_registry.set_idp_names_school(NOORD.id, False) == (BOARD_IDP, True)
    assert not view.idp_names_school(BOARD_IDP)
    assert sql_registry.set_idp_names_school(NOORD.id, False) == (BOARD_IDP, False)
    assert sql_registry.set_idp_names_school(NOORD.id, True) == (BOARD_IDP, True)
    assert view.idp_names_school(BOARD_IDP)
    assert sql_registry.snapshot().schools[0].idp_names_school is True


def test_an_idp_that_names_its_school_takes_brin_ids_only(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.set_idp_names_school(NOORD.id, True)
    west = School("lyceum-west", "Lyceum West", "https://idp.west.example")
    sql_registry.add_school(west, "<west/>")
    generation = sql_registry.generation()
    not_a_brin = School("lyceum-zuid", "Lyceum Zuid", BOARD_IDP)
    with pytest.raises(SchoolIdNotBrin, match="'lyceum-zuid' is not a BRIN"):
        sql_registry.add_school(not_a_brin, BOARD_XML)
    # Nor can the flag be set for an IdP with a school whose id is not a BRIN.
    with pytest.raises(SchoolIdNotBrin):
        sql_registry.set_idp_names_school(west.id, True)
    assert sql_registry.generation() == generation
    # The board's school gone, its IdP still names the school: no school without a BRIN
    # moves onto it in its portal either.
    sql_registry.remove_school(NOORD.id, apply=True, removed_by="cli:ops")
    with pytest.raises(SchoolIdNotBrin):
        sql_registry.update_school_idp(School(west.id, west.name, BOARD_IDP), BOARD_XML)
    assert sql_registry.school(not_a_brin.id) is None
    assert sql_registry.school(west.id) == west
    assert not sql_registry.idp_names_school(west.idp_entity_id)


def test_a_school_joins_no_idp_whose_school_has_no_brin(sql_registry: SqlRegistry) -> None:
    """The second school makes the IdP's logins name their school, so a school already on it
    must have a BRIN as id too: else its students would be locked out without a word. Refused
    naming that school and what to do; nothing written (SAML IdP and OpenID issuer alike)."""
    noord = School("lyceum-noord", "Lyceum Noord", BOARD_IDP)
    sql_registry.add_school(noord, BOARD_XML)
    oidc_noord = _on_issuer("oidc-noord")
    sql_registry.add_school(oidc_noord, "")
    generation = sql_registry.generation()
    for joining, metadata in ((ZUID, BOARD_XML), (_on_issuer("30CC01"), "")):
        with pytest.raises(SchoolIdNotBrin) as refused:
            sql_registry.add_school(joining, metadata)
        existing = "lyceum-noord" if metadata else "oidc-noord"
        assert f"school {existing!r}, already on this IdP, has an id that is not a BRIN" in str(
            refused.value.detail
        )
        assert f"Register {existing!r} again with its BRIN as id first" in str(refused.value.detail)
        assert sql_registry.school(joining.id) is None
    assert sql_registry.generation() == generation
    assert not sql_registry.idp_names_school(BOARD_IDP)
    assert not sql_registry.idp_names_school(BOARD_ISSUER)
    assert sql_registry.schools_by_idp(BOARD_IDP) == (noord,)


def test_a_source_held_idps_own_copies_are_not_compared(sql_registry: SqlRegistry) -> None:
    """Logins use a source's copy of an IdP it holds (reading.py): after the source's roll-over
    the next school of the board joins with the source's new copy, or with none."""
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.federation.store(
        "board", "digest", UNDATED, [FederationEntity(BOARD_IDP, "idp", "<rolled/>", None)], _NOW
    )
    sql_registry.add_school(ZUID, "")
    assert sql_registry.school_metadata()[BOARD_IDP] == "<rolled/>"
    assert [s.id for s in sql_registry.schools_by_idp(BOARD_IDP)] == [NOORD.id, ZUID.id]


def test_an_import_marks_an_idp_it_shares_and_takes_the_files_word(
    sql_registry: SqlRegistry,
) -> None:
    sql_registry.import_snapshot(
        Snapshot(schools=(SchoolEntry(NOORD, BOARD_XML), SchoolEntry(ZUID, BOARD_XML))), "t"
    )
    assert sql_registry.idp_names_school(BOARD_IDP)
    sql_registry.remove_school(ZUID.id, apply=True, removed_by="cli:ops")
    # The same file again leaves it; a file that says false clears it (one school left).
    again = sql_registry.import_snapshot(Snapshot(schools=(SchoolEntry(NOORD, BOARD_XML),)), "t")
    assert not again.touched and sql_registry.idp_names_school(BOARD_IDP)
    cleared = Snapshot(schools=(SchoolEntry(NOORD, BOARD_XML, idp_names_school=False),))
    assert sql_registry.import_snapshot(cleared, "t").changed == [
        f"IdP {BOARD_IDP} need not name school"
    ]
    assert not sql_registry.idp_names_school(BOARD_IDP)
    # A school without a BRIN on an IdP the file says names the school: nothing imported.
    generation = sql_registry.generation()
    wrong = School("lyceum-zuid", "Lyceum Zuid", BOARD_IDP)
    with pytest.raises(SchoolIdNotBrin):
        sql_registry.import_snapshot(
            Snapshot(
                schools=(
                    SchoolEntry(NOORD, BOARD_XML, idp_names_school=True),
                    SchoolEntry(wrong, BOARD_XML),
                )
            ),
            "t",
        )
    assert sql_registry.generation() == generation and sql_registry.school(wrong.id) is None


def test_the_operator_sets_and_clears_an_idps_mark_by_its_entity_id(
    sql_registry: SqlRegistry,
) -> None:
    """`school update-idp`: the mark of an IdP reached by its entity id, also once no school is
    on it (a board IdP that turned out to be one school's, then lost that school too)."""
    view = CachedRegistryReader(sql_registry)
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ZUID, BOARD_XML)
    generation = sql_registry.generation()
    with pytest.raises(SharedIdpNamesSchool):
        sql_registry.set_names_school_of_idp(BOARD_IDP, False)
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, True) == (False, (NOORD.id, ZUID.id))
    assert sql_registry.generation() == generation
    for school in (NOORD, ZUID):
        sql_registry.remove_school(school.id, apply=True, removed_by="cli:ops")
    assert sql_registry.snapshot().idps_naming_school == (BOARD_IDP,)
    # No school on it: cleared by its entity id, and every worker's view follows.
    assert view.idp_names_school(BOARD_IDP)
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, False) == (True, ())
    assert not sql_registry.idp_names_school(BOARD_IDP) and not view.idp_names_school(BOARD_IDP)
    assert sql_registry.snapshot().idps_naming_school == ()
    # Now nothing holds the entity id: unknown, to clear and to set (a typing error's mark).
    generation = sql_registry.generation()
    for wanted in (False, True):
        with pytest.raises(UnknownIdp, match="no school is registered on IdP"):
            sql_registry.set_names_school_of_idp(BOARD_IDP, wanted)
    with pytest.raises(UnknownIdp):
        sql_registry.set_names_school_of_idp("https://sts.bestuur.example/typo", True)
    assert sql_registry.generation() == generation
    assert sql_registry.idps_naming_school() == frozenset()
    # A board's IdP a metadata source holds, before its first school: set, kept, cleared.
    sql_registry.federation.store(
        "board", "digest", UNDATED, [FederationEntity(BOARD_IDP, "idp", "<board/>", None)], _NOW
    )
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, True) == (True, ())
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, True) == (False, ())
    assert view.idp_names_school(BOARD_IDP)
    with pytest.raises(SchoolIdNotBrin):  # its rule holds for the next school at once
        sql_registry.add_school(School("lyceum-west", "Lyceum West", BOARD_IDP), "")
    sql_registry.add_school(NOORD, "")
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, False) == (True, (NOORD.id,))
    assert sql_registry.set_names_school_of_idp(BOARD_IDP, False) == (False, (NOORD.id,))


def test_an_idps_mark_by_entity_id_keeps_the_idps_rules(sql_registry: SqlRegistry) -> None:
    """By an OpenID provider's issuer too, and BRIN ids only on an IdP that names the school."""
    issuer = "https://login.bestuur.example"
    sql_registry.add_school(
        School("oidc-school", "OIDC", issuer, "sub", oidc=OidcUpstream(issuer, "a", "s")), ""
    )
    west = School("lyceum-west", "Lyceum West", "https://idp.west.example")
    sql_registry.add_school(west, "<west/>")
    generation = sql_registry.generation()
    with pytest.raises(SchoolIdNotBrin, match="'oidc-school' is not a BRIN"):
        sql_registry.set_names_school_of_idp(issuer, True)
    with pytest.raises(SchoolIdNotBrin, match="'lyceum-west' is not a BRIN"):
        sql_registry.set_names_school_of_idp(west.idp_entity_id, True)
    assert sql_registry.generation() == generation
    assert sql_registry.idps_naming_school() == frozenset()
    # A board's issuer with one school so far: the operator marks it by the issuer.
    sql_registry.add_school(_on_issuer("30CC"), "")
    assert sql_registry.set_names_school_of_idp(BOARD_ISSUER, True) == (True, ("30CC",))
    assert sql_registry.idps_naming_school() == frozenset({BOARD_ISSUER})


def test_revision_0015_marks_the_idps_shared_at_the_upgrade(registry_url: str) -> None:
    migrate(registry_url)
    with closing(SqlRegistry(registry_url)) as registry:
        registry.add_school(NOORD, BOARD_XML)
        registry.add_school(ZUID, BOARD_XML)
        registry.add_school(ELSEWHERE, "<other/>")
    _move(registry_url, "0014", down=True)
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    with closing(SqlRegistry(registry_url)) as registry:
        assert registry.idps_naming_school() == frozenset({BOARD_IDP})


def test_revision_0015_goes_down_only_without_a_marked_idp_of_one_school(
    registry_url: str,
) -> None:
    """0014 counts schools: a mark on an IdP of one school would be lost without a word."""
    migrate(registry_url)
    with closing(SqlRegistry(registry_url)) as registry:
        registry.add_school(NOORD, BOARD_XML)
        registry.add_school(ZUID, BOARD_XML)
        registry.remove_school(ZUID.id, apply=True, removed_by="cli:ops")  # the mark stays
    _refused_down(registry_url, "0014", r"1 identity provider.*--no-idp-names-school")
    with closing(SqlRegistry(registry_url)) as registry:
        assert registry.idps_naming_school() == frozenset({BOARD_IDP})
        registry.set_idp_names_school(NOORD.id, False)
        # A mark on an IdP no school is on any more does not stand in the way.
        registry.add_school(ELSEWHERE, "<other/>")
        registry.set_idp_names_school(ELSEWHERE.id, True)
        registry.remove_school(ELSEWHERE.id, apply=True, removed_by="cli:ops")
    _move(registry_url, "0014", down=True)
    assert _revision(registry_url) == "0014"
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    with closing(SqlRegistry(registry_url)) as registry:
        assert registry.idps_naming_school() == frozenset()  # no IdP is shared


@pytest.mark.postgres
def test_registrations_on_one_idp_take_its_lock_on_postgresql(
    postgres_registry_url: str,
) -> None:
    """Two registrations on one IdP must not both pass `check_joining` (each would read the
    rows committed before the other's): every write that puts a school on an entity id, or
    changes what a joining school is checked against, holds the IdP's advisory lock for its
    transaction (shared_idps.lock_idp)."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(registry._engine, "before_cursor_execute", seen)
    try:
        registry.add_school(NOORD, BOARD_XML)
        locks = [s for s in statements if "pg_advisory_xact_lock" in s]
        assert len(locks) == 1 and "hashtext" in locks[0]
        # Held by the writer: another transaction cannot take it meanwhile.
        with registry._engine.connect() as first, registry._engine.connect() as second:
            first.execute(text("BEGIN"))
            first.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:entity_id))"),
                {"space": _IDP_LOCK_SPACE, "entity_id": BOARD_IDP},
            )
            held = second.scalar(
                text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:entity_id))"),
                {"space": _IDP_LOCK_SPACE, "entity_id": BOARD_IDP},
            )
            assert held is False
            first.execute(text("ROLLBACK"))
        for write in (
            lambda: registry.add_school(ZUID, BOARD_XML),
            lambda: registry.add_school(_on_issuer("30CC"), ""),
            lambda: registry.set_names_school_of_idp(BOARD_ISSUER, True),
            lambda: registry.update_school_idp(ELSEWHERE, "<x/>"),
            lambda: registry.import_snapshot(
                Snapshot(schools=(SchoolEntry(NOORD, BOARD_XML),)), "t"
            ),
            lambda: registry.set_idp_names_school(NOORD.id, True),
            lambda: registry.set_names_school_of_idp(BOARD_IDP, False),
            # A metadata update committing between a joining school's check and its insert
            # would leave the IdP with two copies.
            lambda: registry.update_school_metadata(NOORD.id, "<board-idp-2/>"),
        ):
            statements.clear()
            try:
                write()
            except BadRequest:
                pass
            assert any("pg_advisory_xact_lock" in s for s in statements)
    finally:
        registry.close()
