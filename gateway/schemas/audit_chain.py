"""Bodies of the audit trail's integrity and dead-letter routes."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Range

from gateway.schemas import JsonBoolean


class ChainBreakOut(Schema):
    seq = Integer(metadata={"description": "the first record that does not follow (or where one is missing)"})
    event_id = String(allow_none=True, metadata={"description": "null when the record is missing"})
    reason = String(metadata={"description": "content_changed (the record was edited), link_broken (its "
                                             "previous hash is not the record before it), sequence_gap (records "
                                             "before it are missing), head_mismatch (the records end elsewhere "
                                             "than the chain head says)"})


class VerifyOut(Schema):
    valid = JsonBoolean()
    checked = Integer(metadata={"description": "records whose hash was recomputed"})
    start_seq = Integer(metadata={"description": "where the chain starts: 1, or the first record kept by retention"})
    head_seq = Integer(metadata={"description": "the last record the chain head names"})
    first_break = Nested(ChainBreakOut, allow_none=True)


class DeadLetterQuery(Schema):
    limit = Integer(load_default=50, validate=Range(1, 200))


class DeadLetterOut(Schema):
    message_id = String(allow_none=True)
    event_id = String(allow_none=True, metadata={"description": "when the body is JSON with an id"})
    event_type = String(allow_none=True, metadata={"description": "when the body is JSON with a type"})
    exchange = String(allow_none=True, metadata={"description": "where it was published"})
    routing_key = String(allow_none=True, metadata={"description": "as published"})
    queue = String(allow_none=True, metadata={"description": "the queue that refused it"})
    reason = String(allow_none=True, metadata={"description": "the broker's x-death reason (rejected: audit "
                                                             "could not decode or store it)"})
    died_at = String(allow_none=True, metadata={"format": "date-time"})
    deaths = Integer()
    size = Integer(metadata={"description": "body size in bytes"})
    body_preview = String(metadata={"description": "the start of the body; secret-looking JSON fields masked"})


class DeadLetterPageOut(Schema):
    queue = String()
    items = List(Nested(DeadLetterOut))
    next_cursor = String(allow_none=True, metadata={"description": "always null: only the first `limit` "
                                                                   "messages of the queue can be read"})
    total = Integer(metadata={"description": "messages parked in the queue"})
