"""The SQL registry on SQLite and PostgreSQL (fixtures in conftest.py)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest

from broker.core.errors import BadRequest, StoreUnavailable, UnknownSchool, UnknownService
from broker.core.model import (
    Chain,
    Declaration,
    NamingProfile,
    Protocol,
    ReleasePolicy,
    School,
    Service,
)
from broker.core.ports import RegistryReader
from broker.core.receipts import ReceiptKeys
from broker.registry import (
    DuplicateEntry,
    PolicyChange,
    SqlRegistry,
    UndeclaredAttribute,
    UnknownChain,
    migrate,
)
from broker.registry.cached import CachedRegistryReader
from broker.registry.errors import ServiceSwitchedOff
from broker.registry.migration import model_drift

RECEIPT_KEYS = ReceiptKeys.from_key(bytes(range(32)))

SCHOOL = School(
    id="00AA",
    name="Het Voorbeeld College",
    idp_entity_id="https://idp.voorbeeld.nl/saml",
    subject_attribute="username",
    use_eck_id=True,
    scopes=("voorbeeld.nl", "leerling.voorbeeld.nl"),
)
OTHER_SCHOOL = School(id="11BB", name="Andere School", idp_entity_id="https://idp.andere.nl")
CHAIN = Chain(id="uitgever-a", name="Uitgever A")
SERVICE = Service(
    id="lesmethode",
    name="Lesmethode Online",
    entity_id="https://sp.lesmethode.nl/saml",
    chain_id="uitgever-a",
    naming=NamingProfile.PLAIN,
    declarations=(
        Declaration("given_name", "to greet the student"),
        Declaration("groups", "to show the class its assignments", required=True),
        Declaration("email", "to send results"),
    ),
)
LONE_SERVICE = Service(
    id="toets",
    name="Toets App",
    entity_id="https://rp.toets.nl",
    chain_id=None,
    protocol=Protocol.OIDC,
)
IDP_XML = "<md:EntityDescriptor entityID='https://idp.voorbeeld.nl/saml'/>"
SP_XML = "<md:EntityDescriptor entityID='https://sp.lesmethode.nl/saml'/>"


@pytest.fixture
def filled(sql_registry: SqlRegistry) -> SqlRegistry:
    sql_registry.add_chain(CHAIN)
    sql_registry.add_school(SCHOOL, IDP_XML)
    sql_registry.add_school(OTHER_SCHOOL, "<other/>")
    sql_registry.add_service(SERVICE, SP_XML)
    sql_registry.add_service(LONE_SERVICE, None)
    return sql_registry


# -- schema


def test_migrate_creates_an_empty_registry_and_is_idempotent(registry_url: str) -> None:
    migrate(registry_url)
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        assert registry.generation() == 0
        assert registry.schools() == []
        assert registry.services() == []
        assert registry.chains() == []
        assert registry.school_metadata() == {}
    finally:
        registry.close()


def test_migration_head_matches_the_models(registry_url: str) -> None:
    migrate(registry_url)
    assert model_drift(registry_url) == []


def test_implements_the_registry_reader_port(sql_registry: SqlRegistry) -> None:
    reader: RegistryReader = sql_registry
    wanted = {name for name in vars(RegistryReader) if not name.startswith("_")}
    assert wanted <= set(dir(reader))


def test_unreachable_database_is_store_unavailable(tmp_path: object) -> None:
    registry = SqlRegistry(f"sqlite:///{tmp_path}/missing-directory/registry.sqlite3")
    with pytest.raises(StoreUnavailable):
        registry.policy("00AA", "lesmethode")


# -- round trips


def test_school_round_trip(filled: SqlRegistry) -> None:
    assert filled.school("00AA") == SCHOOL
    assert filled.schools_by_idp("https://idp.voorbeeld.nl/saml") == (SCHOOL,)
    assert filled.schools() == [SCHOOL, OTHER_SCHOOL]
    assert filled.school("99ZZ") is None
    assert filled.schools_by_idp("https://idp.unknown.nl") == ()


def test_chain_round_trip(filled: SqlRegistry) -> None:
    assert filled.chain("uitgever-a") == CHAIN
    assert filled.chains() == [CHAIN]
    assert filled.chain("nope") is None


def test_service_round_trip_keeps_declarations_in_order(filled: SqlRegistry) -> None:
    assert filled.service("lesmethode") == SERVICE
    assert filled.service_by_entity_id("https://sp.lesmethode.nl/saml") == SERVICE
    assert filled.service("toets") == LONE_SERVICE
    assert filled.services() == [SERVICE, LONE_SERVICE]
    assert filled.service("nope") is None
    assert filled.service_by_entity_id("https://nope") is None


def test_metadata_round_trip(filled: SqlRegistry) -> None:
    assert filled.school_metadata() == {
        SCHOOL.idp_entity_id: IDP_XML,
        OTHER_SCHOOL.idp_entity_id: "<other/>",
    }
    # The OIDC service has no SAML metadata, so it is not listed.
    assert filled.service_metadata() == {SERVICE.entity_id: SP_XML}

    filled.update_school_metadata("00AA", "<new-idp/>")
    filled.update_service_metadata("lesmethode", "<new-sp/>")
    assert filled.school_metadata()[SCHOOL.idp_entity_id] == "<new-idp/>"
    assert filled.service_metadata() == {SERVICE.entity_id: "<new-sp/>"}


def test_metadata_updates_of_unknown_entries(filled: SqlRegistry) -> None:
    generation = filled.generation()
    with pytest.raises(UnknownSchool):
        filled.update_school_metadata("99ZZ", "<x/>")
    with pytest.raises(UnknownService):
        filled.update_service_metadata("nope", "<x/>")
    assert filled.generation() == generation


# -- policies


def test_default_policy_is_the_pseudonym_alone(filled: SqlRegistry) -> None:
    assert filled.policy("00AA", "lesmethode") == ReleasePolicy(
        "00AA", "lesmethode", frozenset(), 0
    )
    assert filled.policy_history("00AA", "lesmethode") == []
    assert filled.policies_for_school("00AA") == []


def test_policy_versions_count_up_and_history_says_who_when_what(
    registry_url: str, filled: SqlRegistry
) -> None:
    start = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    moments = iter(start + timedelta(minutes=step) for step in range(10))
    registry = SqlRegistry(registry_url, clock=lambda: next(moments))
    try:
        first = registry.set_policy("00AA", "lesmethode", frozenset({"groups"}), "admin@00aa")
        second = registry.set_policy(
            "00AA", "lesmethode", frozenset({"groups", "given_name"}), "mentor@00aa"
        )
        third = registry.set_policy("00AA", "lesmethode", frozenset(), "admin@00aa")
    finally:
        registry.close()

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert second == ReleasePolicy("00AA", "lesmethode", frozenset({"groups", "given_name"}), 2)
    assert filled.policy("00AA", "lesmethode") == third
    assert filled.policy_history("00AA", "lesmethode") == [
        PolicyChange("00AA", "lesmethode", 1, frozenset({"groups"}), start, "admin@00aa"),
        PolicyChange(
            "00AA",
            "lesmethode",
            2,
            frozenset({"groups", "given_name"}),
            start + timedelta(minutes=1),
            "mentor@00aa",
        ),
        PolicyChange(
            "00AA", "lesmethode", 3, frozenset(), start + timedelta(minutes=2), "admin@00aa"
        ),
    ]
    # Another school's policy for the same service is its own, still the default.
    assert filled.policy("11BB", "lesmethode").version == 0


def test_policies_for_school(filled: SqlRegistry) -> None:
    filled.set_policy("00AA", "lesmethode", frozenset({"email"}), "admin")
    filled.set_policy("11BB", "lesmethode", frozenset({"groups"}), "admin")
    assert filled.policies_for_school("00AA") == [
        ReleasePolicy("00AA", "lesmethode", frozenset({"email"}), 1)
    ]


def test_policy_change_shows_in_another_instance_at_once(
    registry_url: str, filled: SqlRegistry
) -> None:
    other_worker = SqlRegistry(registry_url)
    try:
        assert other_worker.policy("00AA", "lesmethode").version == 0
        filled.set_policy("00AA", "lesmethode", frozenset({"groups"}), "admin")
        assert other_worker.policy("00AA", "lesmethode").attributes == {"groups"}
    finally:
        other_worker.close()


@pytest.mark.parametrize(
    ("school_id", "service_id", "attributes", "error"),
    [
        ("99ZZ", "lesmethode", frozenset({"groups"}), UnknownSchool),
        ("00AA", "nope", frozenset(), UnknownService),
        ("00AA", "lesmethode", frozenset({"groups", "eck_id"}), UndeclaredAttribute),
        ("00AA", "toets", frozenset({"email"}), UndeclaredAttribute),
    ],
)
def test_refused_policy_changes_change_nothing(
    filled: SqlRegistry,
    school_id: str,
    service_id: str,
    attributes: frozenset[str],
    error: type[BadRequest],
) -> None:
    filled.set_policy("00AA", "lesmethode", frozenset({"given_name"}), "admin")
    before = filled.policy("00AA", "lesmethode")
    with pytest.raises(error):
        filled.set_policy(school_id, service_id, attributes, "admin")
    assert filled.policy("00AA", "lesmethode") == before
    assert len(filled.policy_history("00AA", "lesmethode")) == 1
    assert filled.policy("00AA", "toets").version == 0


def test_undeclared_attribute_names_attribute_and_service(filled: SqlRegistry) -> None:
    with pytest.raises(UndeclaredAttribute) as raised:
        filled.set_policy("00AA", "lesmethode", frozenset({"eck_id", "groups"}), "admin")
    assert isinstance(raised.value, BadRequest)
    assert raised.value.code == "undeclared_attribute"
    assert "eck_id" in str(raised.value)
    assert "lesmethode" in str(raised.value)
    assert "groups" not in str(raised.value)


def test_policy_needs_an_administrator(filled: SqlRegistry) -> None:
    with pytest.raises(BadRequest):
        filled.set_policy("00AA", "lesmethode", frozenset(), "")
    assert filled.policy_history("00AA", "lesmethode") == []


def test_concurrent_policy_changes_get_distinct_versions(filled: SqlRegistry) -> None:
    def change(admin: str) -> None:
        for _ in range(5):
            filled.set_policy("00AA", "lesmethode", frozenset({"groups"}), admin)

    threads = [threading.Thread(target=change, args=(f"admin{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = filled.policy_history("00AA", "lesmethode")
    assert [change.version for change in history] == list(range(1, 21))
    assert filled.policy("00AA", "lesmethode").version == 20


def _change_policy_five_times(url: str, admin: str) -> None:
    registry = SqlRegistry(url)
    try:
        for _ in range(5):
            registry.set_policy("00AA", "lesmethode", frozenset({"email"}), admin)
    finally:
        registry.close()


def test_concurrent_policy_changes_from_several_processes(
    registry_url: str, filled: SqlRegistry
) -> None:
    # spawn, not fork: each worker opens its own engine, as gunicorn workers do after start-up.
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_change_policy_five_times, args=(registry_url, f"worker{n}"))
        for n in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    versions = [change.version for change in filled.policy_history("00AA", "lesmethode")]
    assert versions == list(range(1, 16))


# -- duplicates and references


def test_duplicates_are_refused_clearly(filled: SqlRegistry) -> None:
    generation = filled.generation()
    attempts: list[tuple[Callable[[], None], str]] = [
        (lambda: filled.add_school(School("00AA", "x", "https://idp.new"), "<x/>"), "id"),
        (lambda: filled.add_chain(Chain("uitgever-a", "again")), "id"),
        (lambda: filled.add_service(Service("toets", "x", "https://new", None), None), "id"),
        (
            lambda: filled.add_service(Service("new", "x", SERVICE.entity_id, None), None),
            "entity_id",
        ),
    ]
    for attempt, field in attempts:
        with pytest.raises(DuplicateEntry) as raised:
            attempt()
        assert isinstance(raised.value, BadRequest)
        assert raised.value.field == field
    assert filled.generation() == generation
    assert filled.school("22CC") is None
    assert filled.service("new") is None


def test_a_service_declares_an_attribute_once(filled: SqlRegistry) -> None:
    twice = Service(
        "dubbel",
        "x",
        "https://dubbel",
        None,
        declarations=(Declaration("email", "a"), Declaration("email", "b")),
    )
    with pytest.raises(DuplicateEntry):
        filled.add_service(twice, None)
    assert filled.service("dubbel") is None


def test_chain_assignment(filled: SqlRegistry) -> None:
    filled.add_chain(Chain("uitgever-b", "Uitgever B"))
    filled.set_service_chain("toets", "uitgever-b")
    assert filled.service("toets") == Service(
        "toets", "Toets App", "https://rp.toets.nl", "uitgever-b", protocol=Protocol.OIDC
    )
    filled.set_service_chain("lesmethode", None)
    moved = filled.service("lesmethode")
    assert moved is not None
    assert moved.chain_id is None


def test_unknown_chains_are_refused(filled: SqlRegistry) -> None:
    generation = filled.generation()
    with pytest.raises(UnknownChain):
        filled.set_service_chain("toets", "nope")
    with pytest.raises(UnknownService):
        filled.set_service_chain("nope", "uitgever-a")
    with pytest.raises(UnknownChain):
        filled.add_service(Service("new", "x", "https://new", "nope"), None)
    assert filled.service("toets") == LONE_SERVICE
    assert filled.service("new") is None
    assert filled.generation() == generation


def test_a_service_in_no_chain_is_a_chain_of_its_own(filled: SqlRegistry) -> None:
    lone = filled.service_by_entity_id("https://rp.toets.nl")
    assert lone is not None
    assert lone.chain_id is None
    assert lone.pseudonym_chain == "service:toets"


# -- generation


def test_generation_follows_everything_a_login_reads(
    sql_registry: SqlRegistry,
) -> None:
    seen = [sql_registry.generation()]

    def bumped() -> bool:
        seen.append(sql_registry.generation())
        return seen[-1] != seen[-2]

    sql_registry.add_chain(CHAIN)
    assert bumped()
    sql_registry.add_school(SCHOOL, IDP_XML)
    assert bumped()
    sql_registry.add_service(SERVICE, SP_XML)
    assert bumped()
    sql_registry.update_school_metadata("00AA", "<changed/>")
    assert bumped()
    sql_registry.update_service_metadata("lesmethode", "<changed/>")
    assert bumped()
    sql_registry.set_service_chain("lesmethode", None)
    assert bumped()
    sql_registry.set_policy("00AA", "lesmethode", frozenset({"groups"}), "admin")
    assert bumped()  # every worker's view caches policies (registry/cached.py)
    sql_registry.receipt_book(RECEIPT_KEYS).set_notice_mode("00AA", "lesmethode", "changes")
    assert bumped()
    # A refused change bumps nothing.
    with pytest.raises(UndeclaredAttribute):
        sql_registry.set_policy("00AA", "lesmethode", frozenset({"eck_id"}), "admin")
    assert not bumped()


def test_the_workers_view_sees_a_change_made_in_its_process_at_once(
    filled: SqlRegistry,
) -> None:
    view = CachedRegistryReader(filled, max_staleness=3600)
    book = filled.receipt_book(RECEIPT_KEYS)

    def notice_mode() -> str:
        return view.per_pair(
            "notice_mode", "00AA", "lesmethode", lambda: book.notice_mode("00AA", "lesmethode")
        )

    assert view.policy("00AA", "lesmethode").version == 0
    assert notice_mode() == "session"
    filled.set_policy("00AA", "lesmethode", frozenset({"groups"}), "admin")
    assert view.policy("00AA", "lesmethode").attributes == {"groups"}
    book.set_notice_mode("00AA", "lesmethode", "changes")
    assert notice_mode() == "changes"
    filled.set_policy("00AA", "lesmethode", frozenset(), "admin", active=False)
    with pytest.raises(ServiceSwitchedOff):
        view.policy("00AA", "lesmethode")


def test_another_workers_view_sees_a_policy_change_within_a_second(
    registry_url: str, filled: SqlRegistry
) -> None:
    other_worker = SqlRegistry(registry_url)
    clock = [0.0]
    view = CachedRegistryReader(other_worker, clock=lambda: clock[0])
    try:
        # Another process does not see this process's signal, only the database's generation.
        with patch("broker.registry.cached.local_changes", return_value=0):
            assert view.policy("00AA", "lesmethode").version == 0
            filled.set_policy("00AA", "lesmethode", frozenset({"groups"}), "admin")
            clock[0] += 0.5
            assert view.policy("00AA", "lesmethode").version == 0  # kept for up to a second
            clock[0] += 0.6
            assert view.policy("00AA", "lesmethode").attributes == {"groups"}
    finally:
        other_worker.close()
