"""The note of attributes a school's IdP sends under names the broker does not know: they are
dropped (the broker never passes them on), and one INFO line names them, so that the school's
ICT officer can map them to the broker's names (docs/schools.md).

Names only, never values: an attribute's Name is the IdP's vocabulary (a URI, `givenName`), not
a student's data; each is cut short and made printable, at most `MAX_NAMES` of them. A school
sends the same names with every login, so the line is written at most once per school per
`INTERVAL` in a process; the schools remembered are bounded (`MAX_SCHOOLS`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from broker.core.display_text import shown_excerpt

log = logging.getLogger(__name__)

INTERVAL = 3600.0  # seconds between two lines for one school
MAX_NAMES = 20
MAX_NAME_SHOWN = 120
MAX_SCHOOLS = 10_000


class UnknownAttributeNotes:
    """What one process has logged; safe under threaded workers. `clock`: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logged_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, school_id: str, names: Iterable[str]) -> None:
        """Log the unknown attribute `names` of `school_id`'s answer, unless logged lately."""
        unknown = sorted({shown_excerpt(name, MAX_NAME_SHOWN) for name in names if name})
        if not unknown:
            return
        now = self.clock()
        with self._lock:
            last = self._logged_at.get(school_id)
            if last is not None and now - last < INTERVAL:
                return
            if last is None and len(self._logged_at) >= MAX_SCHOOLS:
                return
            self._logged_at[school_id] = now
        more = len(unknown) - MAX_NAMES
        log.info(
            "unknown attributes dropped school=%s names=%s%s",
            school_id,
            ",".join(unknown[:MAX_NAMES]),
            f" and {more} more" if more > 0 else "",
        )
