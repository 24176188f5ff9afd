"""Dead letters: the messages audit's ingest refused, parked by the broker in `<queue>.dead`.

Read without losing them: the queue's message count from a passive declare, and the
first messages taken unacknowledged, then returned by closing the channel (RabbitMQ puts
them back where they were). While one admin peeks, another sees fewer: a few milliseconds.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from amqp.exceptions import NotFound
from kombu import Connection

from kernel.db import iso
from kernel.envelope import looks_secret
from kernel.topology import dead_letter_queue

PREVIEW_CHARS = 300
REDACTED = "[redacted]"


def peek(amqp_uri: str, queue_name: str, limit: int) -> dict:
    """{"queue", "total", "items"} of `<queue_name>.dead`, the first `limit` messages described."""
    dead = dead_letter_queue(queue_name).name
    with Connection(amqp_uri, connect_timeout=5) as connection:
        channel = connection.channel()
        try:
            total = channel.queue_declare(queue=dead, passive=True).message_count
        except NotFound:  # never declared: nothing was ever parked
            return {"queue": dead, "total": 0, "items": []}
        items = []
        while len(items) < min(limit, total):
            message = channel.basic_get(dead, no_ack=False)
            if message is None:
                break
            items.append(describe(message.body, message.properties, message.delivery_info))
        channel.close()  # unacked: the broker returns them all to the queue
    return {"queue": dead, "total": total, "items": items}


def describe(body: bytes | str, properties: dict, delivery_info: dict) -> dict:
    """What an admin needs to judge a parked message; secret-looking fields of a JSON body are masked."""
    headers = properties.get("application_headers") or {}
    deaths = headers.get("x-death") or [{}]
    death = deaths[0]  # the latest death comes first
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    event = decoded if isinstance(decoded, dict) else {}
    preview = json.dumps(redact(decoded), ensure_ascii=False) if decoded is not None else text
    routing_keys = death.get("routing-keys") or [delivery_info.get("routing_key")]
    return {
        "message_id": properties.get("message_id"),
        "event_id": _text(event.get("id")),
        "event_type": _text(event.get("type")),
        "exchange": death.get("exchange", delivery_info.get("exchange")),
        "routing_key": routing_keys[0],
        "queue": death.get("queue"),
        "reason": death.get("reason"),
        "died_at": _moment(death.get("time")),
        "deaths": death.get("count", 1),
        "size": len(body),
        "body_preview": preview[:PREVIEW_CHARS] + ("…" if len(preview) > PREVIEW_CHARS else ""),
    }


def redact(value):
    """A copy of decoded JSON with the values of secret-looking keys masked, at any depth."""
    if isinstance(value, dict):
        return {key: REDACTED if looks_secret(key) else redact(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [redact(inner) for inner in value]
    return value


def _text(value) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _moment(value) -> str | None:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (int, float)):
        return iso(datetime.fromtimestamp(value, timezone.utc))
    return None
