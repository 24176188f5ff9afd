"""The one way Gatehouse opens a broker connection, and the one retry policy around it.

Every piece of kernel.amqp gets its connection here: the URL from kernel.config (or the
nameko config dict a container or the gateway holds), the connect timeout, the piece's
heartbeat, the broker I/O timeouts, and a name the broker's connection list shows. A
connection is opened by `connect` (kombu's attempt and one retry, then it raises): the
piece's own loop decides when to try again, pausing as `Backoff` says, so no library
keeps retrying behind its back. A connection
that failed is dropped with `drop` (frees the socket without waiting on a broker that may
be gone).
"""
from __future__ import annotations

import contextlib
from typing import Mapping

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection
from kombu.exceptions import OperationalError
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_TRANSPORT_OPTIONS,
                              LOGIN_METHOD_CONFIG_KEY)

from kernel.config import Config

CONNECT_TIMEOUT = 5.0  # seconds to open a connection (TCP, AMQP handshake)
BROKER_TIMEOUT = 15  # seconds any broker read, write or confirm of a publisher may take before it reconnects

# Heartbeats, in seconds: a silently dead connection is noticed within two of them.
RPC_HEARTBEAT = 60  # the gateway's RPC client: a dead link also fails at the next publish
LISTENER_HEARTBEAT = 10  # the session cache listener: while it has not noticed, the cache may miss events
BATCH_HEARTBEAT = 30  # audit's ingest: the broker drops a consumer that misses two

# Pauses before trying again after a failure, per piece: Backoff(first, maximum).
OUTBOX_RETRY = (0.5, 30.0)  # the outbox relay (events wait in the outbox meanwhile)
BATCH_RETRY = (1.0, 30.0)  # audit's ingest (unacked events wait in their queue meanwhile)
LISTENER_RETRY = (1.0, 1.0)  # the session cache listener: the gateway serves uncached until it is back

# The broker went away (kombu wraps py-amqp's and socket errors in OperationalError).
BROKER_ERRORS = (OperationalError, AmqpConnectionError, OSError)


def broker_uri(config: Config | Mapping | None = None) -> str:
    """The broker URL: a kernel.config Config's, a nameko config dict's, or the environment's."""
    if config is None:
        config = Config.from_env()
    if isinstance(config, Config):
        return config.amqp_uri
    return config[AMQP_URI_CONFIG_KEY]


def open_connection(config: Config | Mapping | str | None = None, *, heartbeat: float | None = None,
                    name: str | None = None, confirm_publish: bool | None = None,
                    io_timeout: float | None = None, nameko_retries: bool = False) -> Connection:
    """A kombu Connection (not yet connected) with the project's policy.

    config: a Config, a nameko config dict (its SSL and login method are kept) or a URL.
    heartbeat: seconds, or None for none (a publisher that times out its I/O instead).
    confirm_publish: publisher confirms (None: kombu's default).
    io_timeout: seconds a socket read or write may block.
    nameko_retries: nameko's transport options (3 reconnection attempts within a publish),
        for the pieces that stand in for a nameko publisher and must behave as it did.
    """
    ssl = login_method = None
    if isinstance(config, str):
        uri = config
    else:
        uri = broker_uri(config)
        if isinstance(config, Mapping):
            ssl, login_method = config.get(AMQP_SSL_CONFIG_KEY), config.get(LOGIN_METHOD_CONFIG_KEY)
    options = dict(DEFAULT_TRANSPORT_OPTIONS) if nameko_retries else {}
    if confirm_publish is not None:
        options["confirm_publish"] = confirm_publish
    if io_timeout is not None:
        options["read_timeout"] = options["write_timeout"] = io_timeout
    if name:
        options["client_properties"] = {"connection_name": name}
    kwargs = {"transport_options": options, "connect_timeout": CONNECT_TIMEOUT}
    if heartbeat is not None:
        kwargs["heartbeat"] = heartbeat
    if ssl:
        kwargs["ssl"] = ssl
    if login_method:
        kwargs["login_method"] = login_method
    return Connection(uri, **kwargs)


def connect(connection: Connection) -> Connection:
    """Open it: an attempt and one retry (kombu's max_retries=1), then a BROKER_ERRORS error;
    trying again later is the caller's loop's."""
    connection.ensure_connection(max_retries=1)
    return connection


def amqp_parameters(config: Mapping | str, *, heartbeat: float, name: str | None = None) -> dict:
    """Keyword arguments of a py-amqp Connection (no kombu) for the same broker, same policy."""
    connection = open_connection(config)
    ssl = config.get(AMQP_SSL_CONFIG_KEY) if isinstance(config, Mapping) else None
    login_method = config.get(LOGIN_METHOD_CONFIG_KEY) if isinstance(config, Mapping) else None
    parameters = {"host": f"{connection.hostname}:{connection.port or 5672}", "userid": connection.userid,
                  "password": connection.password, "virtual_host": connection.virtual_host,
                  "ssl": ssl or connection.ssl, "login_method": login_method, "heartbeat": heartbeat,
                  "connect_timeout": CONNECT_TIMEOUT}
    if name:
        parameters["client_properties"] = {"connection_name": name}
    return parameters


def drop(connection) -> None:
    """Free a connection's socket without waiting on a broker that may be gone (never raises)."""
    if connection is not None:
        with contextlib.suppress(Exception):
            connection.collect()


class Backoff:
    """Pauses between attempts to reach the broker again: `first`, doubled after every
    failure up to `maximum`; `reset()` once the piece works again (a batch stored, an event
    published), so a later failure starts over from `first`."""

    def __init__(self, first: float, maximum: float, factor: float = 2.0):
        self.first, self.maximum, self.factor = first, maximum, factor
        self.current = first

    def next(self) -> float:
        """The pause to take now; the following one is longer (up to the maximum)."""
        pause = self.current
        self.current = min(self.current * self.factor, self.maximum)
        return pause

    def reset(self) -> None:
        self.current = self.first
