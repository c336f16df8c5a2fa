"""Who made a change, in a history (a school's release policy, a service's declarations).

The registry records a portal administrator as `admin:<id>`: the history, the receipts that name
a policy version, and the logs never hold an e-mail address. Only the portal page that shows
the history resolves the id, to the address of a colleague of the same organisation (the same
role and tenant: the rights rule, `Admin.may_act_for`); an administrator who is gone, or of
another organisation, is named neutrally.

The broker's own tools record other authors: `cli:<OS user>` and `import:<OS user>` (the
operator's commands), `registration` (a service's first declarations), `demo`, and
`purpose-change:<declaration version>` (a choice the broker narrowed because the publisher gave
an attribute a new purpose, core/purposes.py). Those records
stay as they are for the operator's audit; school and publisher pages name them by what they
are, never by the operator's login name on the server.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext

from broker.core.admins import Admin, AdminRole
from broker.core.purposes import purpose_change_version
from broker.web.wiring import broker

PREFIX = "admin:"
IMPORT_PREFIX = "import:"
REGISTRATION = "registration"
DEMO = "demo"


def recorded_author(admin: Admin) -> str:
    """How a change by `admin` is recorded in a history."""
    return f"{PREFIX}{admin.id}"


def shown_authors(recorded: Iterable[str], role: AdminRole, tenant_id: str) -> dict[str, str]:
    """Each recorded author as the page shows it to an administrator of `role` for `tenant_id`."""
    accounts = broker().registry.accounts
    shown = {}
    for author in set(recorded):
        if not author.startswith(PREFIX):
            shown[author] = tool_author(author)
            continue
        number = author.removeprefix(PREFIX)
        admin = accounts.admin(int(number)) if number.isdigit() else None
        if admin is not None and admin.may_act_for(role, tenant_id):
            shown[author] = admin.email
        else:
            shown[author] = gettext("removed administrator")
    return shown


def tool_author(author: str) -> str:
    """A change the broker's own tools recorded, named by what it is."""
    version = purpose_change_version(author)
    if version is not None:
        shown = gettext(
            "the broker: the publisher changed a purpose (declaration version %(version)d)",
            version=version,
        )
    elif author == REGISTRATION:
        shown = gettext("registration of the service")
    elif author == DEMO:
        shown = gettext("demo set-up")
    elif author.startswith(IMPORT_PREFIX):
        shown = gettext("the broker's operator (registry import)")
    else:  # `cli:<OS user>`, and whatever else a tool of the operator's recorded
        shown = gettext("the broker's operator")
    return str(shown)
