"""The information notice in Chromium: a student reads it and presses "Continue".

It shows before the first answer of an SSO session to a platform (docs/receipts.md); a test that
is about something else passes it with `continue_past_notice`, which returns whether it was shown.
"""

from __future__ import annotations

import time

from playwright.sync_api import Page

NOTICE_BUTTON = "[data-notice-continue]"


def continue_past_notice(page: Page, destination: str, timeout_seconds: float = 15) -> bool:
    """Wait until the page is at `destination` (a URL prefix) or shows the notice; on the
    notice, press its button. Polls: the answer is an auto-POST, so neither is a single load."""
    notice = page.locator(NOTICE_BUTTON)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if page.url.startswith(destination):
            return False
        if notice.count() and notice.first.is_visible():
            notice.first.click()
            return True
        page.wait_for_timeout(100)
    raise AssertionError(f"neither the notice nor {destination}: at {page.url}")
