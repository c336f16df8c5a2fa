"""A message the student's browser carries by an HTML form POST, whichever protocol made it: a
SAML message in the HTTP-POST binding (a login's Response, an error Response, a LogoutResponse),
an OIDC answer in the form_post response mode, a form of the broker's own ("Try again"). The
web edge turns it into the page that posts it by itself, or a button on the student's page.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PostMessage:
    """An HTML-form POST the browser carries to `action`."""

    action: str
    fields: dict[str, str]
    # For a SAML login's Response: what the service was given to name the session (its NameID
    # and SessionIndex), which a logout must name again (login/participants.py).
    logout_handles: dict[str, str] = field(default_factory=dict)
