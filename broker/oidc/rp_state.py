"""The `state` of the broker's authorization requests to schools' OpenID providers.

The login record is found by its id (`LoginRecord.login_id`), so the state carries it; but one
login may send several requests to schools: a board's provider named another school, the record
was reopened (login/flow.py `reopen`) and the student chose again. Were the state the login id
alone, an answer to the refused request (a copy, a reload of its callback) would name the live
login: the callback takes the record before any other check, and the live request's state would
be spent by the old answer. So each request gets a tag of its own, kept sealed in the record
with the nonce and verifier (`LoginRecord.upstream`), and its state is `<login id>.<tag>`: an
answer whose tag is not the record's current request's is stale (`answers_request`). The check
reads the record the callback takes anyway: the login that passes costs no store round trip
more; only a stale answer writes, to put the record back (flow.py `restore`).

Rolling upgrade: a record an older worker made has no tag, and its state is the login id alone;
both still match (no tag on either side). A state with a tag that reaches an older worker names
no record there (`state_expired`): the student starts again, for the upgrade's minutes only.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

STATE_TAG = "state_tag"  # the tag's key among the record's kept values
_SEPARATOR = "."  # never in a login id (base64url) or a tag


def new_tag() -> str:
    return secrets.token_urlsafe(9)


def request_state(login_id: str, tag: str) -> str:
    """The `state` of the request `tag` names, in the login `login_id`."""
    return f"{login_id}{_SEPARATOR}{tag}"


def read_state(state: str) -> tuple[str, str | None]:
    """(login id, tag) of a callback's `state`; the tag None for a state without one (an older
    worker's request)."""
    login_id, separator, tag = state.partition(_SEPARATOR)
    return login_id, tag if separator else None


def answers_request(
    upstream_request_id: str | None, kept: Mapping[str, str], tag: str | None
) -> bool:
    """Whether an answer with `tag` is to the record's current request: the record has one
    outstanding (`upstream_request_id`, none after a reopen) and its tag is the answer's (no
    tag on either side: a request of an older worker)."""
    return upstream_request_id is not None and kept.get(STATE_TAG) == tag
