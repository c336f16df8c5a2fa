"""Who made a change, in a history (a school's release policy, a service's declarations).

The registry records a portal administrator as `admin:<id>`: the history, the receipts that name
a policy version, and the logs never hold an e-mail address. Only the portal page that shows
the history resolves the id, to the address of a colleague of the same organisation (already
in the registry as their login); an administrator who is gone, or of another organisation, is
named neutrally. Other authors (`cli:<user>`, `demo`, `registration`) are shown as recorded.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext

from broker.core.admins import Admin
from broker.web.login_steps import broker

PREFIX = "admin:"


def recorded_author(admin: Admin) -> str:
    """How a change by `admin` is recorded in a history."""
    return f"{PREFIX}{admin.id}"


def shown_authors(recorded: Iterable[str], tenant_id: str) -> dict[str, str]:
    """Each recorded author as the page shows it to an administrator of `tenant_id`."""
    accounts = broker().registry.accounts
    shown = {}
    for author in set(recorded):
        number = author.removeprefix(PREFIX)
        if author == number or not number.isdigit():
            shown[author] = author
            continue
        admin = accounts.admin(int(number))
        if admin is not None and admin.tenant_id == tenant_id:
            shown[author] = admin.email
        else:
            shown[author] = gettext("removed administrator")
    return shown
