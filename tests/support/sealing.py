"""The sealing key of registries that tests open without a configuration: derived from a
made-up session secret, as `Settings.secret_seal()` derives the broker's from its own."""

from __future__ import annotations

from broker.core.sealed_secrets import SecretSeal

TEST_SESSION_SECRET = b"a session secret for tests only, 32+ characters"
TEST_SEAL = SecretSeal.from_secrets(TEST_SESSION_SECRET)
