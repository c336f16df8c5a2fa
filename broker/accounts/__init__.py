"""Administrators' credentials: password hashes (argon2id), TOTP (RFC 6238), invitation tokens.

Pure functions over strings and bytes: the registry stores what these produce, the portal and
the CLI call them. argon2 is imported only here.
"""
