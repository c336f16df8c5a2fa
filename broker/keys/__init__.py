"""The broker's signing key set on disk: the manifest, its live view in every worker, and the
rotation that `ketenbroker keys` runs (docs/operations.md, "Rolling the signing keys")."""
