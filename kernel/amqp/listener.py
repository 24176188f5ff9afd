"""A process's private event listener: a thread consuming its own exclusive queue.

For a process that must hear events as long as it lives, and only while it lives (the
gateway's session cache): the queue is the process's own, exclusive and auto-deleted
(gone with its connection: no backlog waits for a dead process), so it is not one of
kernel.topology's shared durable queues and is not declared by `setup-broker`.

The listener tells its owner when it consumes (`on_connected`, once the queue is bound:
nothing from then on is missed) and when it stops consuming (`on_disconnected`: events
may be missed from then on), so the owner can stop trusting what it derived from events
meanwhile. It reconnects by itself, pausing as LISTENER_RETRY says, for as long as the
process runs. Each message is acked once handled, whatever happened: a message that
cannot be read or handled goes to `on_unreadable` (a private queue has no dead letters,
and redelivering it would fail the same way).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from kombu import Queue

from kernel.amqp.connection import LISTENER_HEARTBEAT, LISTENER_RETRY, Backoff, connect, open_connection

log = logging.getLogger(__name__)

DRAIN_TICK = 2.0  # seconds a read blocks before the heartbeat is checked


class EventListener:
    """Consumes `queue` (exclusive: the process's own) in a daemon thread: `handle(source, body)`
    per event, `source` being the service whose `<service>.events` exchange it came from."""

    def __init__(self, amqp_uri: str, queue: Queue, handle: Callable[[str, dict], None], *,
                 on_connected: Callable[[], None], on_disconnected: Callable[[], None],
                 on_unreadable: Callable[[], None], name: str = "event listener", logger: logging.Logger = log):
        if not (queue.exclusive and queue.auto_delete and not queue.durable):
            raise ValueError(f"{queue.name}: a listener's queue is its process's own (exclusive, auto-deleted)")
        self.amqp_uri = amqp_uri
        self.queue = queue
        self.handle = handle
        self.on_connected, self.on_disconnected, self.on_unreadable = on_connected, on_disconnected, on_unreadable
        self.name, self.log = name, logger
        self.connected = False

    def start(self, thread_name: str) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=thread_name, daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Listen for as long as the process runs (the thread is a daemon)."""
        backoff = Backoff(*LISTENER_RETRY)
        while True:
            self.listen_once(backoff)
            time.sleep(backoff.next())

    def listen_once(self, backoff: Backoff | None = None) -> None:
        """One connection: consume until it fails, then report the loss (never raises)."""
        try:
            with open_connection(self.amqp_uri, heartbeat=LISTENER_HEARTBEAT) as conn:
                connect(conn)
                with conn.Consumer(self.queue, callbacks=[self._on_message], accept=["json"]):
                    self.connected = True
                    self.on_connected()  # the queue is bound: nothing from now on is missed
                    if backoff is not None:
                        backoff.reset()
                    self.log.info("%s listening", self.name)
                    while True:
                        try:
                            conn.drain_events(timeout=DRAIN_TICK)
                        except TimeoutError:
                            conn.heartbeat_check()
        except Exception as error:  # noqa: BLE001 - broker gone: the owner goes without events until back
            if self.connected:
                self.log.warning("%s lost the broker: %s", self.name, type(error).__name__)
        finally:
            self.connected = False
            self.on_disconnected()

    def _on_message(self, body, message) -> None:
        try:
            if isinstance(body, (str, bytes)):
                body = json.loads(body)
            self.handle(message.delivery_info.get("exchange", "").split(".")[0], body)
        except Exception:  # noqa: BLE001 - an unreadable event: the owner decides (the cache forgets everything)
            self.log.exception("%s: unreadable event, handed to its owner", self.name)
            self.on_unreadable()
        message.ack()
