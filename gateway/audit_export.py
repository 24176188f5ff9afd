"""Audit export formats, written as the pages arrive: nothing holds the whole result.

CSV: a header row, then one flat row per record (actor and resource spread into
columns, tenant ids space-separated, data as JSON text), quoted by the csv module.
A text cell starting with =, +, -, @, tab or carriage return gets a leading apostrophe so
a spreadsheet shows it instead of running it as a formula (OWASP "CSV injection"):
usernames and names are chosen by users. JSONL is the lossless format: one record per
line, exactly as GET /api/v1/audit/events shows it.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Iterator

CSV_COLUMNS = (
    "seq", "id", "recorded_at", "occurred_at", "type", "source", "category", "action", "outcome",
    "actor_user_id", "actor_username", "actor_display_name", "actor_email", "actor_ip", "request_id",
    "tenant_ids", "resource_type", "resource_id", "resource_name", "data",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def flat(record: dict) -> dict:
    """One record (a public audit record) as CSV_COLUMNS."""
    actor, resource = record.get("actor") or {}, record.get("resource") or {}
    return {
        **{name: record.get(name) for name in ("seq", "id", "recorded_at", "occurred_at", "type", "source",
                                                "category", "action", "outcome", "request_id")},
        **{f"actor_{name}": actor.get(name) for name in ("user_id", "username", "display_name", "email", "ip")},
        "tenant_ids": " ".join(record.get("tenant_ids") or ()),
        **{f"resource_{name}": resource.get(name) for name in ("type", "id", "name")},
        "data": json.dumps(record.get("data") or {}, separators=(",", ":"), ensure_ascii=False, sort_keys=True),
    }


def _defused(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(pages: Iterable[list[dict]]) -> Iterator[str]:
    """The CSV text of every record of `pages`, a chunk per page (the header first)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")  # RFC 4180

    def drain() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writeheader()
    yield drain()
    for page in pages:
        for record in page:
            writer.writerow({name: _defused(value) for name, value in flat(record).items()})
        yield drain()


def jsonl_lines(pages: Iterable[list[dict]]) -> Iterator[str]:
    for page in pages:
        yield "".join(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n" for record in page)


WRITERS = {"csv": csv_lines, "jsonl": jsonl_lines}
