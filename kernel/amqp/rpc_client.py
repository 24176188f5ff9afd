"""An RPC client for threads: any number of threads share one AMQP connection per pool and process.

It speaks nameko's RPC protocol (requests on the `nameko-rpc` exchange, routing key
`<service>.<method>`, JSON `{"args", "kwargs"}`, context data as `nameko.*` headers, replies
routed back to our reply queue, matched by correlation id), so services see the calls exactly
as they saw nameko's standalone proxy's. nameko's proxy is not thread-safe and costs a lot per
call (a publisher, a kombu connection object and a confirm round trip per request, and one
reply queue per proxy); here each call publishes one message and waits on a lock that the
connection's one reader thread releases when the reply with its correlation id arrives.
The gateway uses it through gateway/rpc.py (its caller name, its config).

What a caller may rely on:
- every call ends within the pool's timeout: RpcTimeout (504). A late answer is dropped;
  the request itself is not cancelled (it may still be carried out).
- the broker is unreachable (connect or publish fails): BrokerUnavailable, a ConnectionError (503).
- the connection drops while a call waits: ReplyLost, an RpcTimeout (504: it may have run);
  the next call connects again, with a new reply queue.
- no queue takes the service's requests: UnknownService (503), from the broker's basic.return.
- a service's domain error arrives as the same kernel.errors class (details with their JSON
  types); any other error as RemoteError.
- each call carries the caller's context (request id, user, tenant) for the services' logs.
- after a fork (gunicorn) the child opens its own connection.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid

import amqp
from amqp.connection import NEGOTIATE_CAPABILITIES
from kombu.utils import json as kombu_json
from nameko.constants import RPC_EXCHANGE_CONFIG_KEY
from nameko.exceptions import RpcTimeout, UnknownService, deserialize

import kernel.errors  # noqa: F401  (registers the domain errors, so deserialize rebuilds them: NotFound, not RemoteError)
from kernel.amqp.connection import RPC_HEARTBEAT, amqp_parameters, drop

log = logging.getLogger("gatehouse.gateway.rpc")  # the name its warnings always had

DEFAULT_EXCHANGE = "nameko-rpc"
HEADER_PREFIX = "nameko."  # nameko's context data headers (nameko.messaging.HEADER_PREFIX)
READ_TICK = 5.0  # seconds the reader blocks before it sends heartbeats and checks for close()
NO_ROUTE = 312  # basic.return's reply code for a mandatory message no queue is bound for


class BrokerUnavailable(ConnectionError):
    """The request was not sent: the broker refused or dropped the connection."""


class ReplyLost(RpcTimeout):
    """The connection dropped while the call waited: the request may or may not have run."""


class _SingleThreadedReads(amqp.Connection):
    # py-amqp reads pending frames inside basic_publish when the broker may block publishers
    # (connection.blocked): that read would race the reader thread's. Not negotiated, so never.
    negotiate_capabilities = {**NEGOTIATE_CAPABILITIES, "connection.blocked": False}


class _PendingCall:
    """One call waiting for its reply: a lock held until the reader thread hands the answer over."""

    __slots__ = ("_done", "_answered", "body", "error")

    def __init__(self):
        self._done = threading.Lock()
        self._done.acquire()
        self._answered = False  # seen by the waiting thread (result() may be asked again)
        self.body: bytes | None = None
        self.error: Exception | None = None

    def resolve(self, body=None, error=None) -> None:
        self.body, self.error = body, error
        self._done.release()

    def wait(self, timeout: float) -> bool:
        if not self._answered:
            self._answered = self._done.acquire(timeout=timeout)
        return self._answered


class _Link:
    """One AMQP connection with its exclusive reply queue and the thread that reads it."""

    def __init__(self, parameters: dict, exchange: str, caller: str):
        self.exchange = exchange
        self.caller = caller
        self.reply_key = f"{caller}-{uuid.uuid4().hex}"
        self._pending: dict[str, _PendingCall] = {}
        self._pending_lock = threading.Lock()
        self.alive = True
        self._closing = False
        try:
            self._connection = _SingleThreadedReads(**parameters)
            self._connection.connect()
            self._channel = self._connection.channel()
            self._channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
            # exclusive: the broker drops it with the connection, so no answer waits for a dead reader
            self._channel.queue_declare(self.reply_key, exclusive=True, auto_delete=True)
            self._channel.queue_bind(self.reply_key, exchange, routing_key=self.reply_key)
            self._channel.basic_consume(self.reply_key, no_ack=True, callback=self._on_reply)
            self._channel.events["basic_return"].add(self._on_return)
            self._connection.transport.sock.settimeout(READ_TICK)  # reads wake up to send heartbeats
        except (OSError, amqp.exceptions.AMQPError) as error:
            self._drop_connection()
            raise BrokerUnavailable(f"The message broker is not reachable: {error}") from error
        self._reader = threading.Thread(target=self._read, name="rpc-replies", daemon=True)
        self._reader.start()

    def send(self, service: str, method: str, args, kwargs, headers: dict, timeout: float) -> "_Reply":
        correlation_id = uuid.uuid4().hex
        pending = _PendingCall()
        with self._pending_lock:
            self._pending[correlation_id] = pending
        if not self.alive:  # lost meanwhile: its waiting calls were failed already, this one would hang
            self._forget(correlation_id)
            raise BrokerUnavailable("The connection to the broker was lost.")
        message = amqp.Message(
            kombu_json.dumps({"args": args, "kwargs": kwargs}), content_type="application/json",
            content_encoding="utf-8", correlation_id=correlation_id, reply_to=self.reply_key,
            # transient: a request that outlives a broker restart would only be refused as a redelivery
            delivery_mode=1, application_headers={
                **headers, f"{HEADER_PREFIX}call_id_stack": [f"{self.caller}.call.{correlation_id}"]})
        try:
            # Threads publish at once on one connection: py-amqp writes each message's frames under
            # its connection's buffer lock (amqp 5.4, pinned in pyproject.toml), and nothing else
            # here touches the channel outside the reader thread.
            # mandatory: no queue for the service comes back as basic.return (UnknownService)
            self._channel.basic_publish(message, exchange=self.exchange, routing_key=f"{service}.{method}",
                                        mandatory=True)
        except (OSError, amqp.exceptions.AMQPError) as error:
            self._forget(correlation_id)
            self._lost(error)
            raise BrokerUnavailable(f"The message broker is not reachable: {error}") from error
        return _Reply(self, correlation_id, pending, f"{service}.{method}", time.monotonic() + timeout)

    def _forget(self, correlation_id: str) -> None:
        with self._pending_lock:
            self._pending.pop(correlation_id, None)

    def _on_reply(self, message) -> None:
        with self._pending_lock:
            pending = self._pending.pop(message.properties.get("correlation_id"), None)
        if pending is not None:  # else: a late answer of a call that timed out
            pending.resolve(body=message.body)

    def _on_return(self, error, exchange, routing_key, message) -> None:
        with self._pending_lock:
            pending = self._pending.pop(message.properties.get("correlation_id"), None)
        if pending is not None:
            service = routing_key.partition(".")[0]
            pending.resolve(error=UnknownService(service) if error.reply_code == NO_ROUTE else
                            BrokerUnavailable(f"The broker returned the request to {routing_key}: {error}"))

    def _read(self) -> None:
        try:
            while not self._closing:
                try:
                    self._connection.drain_events(timeout=READ_TICK)
                except socket.timeout:
                    pass
                self._connection.heartbeat_tick()
        except Exception as error:  # noqa: BLE001 - whatever ended the connection fails the waiting calls
            if not self._closing:
                self._lost(error)

    def _lost(self, error: Exception) -> None:
        """The connection is gone: every waiting call learns it now, not at its timeout."""
        if self.alive:
            log.warning("rpc connection lost: %s: %s", type(error).__name__, error)
        self.alive = False
        with self._pending_lock:
            waiting, self._pending = self._pending, {}
        for pending in waiting.values():
            pending.resolve(error=ReplyLost(f"The connection to the broker was lost while waiting ({error})."))
        self._drop_connection()

    def _drop_connection(self) -> None:
        drop(getattr(self, "_connection", None))  # already broken: only the socket needs freeing

    def close(self) -> None:
        self._closing = True
        self.alive = False
        with contextlib.suppress(Exception):  # the broker may be gone already
            self._connection.close()
        self._drop_connection()


class _Reply:
    """A sent request: result() waits for its answer until the call's deadline."""

    __slots__ = ("_link", "_correlation_id", "_pending", "_label", "_deadline")

    def __init__(self, link: _Link, correlation_id: str, pending: _PendingCall, label: str, deadline: float):
        self._link, self._correlation_id, self._pending = link, correlation_id, pending
        self._label, self._deadline = label, deadline

    def result(self):
        pending = self._pending
        if not pending.wait(max(0.0, self._deadline - time.monotonic())):
            self._link._forget(self._correlation_id)
            if not pending.wait(0):  # unless it was answered in the meantime after all
                raise RpcTimeout(f"{self._label} gave no answer in time")
        if pending.error is not None:
            raise pending.error
        reply = kombu_json.loads(pending.body)
        if reply.get("error"):
            raise deserialize(reply["error"])
        return reply["result"]


