"""The logout run a browser started last, so that the same request sent again lands on it.

Starting a run ends the SSO session. The same request again finds no session: a double click
on "log out everywhere" or on the end_session confirmation without JavaScript, a second press
while the first answer is still loading, a platform's LogoutRequest form sent twice. Started
afresh it would make a run that lists no platform, and the browser would show that one, not
the first, whose pages are the ones that tell the platforms. So the store batch that ends a
session and files its run also files a mark: this browser's run, and a digest of who asked for
it. A request that finds no session, from this browser, asking the same (the student's button;
the same platform with the same way back) goes on to that run instead (logout_routes).

Keyed by the browser, not by the SSO token: the first request's answer clears the SSO cookie
before the run's first page has loaded (that page tells the back-channel platforms and may
take up to `login.logout_wait_seconds`), so a second press in that time carries no SSO cookie.
Sealed under the browser's secret and filed under a hash of a value derived from it: only this
browser finds and opens it. It holds a run id and a digest, nothing personal, and lives as long
as the run.
"""

from __future__ import annotations

import hmac
import json
from hashlib import sha256

from broker.core.errors import StateExpired
from broker.core.ports import KeyValueStore, StoreOp, StoreReply
from broker.login.logout_run import MAX_RUN_ID, Initiator, LogoutRun
from broker.login.sealed import SealedStore

LAST_RUN = "logout-last"


def asked(initiator: Initiator) -> str:
    """Who asked for a run and how they are answered, as a digest: equal for the same request
    sent twice. Not `own_session`: a second request that finds the session gone cannot tell."""
    what = [initiator.kind, initiator.protocol, initiator.service_id, initiator.answer]
    return sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _record_id(browser_secret: bytes) -> str:
    # One record per browser, named by a value only the browser's secret gives (the store key
    # is a hash of it in turn): never the secret itself.
    return hmac.new(browser_secret, f"ketenbroker/{LAST_RUN}".encode(), sha256).hexdigest()


class LastRuns:
    def __init__(self, store: KeyValueStore, ttl: int) -> None:
        self.sealed = SealedStore(store)
        self.ttl = ttl

    def mark_op(self, browser_secret: bytes, run: LogoutRun) -> StoreOp:
        """The mark of `run` as this browser's last, for the batch that ends the session."""
        payload = {"run": run.run_id, "asked": asked(run.initiator)}
        return self.sealed.put_op(
            browser_secret, LAST_RUN, _record_id(browser_secret), payload, self.ttl
        )

    def find(self, browser_secret: bytes, initiator: Initiator) -> str | None:
        """The id of this browser's last run if `initiator` asked for it (one read)."""
        last = self.last(browser_secret)
        return last[0] if last is not None and last[1] == asked(initiator) else None

    def last(self, browser_secret: bytes) -> tuple[str, str] | None:
        """This browser's last run id and the digest of who asked for it (one read)."""
        return self.last_of(browser_secret, self.sealed.store.get(self.last_op(browser_secret).key))

    def last_op(self, browser_secret: bytes) -> StoreOp:
        """The read of `last`, for a batch with other reads; `last_of` opens its reply."""
        return self.sealed.get_op(LAST_RUN, _record_id(browser_secret))

    def last_of(self, browser_secret: bytes, reply: StoreReply) -> tuple[str, str] | None:
        """`last` from the reply of `last_op`."""
        try:
            data = self.sealed.opened(browser_secret, LAST_RUN, _record_id(browser_secret), reply)
        except StateExpired:  # does not open: nothing of this browser's
            return None
        if data is None:
            return None
        run_id, digest = data.get("run"), data.get("asked")
        if not isinstance(run_id, str) or not 0 < len(run_id) <= MAX_RUN_ID:
            return None
        return run_id, digest if isinstance(digest, str) else ""
