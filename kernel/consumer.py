"""Event consumers: one durable queue each, idempotent, never dropping a message.

    @on_event("identity", types=["identity.user_created"])
    def grant_bootstrap_role(self, event, uow): ...

The handler runs inside a unit of work that first claims the event id in the
service's inbox, so a redelivered event (after a crash, or a duplicate publish)
changes nothing. A handler that raises a transient error has its message requeued
after a pause; any other error, and a body that cannot even be decoded, is rejected
and the broker parks it in `<queue>.dead` for an admin (kernel.amqp.consumer does the
acks, requeues and rejects).
"""
from __future__ import annotations

import functools
import logging

from kernel.amqp.consumer import REQUEUE_PAUSE, TRANSIENT, EventConsumer, is_transient
from kernel.envelope import Event

__all__ = ["EventConsumer", "REQUEUE_PAUSE", "TRANSIENT", "is_transient", "on_event"]

log = logging.getLogger(__name__)


def on_event(*sources: str, types=("#",), dedupe: bool = True):
    """Declare a handler of the domain events of `sources` whose type matches `types`.

    With dedupe (the default) the handler is called as handler(self, event, uow) and
    must only touch the database; the unit of work commits after it returns. Without,
    handler(self, event) must be idempotent by itself.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def handler(self, body):
            event = Event.from_dict(body)
            if not dedupe:
                return fn(self, event)
            with self.db.unit_of_work() as uow:
                if not uow.claim(event.id, fn.__name__):
                    log.info("%s: event %s already handled", fn.__name__, event.id)
                    return None
                result = fn(self, event, uow)
                uow.commit()
                return result

        return EventConsumer.decorator(sources, tuple(types))(handler)

    return decorate