class _MethodProxy:
    __slots__ = ("_client", "_service", "_method")

    def __init__(self, client: "_Client", service: str, method: str):
        self._client, self._service, self._method = client, service, method

    def __call__(self, *args, **kwargs):
        return self.call_async(*args, **kwargs).result()

    def call_async(self, *args, **kwargs) -> _Reply:
        return self._client.send(self._service, self._method, args, kwargs)


class _ServiceProxy:
    __slots__ = ("_client", "_service")

    def __init__(self, client: "_Client", service: str):
        self._client, self._service = client, service

    def __getattr__(self, method: str) -> _MethodProxy:
        return _MethodProxy(self._client, self._service, method)


class _Client:
    """What `pool.client()` yields: `rpc.identity.login(...)`, calls carrying the caller's context."""

    def __init__(self, pool: "RpcPool", headers: dict):
        self._pool, self._headers = pool, headers

    def __getattr__(self, service: str) -> _ServiceProxy:
        if service.startswith("_"):
            raise AttributeError(service)
        return _ServiceProxy(self, service)

    __getitem__ = __getattr__

    def send(self, service: str, method: str, args, kwargs) -> _Reply:
        return self._pool._send(service, method, args, kwargs, self._headers)


class RpcPool:
    """Per process: one connection, opened at the first call (after a gunicorn fork), opened
    again at the next call after it was lost; at most `size` clients in use at once.
    `caller` names the calls (the first element of the call id stack the services see) and
    the reply queue."""

    caller = "client"

    def __init__(self, nameko_config: dict, size: int, timeout: float, context=None):
        self.nameko_config = {k: v for k, v in nameko_config.items() if k != "GATEHOUSE"}
        self.size = size
        self.timeout = timeout
        self.context = context  # () -> dict sent with each call as nameko context data (log fields)
        self.exchange = self.nameko_config.get(RPC_EXCHANGE_CONFIG_KEY, DEFAULT_EXCHANGE)
        self.connections_opened = 0  # in this process
        self._pid = None
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._slots: threading.BoundedSemaphore | None = None

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._link = None  # the parent's: its reader thread did not survive the fork
                    self._slots = threading.BoundedSemaphore(self.size)
                    self.connections_opened = 0
                    self._pid = os.getpid()

    @contextlib.contextmanager
    def client(self):
        """Yields a client: `with pool.client() as rpc: rpc.identity.login(...)`."""
        self._ensure_process()
        if not self._slots.acquire(timeout=self.timeout):
            raise RpcTimeout("no RPC client free")
        try:
            context = self.context() if self.context else {}  # read by kernel/calllog.py in the services
            yield _Client(self, {f"{HEADER_PREFIX}{key}": str(value) for key, value in context.items() if value})
        finally:
            self._slots.release()

    def _send(self, service: str, method: str, args, kwargs, headers: dict) -> _Reply:
        link = self._live_link()
        try:
            return link.send(service, method, args, kwargs, headers, self.timeout)
        except BrokerUnavailable:
            if not link.alive:  # found dead just now (a broker restart the reader had not seen): once more, anew
                return self._live_link().send(service, method, args, kwargs, headers, self.timeout)
            raise

    def _live_link(self) -> _Link:
        link = self._link
        if link is not None and link.alive:
            return link
        with self._lock:
            if self._link is None or not self._link.alive:
                self._link = _Link(self._connection_parameters(), self.exchange, self.caller)
                self.connections_opened += 1
            return self._link

    def _connection_parameters(self) -> dict:
        return amqp_parameters(self.nameko_config, heartbeat=RPC_HEARTBEAT)

    def close(self) -> None:
        if self._link is not None and self._pid == os.getpid():
            self._link.close()
        self._link = None
