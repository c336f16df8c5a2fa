"""The one way a page with forms becomes a response (`form_page`): the broker's error pages and
the pages of a login that offer a way on. Browsers hold a form's target, and Chromium also the
redirect that answers it, to the page's `form-action` (content_policy.py): the page names every
origin its forms may lead to. A page that holds a login is never kept by a cache."""

from __future__ import annotations

from collections.abc import Iterable

from flask import make_response
from werkzeug.wrappers import Response

from broker.core.origins import written_origin
from broker.login.post_message import PostMessage
from broker.web.content_policy import content_security_policy
from broker.web.no_store import no_store
from broker.web.school_retry import RetryAtSchool


def form_page(
    page: str,
    status: int,
    *,
    forms: Iterable[PostMessage | None] = (),
    retry: RetryAtSchool | None = None,
    redirects_to: str = "",
    carries_login: bool,
) -> Response:
    """The one way a page with a login's forms becomes a response (error pages:
    errors.render_error and errors.http_error_page). Its `form-action` names every origin a
    form may lead to: a form's own target off the broker (`forms`: the platform's address, for
    a refusal it carries), and where the broker's answer to a form redirects: "Try again"'s
    school (`retry`), `redirects_to` (the platform, when "Back to the platform" goes through
    the broker first: back_to_platform.py). `carries_login`: the page holds a login (its id in
    a form or link, its answer to the platform): never kept by a cache."""
    response = make_response(page, status)
    targets = {written_origin(form.action) or "" for form in forms if form is not None}
    targets.update((retry.origin if retry is not None else "", redirects_to))
    targets.discard("")
    if targets:
        response.headers["Content-Security-Policy"] = content_security_policy(
            " ".join(sorted(targets))
        )
    if carries_login or retry is not None:
        no_store(response)
    return response
