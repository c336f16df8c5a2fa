"""The OpenID provider's ID-token keys: RS256 always, ES256 for clients that registered it.

Key ids are RFC 7638 thumbprints, so a key keeps its id across restarts and workers without any
bookkeeping, and a rotated key gets a new one. The keys come from the broker's key set
(broker/core/key_schedule.py): ID tokens are signed with the generation whose signing period is
current, and the JWKS lists every published generation, so a relying party that refreshed its
cached JWKS during the publish period verifies the first token of the next key.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyChoice, KeyFiles, KeyGeneration, KeySource

RS256 = "RS256"
ES256 = "ES256"

OidcKey = RSAKey | ECKey


def _load(path: Path, kind: type[RSAKey] | type[ECKey], alg: str) -> OidcKey:
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"OIDC signing key {path}: {err.strerror}") from None
    try:
        key = kind.import_key(pem)
    except (ValueError, TypeError):
        raise ConfigurationError(f"OIDC signing key {path} is not a {alg} private key") from None
    if not key.is_private:
        raise ConfigurationError(f"OIDC signing key {path} holds no private key")
    return kind.import_key(pem, {"kid": key.thumbprint(), "use": "sig", "alg": alg})


def _generation_keys(generation: KeyGeneration) -> dict[str, OidcKey]:
    files = generation.files
    keys: dict[str, OidcKey] = {}
    if files.oidc_rsa is not None:
        keys[RS256] = _load(files.oidc_rsa, RSAKey, RS256)
    if files.oidc_ec is not None:
        keys[ES256] = _load(files.oidc_ec, ECKey, ES256)
    return keys


class SigningKeys:
    def __init__(self, source: KeySource) -> None:
        self._source = source
        self._lock = threading.Lock()
        # Loaded once per generation (importing a PEM key costs milliseconds).
        self._loaded: dict[KeyFiles, dict[str, OidcKey]] = {}
        self._jwks: tuple[tuple[int, tuple[int, ...]], dict[str, Any]] | None = None
        if not self.algorithms:
            raise ConfigurationError("the signing key set holds no OIDC key")

    def _keys_of(self, generation: KeyGeneration) -> dict[str, OidcKey]:
        cache_key = generation.files
        keys = self._loaded.get(cache_key)
        if keys is None:
            keys = _generation_keys(generation)
            with self._lock:
                self._loaded[cache_key] = keys
        return keys

    def _forget_unpublished(self, choice: KeyChoice) -> None:
        with self._lock:
            published = {g.files for g in choice.published}
            for cache_key in [k for k in self._loaded if k not in published]:
                del self._loaded[cache_key]

    @property
    def algorithms(self) -> list[str]:
        return list(self._keys_of(self._source.current().signing))

    def key_for(self, alg: str) -> OidcKey:
        """The key that signs now for `alg`."""
        key = self._keys_of(self._source.current().signing).get(alg)
        if key is None:
            raise ConfigurationError(f"no OIDC signing key for {alg}")
        return key

    def published_algorithms(self) -> list[str]:
        """Every algorithm some published key signs with (checking tokens signed before a
        rotation, whose key may have had an algorithm the current one has not)."""
        choice = self._source.current()
        return sorted({alg for g in choice.published for alg in self._keys_of(g)})

    def key_set(self) -> KeySet:
        """Every published key (the JWKS's, private halves included): what checks the
        provider's own tokens, such as an id_token_hint signed before a rotation."""
        choice = self._source.current()
        return KeySet([key for g in choice.published for key in self._keys_of(g).values()])

    def jwks(self) -> dict[str, Any]:
        """The public keys only: what /oidc/jwks publishes, every published generation's."""
        choice = self._source.current()
        cached = self._jwks
        if cached is not None and cached[0] == choice.state:
            return cached[1]
        self._forget_unpublished(choice)
        keys: list[Any] = [key for g in choice.published for key in self._keys_of(g).values()]
        document = dict(KeySet(keys).as_dict(private=False))
        self._jwks = (choice.state, document)
        return document


def key_ids(generation: KeyGeneration) -> dict[str, str]:
    """The `kid` each of a generation's OIDC keys has in the JWKS, by algorithm."""
    return {alg: str(key.kid) for alg, key in _generation_keys(generation).items()}
