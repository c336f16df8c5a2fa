"""The operator's lists of schools and of services, a page at a time and searchable, so a
federation of thousands of schools is a page of `PAGE_SIZE` rows, not megabytes of HTML.

The address says what is shown (`?q=…&page=…`): a page can be bookmarked, reloaded and shared,
and the language switch keeps it. Schools are found as students find them on the discovery page
(core/school_search.py: name or other name, town, code, one typo per word when nothing matches
as typed); services by their name, id, entity id or publisher, every typed word in one of them.
A page number past the last shows the last page (a list that shrank since the link was made);
one that is no page number, or a search longer than `MAX_QUERY` or with a control character
(no one types one), is refused with the list's first page and a 400.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from flask import redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from broker.core.chain_move import open_moves
from broker.core.client_hosts import addresses_fingerprint
from broker.core.display_text import holds_hidden
from broker.core.model import Chain, School, Service
from broker.core.school_search import Found, fold
from broker.registry import SqlRegistry
from broker.web.discovery import MAX_QUERY, school_directory
from broker.web.logs import note_refusal_logged
from broker.web.portal.operator_forms import ServiceChainForm
from broker.web.portal.rights import current_admin
from broker.web.portal.service_forms import EmptyForm
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
T = TypeVar("T")

PAGE_SIZE = 100
# A page number of at most nine digits: no list has more pages, and int() stays cheap.
_PAGE_NUMBER = re.compile(r"[0-9]{1,9}")
# The chain form's choice for "no chain".
NO_CHAIN = "-"


@dataclass(frozen=True)
class ListPage(Generic[T]):
    """One page of a list: its rows, and what the page says about them."""

    rows: tuple[T, ...]
    # The rows the search found in all (every row without one), and the whole list's.
    matched: int
    everything: int
    number: int
    pages: int
    query: str
    # Nothing matched as typed; these matched with one typo per word (schools only).
    approximate: bool = False
    # The address's page or search was refused (a 400): this is the list's first page.
    refused: bool = False

    @property
    def first(self) -> int:
        """The first row's place in the list, counted from 1 (0 on an empty page)."""
        return (self.number - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * PAGE_SIZE + len(self.rows)


@dataclass(frozen=True)
class Asked:
    """The search and page number the address asks for."""

    query: str
    number: int
    refused: bool = False


def asked_page(list_name: str) -> Asked:
    """`?q=` and `?page=` of this request; absent or empty: no search, the first page. A bad
    one is logged as a refusal (its name, never its value) and asks for the first page."""
    query, number = request.args.get("q", ""), request.args.get("page", "")
    bad = [
        name
        for name, wrong in (
            ("q", len(query) > MAX_QUERY or holds_hidden(query)),
            ("page", bool(number) and not (_PAGE_NUMBER.fullmatch(number) and int(number) > 0)),
        )
        if wrong
    ]
    if not bad:
        return Asked(query.strip(), int(number or 1))
    note_refusal_logged()
    log.warning(
        "portal refused status=400 reason=bad_list_address list=%s fields=%s admin=%s",
        list_name,
        ",".join(bad),
        current_admin().id,
    )
    return Asked("" if "q" in bad else query.strip(), 1, refused=True)


def listed_at(shown: ListPage[T] | Asked) -> dict[str, Any]:
    """The address's arguments of a page of a list (or of the page an address asked for):
    what a form on it carries in its action, and its redirect brings back."""
    number = shown.number
    return {
        **({"q": shown.query} if shown.query else {}),
        **({"page": number} if number > 1 else {}),
    }


def page_of(
    rows: Sequence[T], everything: int, asked: Asked, *, approximate: bool = False
) -> ListPage[T]:
    """The page `asked` names of `rows` (the search's matches), the last one if it names a
    page past the end."""
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    number = min(asked.number, pages)
    start = (number - 1) * PAGE_SIZE
    return ListPage(
        tuple(rows[start : start + PAGE_SIZE]),
        len(rows),
        everything,
        number,
        pages,
        asked.query,
        approximate=approximate and bool(rows),
        refused=asked.refused,
    )


def school_page(registry: SqlRegistry, asked: Asked) -> ListPage[School]:
    """The page of schools `asked` names, in name order (the discovery page's). Every row
    shows all the school's other names, so `Found.aliases` is not needed here."""
    # From the registry itself, never a worker's view that may be a second behind: a school
    # just added is listed.
    directory = school_directory(registry)
    found: Found = directory.find_all(asked.query)
    return page_of(found.schools, len(directory), asked, approximate=found.approximate)


def service_page(services: Sequence[Service], asked: Asked) -> ListPage[Service]:
    """The page of `services` (in the registry's order) whose name, id, entity id or publisher
    holds every word of the search, folded as the schools' search folds (accents, case and
    punctuation away)."""
    words = fold(asked.query).split()
    matched = [s for s in services if _holds_all(words, _service_key(s))] if words else services
    return page_of(matched, len(services), asked)


def _service_key(service: Service) -> str:
    fields = (service.name, service.id, service.entity_id, service.publisher_id or "")
    return " ".join(fold(field) for field in fields)


def _holds_all(words: list[str], key: str) -> bool:
    return all(word in key for word in words)


def chain_form(
    chain_id: str | None = None, *, shown: bool = True, chains: list[Chain] | None = None
) -> ServiceChainForm:
    """`shown`: filled in for the page (the service's chain); a form read from a POST is not,
    so a POST without `chain` is refused, never taken as "no chain". `chains`: the registry's,
    read once for a page of forms (else read here)."""
    form = ServiceChainForm(data={"chain": chain_id or NO_CHAIN} if shown else None)
    form.chain.choices = [SelectChoice(NO_CHAIN, gettext("No chain"))] + [
        SelectChoice(c.id, f"{c.name} ({c.id})")
        for c in (broker().registry.chains() if chains is None else chains)
    ]
    return form


def services_page(asked: Asked) -> str:
    """The page of services `asked` names (operator_lists.py), each with its forms; their
    actions keep the page's address, so the operator comes back to the same page."""
    registry = broker().registry
    page = service_page(registry.all_services(), asked)
    chains = registry.chains()
    rows = [(s, chain_form(s.chain_id, chains=chains)) for s in page.rows]
    # Open move windows, shown on the service they concern (core/chain_move.py).
    moves = {m.service_id: m for m in open_moves(registry.chain_moves(), datetime.now(UTC))}
    # What the approval of an OpenID Connect client is given for: the addresses shown.
    shown = {s.id: addresses_fingerprint(s.oidc) for s, _ in rows if s.oidc is not None}
    return render_template(
        "portal/operator_services.html",
        rows=rows,
        page=page,
        listed=listed_at(page),
        approve=EmptyForm(),
        moves=moves,
        shown=shown,
    )


def back_to_services(service_id: str, asked: Asked) -> Response:
    """The list again, at the page the form was on, at the service's card."""
    card = f"service-{service_id}"
    return redirect(url_for("portal_operator.services", _anchor=card, **listed_at(asked)), 303)
