"""The hash chain that makes the audit trail tamper-evident (pure, no I/O).

Each record's hash covers its content and the previous record's hash, so editing,
inserting or deleting a stored record breaks every hash after it. The format below is
frozen: old records are verified with it forever (the schema migration that chained
pre-existing records imports it too). A retention purge keeps the chain verifiable by
storing a checkpoint: the hash of the last purged record becomes the new start.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from kernel.db import aware

GENESIS = "0" * 64

# The stored columns a record's hash covers, in this order (all but seq/hash themselves,
# the derived tenant index and the search text).
CHAINED_FIELDS = (
    "seq", "event_id", "type", "source", "category", "action", "outcome", "occurred_at", "recorded_at",
    "actor_id", "actor_username", "actor_display_name", "actor_email", "actor_ip", "request_id",
    "resource_type", "resource_id", "resource_name", "tenant_ids", "data",
)


def content_of(record: dict) -> dict:
    """What a record's hash covers; times as ISO strings so the hash survives any driver."""
    content = {name: record[name] for name in CHAINED_FIELDS}
    content["recorded_at"] = aware(record["recorded_at"]).isoformat(timespec="microseconds")
    return content


def canonical(content: dict) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def record_hash(prev_hash: str, content: dict) -> str:
    """content: from `content_of`."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(content)).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first stored record whose hash does not follow from the chain."""

    seq: int
    event_id: str
    reason: str  # "content_changed" | "sequence_gap" | "link_broken"


def first_break(start_hash: str, start_seq: int, records: Iterable[tuple[dict, str, str]]) -> Break | None:
    """Walk (content, prev_hash, hash) in seq order from a chain start (genesis or checkpoint)."""
    expected_prev, expected_seq = start_hash, start_seq
    for content, prev_hash, stored_hash in records:
        if content["seq"] != expected_seq:
            return Break(content["seq"], content["event_id"], "sequence_gap")
        if prev_hash != expected_prev:
            return Break(content["seq"], content["event_id"], "link_broken")
        if record_hash(prev_hash, content) != stored_hash:
            return Break(content["seq"], content["event_id"], "content_changed")
        expected_prev, expected_seq = stored_hash, expected_seq + 1
    return None
