"""The Content-Security-Policy of the broker's pages. Every page gets the strict one
(app.py); a page with a form that leaves the broker, or whose POST the broker answers with a
redirect elsewhere, names that origin in `form-action`: browsers hold a form's target, and
Chromium also the redirect that answers it, to the page's `form-action`."""

from __future__ import annotations


def content_security_policy(form_target: str = "") -> str:
    """`form_target`: origins (space-separated) a form of the page may lead to besides the
    broker's own."""
    extra = f" {form_target}" if form_target else ""
    return (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action 'self'{extra}"
    )
