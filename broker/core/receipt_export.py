"""Receipts as rows for a school's exports (CSV and JSON): incident handling and the school's
processing register. The same columns in both, so a spreadsheet and a script agree."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime

from broker.core.receipts import Receipt

COLUMNS = (
    "issued_at",
    "school_id",
    "service_id",
    "chain_id",
    "attributes",
    "policy_version",
    "school_protocol",
    "service_protocol",
    "student",
    "seq",
    "hash",
)


def receipt_row(receipt: Receipt) -> dict[str, str | int | None]:
    """`student` is the receipt subject: the same for one student's logins in one pseudonym
    chain, another in each chain (core/receipts.py), a name for no one."""
    content = receipt.content
    return {
        "issued_at": datetime.fromtimestamp(content.issued_at, UTC).isoformat(),
        "school_id": content.school_id,
        "service_id": content.service_id,
        "chain_id": content.chain_id,
        "attributes": " ".join(content.attributes),
        "policy_version": content.policy_version,
        "school_protocol": content.school_protocol,
        "service_protocol": content.service_protocol,
        "student": content.subject,
        "seq": receipt.seq,
        "hash": receipt.hash,
    }


def csv_lines(receipts: Iterable[Receipt]) -> Iterable[str]:
    """The header, then one line per receipt (streamed: an export can be large)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for receipt in receipts:
        writer.writerow(receipt_row(receipt))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_lines(receipts: Iterable[Receipt]) -> Iterable[str]:
    """One JSON array, streamed element by element."""
    yield "["
    for index, receipt in enumerate(receipts):
        yield ("," if index else "") + "\n" + json.dumps(receipt_row(receipt), sort_keys=True)
    yield "\n]\n"
