"""pysaml2's metadata store with an index from entity id to the sources that hold it.

pysaml2's `MetadataStore` keeps metadata as sources (here one per registered school or service:
`entities.ParsedMetadata` puts one `InMemoryMetaData` per document) and answers every question
about one entity by asking each source in turn until one knows it. With 2,000 registered
entities that took ~1 ms for the last one, and a login asks several times (the SSO request, the
school's SSO endpoint, its keys at the ACS, the service's ACS), the discovery page once per
listed school. This store asks only the sources that hold the entity, found in a dict.

The answers are pysaml2's own: each method below runs `MetadataStore`'s code over a narrowed
view of the sources. In each of those loops a source that does not hold the entity contributes
nothing (its `service` gives None, its `[...]` raises KeyError, `in` is False), so leaving such
sources out changes no result, no exception and no order; an entity held by several sources is
asked of all of them, in the store's order. Questions about the whole store (`keys`, `items`,
`with_descriptor`, `identity_providers`, ...) are pysaml2's, unchanged.

The index is made from the sources' entities when a lookup first needs it after a write: every
write to the sources (pysaml2's `load`, `imp`, `reload`, `metadata[key] = ...`, ours) counts,
so a source replaced or removed leaves nothing behind. A source must be loaded before it is put
in the store (pysaml2's `load` and `ParsedMetadata` both do so); a source whose entities are not
known in advance (MDQ, fetched per entity) turns the index off and every source is asked.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from dataclasses import dataclass
from typing import Any

from saml2.config import Config, IdPConfig, SPConfig
from saml2.config import ConfigurationError as SamlConfigurationError
from saml2.mdstore import InMemoryMetaData, MetadataStore

# What pysaml2's per-entity methods call on a source. A source class that keeps these as
# InMemoryMetaData has them is one whose entities are exactly its `keys()`.
_ENTITY_METHODS = (
    "keys",
    "items",
    "__contains__",
    "__getitem__",
    "service",
    "ext_service",
    "attribute_requirement",
)


def _entities_known(source: object) -> bool:
    kind = type(source)
    return isinstance(source, InMemoryMetaData) and all(
        getattr(kind, name) is getattr(InMemoryMetaData, name) for name in _ENTITY_METHODS
    )


class _Sources(MutableMapping[Any, Any]):
    """The store's sources by key (pysaml2's `MetadataStore.metadata`), counting writes so
    that the index knows when it no longer describes them."""

    def __init__(self, sources: Mapping[Any, Any]) -> None:
        self._data: dict[Any, Any] = dict(sources)
        self.writes = 0

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __setitem__(self, key: Any, source: Any) -> None:
        self._data[key] = source
        self.writes += 1

    def __delitem__(self, key: Any) -> None:
        del self._data[key]
        self.writes += 1

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # pysaml2 walks these in its whole-store methods: the dict's own views are quicker than
    # the generic ones Mapping would build.
    def keys(self) -> KeysView[Any]:
        return self._data.keys()

    def items(self) -> ItemsView[Any, Any]:
        return self._data.items()

    def values(self) -> ValuesView[Any]:
        return self._data.values()


class _Narrowed:
    """The one thing pysaml2's per-entity methods read of their store, `metadata`, holding
    only the sources of one entity."""

    __slots__ = ("metadata",)

    def __init__(self, metadata: dict[Any, Any]) -> None:
        self.metadata = metadata


_HELD_BY_NONE = _Narrowed({})


@dataclass(frozen=True)
class _Index:
    sources: _Sources
    writes: int
    # None: a source's entities are not known in advance, so every lookup asks every source.
    holders: dict[str, _Narrowed] | None


def _index_of(sources: _Sources) -> _Index:
    writes = sources.writes
    holders: dict[str, dict[Any, Any]] = {}
    for key, source in sources.items():
        if not _entities_known(source):
            return _Index(sources, writes, None)
        # keys(): a pysaml2 source is no iterable, it only looks like a mapping.
        for entity_id in source.keys():  # noqa: SIM118
            holders.setdefault(entity_id, {})[key] = source
    return _Index(sources, writes, {e: _Narrowed(held) for e, held in holders.items()})


class IndexedMetadataStore(MetadataStore):  # type: ignore[misc]  # pysaml2 has no types
    """A `MetadataStore` whose per-entity lookups cost the same for any number of sources."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sources = _Sources({})
        self._index: _Index | None = None
        super().__init__(*args, **kwargs)

    @property
    def metadata(self) -> _Sources:
        return self._sources

    @metadata.setter
    def metadata(self, sources: Any) -> None:
        # pysaml2 assigns a plain dict (`__init__`, `reload`), "" (`MetaData.__init__`), or
        # back the sources it saved (`reload` on failure).
        self._sources = sources if isinstance(sources, _Sources) else _Sources(sources or {})

    def _holding(self, entity_id: Any) -> Any:
        """What to run pysaml2's method on: the entity's sources, or all (no index)."""
        index = self._index
        sources = self._sources
        if index is None or index.sources is not sources or index.writes != sources.writes:
            # Threads that race here build the same index; the last one kept is as good.
            index = self._index = _index_of(sources)
        if index.holders is None:
            return self
        return index.holders.get(entity_id, _HELD_BY_NONE)

    # Every method below is MetadataStore's, over the sources of `entity_id` alone. `certs`,
    # `entity_categories`, `entity_attributes`, `supported_algorithms`, `mdui_*`,
    # `single_sign_on_service`, `assertion_consumer_service`, `single_logout_service` and the
    # rest go through `__getitem__` or `service`.

    def __getitem__(self, item: Any) -> Any:
        return MetadataStore.__getitem__(self._holding(item), item)

    def service(self, entity_id: Any, typ: Any, service: Any, binding: Any = None) -> Any:
        return MetadataStore.service(self._holding(entity_id), entity_id, typ, service, binding)

    def ext_service(self, entity_id: Any, typ: Any, service: Any, binding: Any = None) -> Any:
        held = self._holding(entity_id)
        return MetadataStore.ext_service(held, entity_id, typ, service, binding)

    def extension(self, entity_id: Any, typ: Any, service: Any) -> Any:
        return MetadataStore.extension(self._holding(entity_id), entity_id, typ, service)

    def attribute_requirement(self, entity_id: Any, index: Any = None) -> Any:
        held = self._holding(entity_id)
        return MetadataStore.attribute_requirement(held, entity_id, index)

    def name(self, entity_id: Any, langpref: str = "en") -> Any:
        return MetadataStore.name(self._holding(entity_id), entity_id, langpref)

    def bindings(self, entity_id: Any, typ: Any, service: Any) -> Any:
        return MetadataStore.bindings(self._holding(entity_id), entity_id, typ, service)


def _load_indexed_metadata(config: Config, metadata_conf: Any) -> IndexedMetadataStore:
    """pysaml2's `Config.load_metadata`, making an IndexedMetadataStore."""
    if config.attribute_converters is None:
        raise SamlConfigurationError("Missing attribute converter specification")
    store = IndexedMetadataStore(
        config.attribute_converters,
        config,
        getattr(config, "ca_certs", None),
        disable_ssl_certificate_validation=getattr(
            config, "disable_ssl_certificate_validation", False
        ),
        http_client_timeout=config.http_client_timeout,
    )
    store.imp(metadata_conf)
    return store


class IndexedIdPConfig(IdPConfig):  # type: ignore[misc]
    """pysaml2's IdP configuration, its metadata in an IndexedMetadataStore."""

    load_metadata = _load_indexed_metadata


class IndexedSPConfig(SPConfig):  # type: ignore[misc]
    """pysaml2's SP configuration, its metadata in an IndexedMetadataStore."""

    load_metadata = _load_indexed_metadata
