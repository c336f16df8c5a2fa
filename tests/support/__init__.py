"""Shared helpers for the live-server tests: a cookie-aware HTTP client that behaves like a
browser where SAML needs it (client.py), the whole demo on free ports (live.py), and forged
school responses and publisher requests (forge.py)."""
