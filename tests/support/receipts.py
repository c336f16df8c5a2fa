"""Filing a receipt for a test without a login: as the login path files it, or as the release
before per-chain receipt subjects did (COMPAT(receipt-subject-v1), docs/receipts.md); and
reading what the my-data page shows of them (its platform cards)."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from broker.core.model import Release, School, UpstreamIdentity
from broker.core.receipts import Receipt, receipt_content
from broker.web.wiring import Broker


def file_receipt(
    broker: Broker,
    school: School,
    service_id: str,
    identity: UpstreamIdentity,
    *,
    old: bool = False,
    issued_at: int | None = None,
) -> Receipt:
    """One receipt of `identity` at `school` for the registered service `service_id`; `old`:
    with the chain-independent subject receipts carried before 2026-11-30."""
    keys = broker.receipting.keys
    service = broker.view.service(service_id)
    assert service is not None, service_id
    content = receipt_content(
        keys,
        issued_at=int(time.time()) if issued_at is None else issued_at,
        school=school,
        service=service,
        identity=identity,
        release=Release("p" * 64, {"given_name": ("x",)}, 1),
    )
    if old:
        content = replace(content, subject=keys.legacy_subject(school, identity))
    return broker.receipts.append(content)


def my_data_groups(html: str) -> list[tuple[str, str]]:
    """The my-data page's platform cards: (the platform's name, one of its groups' HTML) for
    each set of attributes it got, the folded "Earlier" ones included."""
    found = []
    for card in html.split("data-platform>")[1:]:
        name = re.search(r"<h3 data-service>([^<]*)</h3>", card)
        assert name is not None, card
        for group in re.findall(r"data-receipt-group>(.*?)</div>", card, re.S):
            found.append((name.group(1), group))
    return found
