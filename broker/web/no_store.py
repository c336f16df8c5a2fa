"""Pages the browser must not keep: a student's data, a logout's steps, a form with a token. A
`Cache-Control: no-store` answer is neither cached nor shown again from the history without
asking the broker (which then decides: closed, expired, or the page once more)."""

from __future__ import annotations

from typing import TypeVar

from werkzeug.wrappers import Response

# Flask's own Response too (operations.py), given back as the type it came.
AnyResponse = TypeVar("AnyResponse", bound=Response)


def no_store(response: AnyResponse) -> AnyResponse:
    response.headers["Cache-Control"] = "no-store"
    return response
