"""The OpenID provider's ID-token keys: RS256 always, ES256 for clients that registered it.

Key ids are RFC 7638 thumbprints, so a key keeps its id across restarts and workers without any
bookkeeping, and a rotated key gets a new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from broker.config import OidcSettings
from broker.core.errors import ConfigurationError

RS256 = "RS256"
ES256 = "ES256"


def _load(path: Path, kind: type[RSAKey] | type[ECKey], alg: str) -> RSAKey | ECKey:
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


class SigningKeys:
    def __init__(self, settings: OidcSettings) -> None:
        self._keys: dict[str, RSAKey | ECKey] = {RS256: _load(settings.rsa_key, RSAKey, RS256)}
        if settings.ec_key is not None:
            self._keys[ES256] = _load(settings.ec_key, ECKey, ES256)

    @property
    def algorithms(self) -> list[str]:
        return list(self._keys)

    def key_for(self, alg: str) -> RSAKey | ECKey:
        key = self._keys.get(alg)
        if key is None:
            raise ConfigurationError(f"no OIDC signing key for {alg}")
        return key

    def key_set(self) -> KeySet:
        """Every key the provider signs with: what checks its own tokens (an id_token_hint)."""
        return KeySet(list(self._keys.values()))

    def jwks(self) -> dict[str, Any]:
        """The public keys only: what /oidc/jwks publishes."""
        return dict(KeySet(list(self._keys.values())).as_dict(private=False))
