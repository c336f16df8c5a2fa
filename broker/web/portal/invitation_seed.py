"""The TOTP seed an invitation's page shows: one per browser, kept in that browser's session.

A seed stored with the invitation would be shown to whoever opens the link, a forwarded one
included, before the invitee does, and the account would keep it: that reader would hold the
account's second factor for good. So the page makes a seed at its first request in a browser
and keeps it sealed (core/sealed_secrets.py, under the server's key, bound to the invitation's
token hash) in that browser's portal session, a signed cookie its holder can read but not open;
another browser opening the same link gets a seed of its own. The account takes the seed a
valid code confirmed, so it is the accepting browser's (registry/admin_accounts.py
`accept_invitation`); the invitation row stores none.

The session keeps one seed per invitation, by the start of its token hash, so two invitations
open in tabs of one browser (an operator inviting themselves to a school and to a publisher,
say) each keep the seed their page showed. At most `KEPT` of them, the most recently made: the
cookie stays small, and an older invitation's page makes a new seed when opened again (its
old key no longer confirms; the page says to use the key it shows).

COMPAT(invitation-stored-seed): an invitation an older version sent holds the seed it showed
then. A code of that one is still accepted (the invitee may have scanned it before the
upgrade), but the page never shows it again. Remove once such invitations have expired (their
lifetime, `operator_pages.INVITATION_DAYS`, after the upgrade).
"""

from __future__ import annotations

from flask import session

from broker.accounts import totp
from broker.core.admins import Invitation
from broker.core.sealed_secrets import SecretBinding, SecretUnreadable
from broker.web.wiring import broker

SESSION_SEED = "invitation_seeds"  # [[token hash start, sealed seed], ...], oldest first
KEPT = 3  # seeds one session keeps
_KEY = 16  # hex characters of the token hash naming a seed: the binding checks all of it


def browser_seed(token_hash: str) -> str:
    """This browser's seed for the invitation: the one sealed in its session for it, else a
    new one, sealed there now beside the others' (at most `KEPT`). A seed sealed under a key
    since replaced does not open, and a new one takes its place."""
    seal = broker().settings.secret_seal()
    binding = SecretBinding.invitation_browser_totp(token_hash)
    key = token_hash[:_KEY]
    kept = _kept_seeds()
    if isinstance(sealed := kept.get(key), str):
        try:
            # Sealed values only: nothing in clear is taken for a seed.
            return seal.refusing_clear().open(sealed, binding)
        except SecretUnreadable:
            pass
    seed = totp.new_secret()
    kept.pop(key, None)
    kept[key] = seal.seal(seed, binding)
    session[SESSION_SEED] = [[k, v] for k, v in list(kept.items())[-KEPT:]]
    return seed


def _kept_seeds() -> dict[str, object]:
    """The session's seeds by key, oldest first; anything else there (a cookie changed by
    hand) is nothing kept, so a new seed is made."""
    kept = session.get(SESSION_SEED)
    if not isinstance(kept, list):
        return {}
    return {
        pair[0]: pair[1]
        for pair in kept
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
    }


def confirmed_seed(invitation: Invitation, seed: str, code: str) -> tuple[str, int] | None:
    """(the seed `code` is valid for, its time step): this browser's `seed`, or the one an
    older version stored with the invitation (COMPAT(invitation-stored-seed)); None for
    neither."""
    for candidate in (seed, invitation.totp_secret):
        step = totp.verify(candidate, code) if candidate else None
        if step is not None:
            return candidate, step
    return None
