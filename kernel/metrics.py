"""Prometheus metrics of a service process, served over HTTP on GATEHOUSE_METRICS_PORT.

Counters and histograms live at module level (the outbox relay, the event consumers and
audit's ingest count into them, labelled with their service); what is state rather than
an event (outbox backlog, dead letters, sync lag) is read at scrape time by a collector,
at most once per scrape. `ServiceMetrics`, a dependency provider every service gets from
`kernel.service.ServiceBase`, times RPCs and runs the HTTP server (eventlet's, green).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from nameko.extensions import DependencyProvider
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric

from kernel.db import ServiceDatabase
from kernel.errors import GatehouseError

log = logging.getLogger(__name__)

DEAD_LETTERS_CACHE_SECONDS = 5.0

# Not registered anywhere at import: each service's registry registers them (the gateway
# process, which may import this module, must not expose or store them).
RPC_DURATION = Histogram("gatehouse_rpc_duration_seconds", "Time a service took to answer an RPC.",
                         ["service", "method", "outcome"], registry=None)
EVENTS_PUBLISHED = Counter("gatehouse_events_published", "Events the outbox relay published (broker-confirmed).",
                           ["service", "type"], registry=None)
EVENTS_CONSUMED = Counter("gatehouse_events_consumed", "Events a service's consumers took from the broker.",
                          ["service", "source", "type", "outcome"], registry=None)

# Outcomes of a consumed event.
HANDLED, REQUEUED, DEAD_LETTERED = "ok", "requeued", "dead_lettered"


def outcome_of(exc_info) -> str:
    """"ok", the machine code of a domain error (a bounded set), or "internal_error"."""
    if not exc_info:
        return "ok"
    error = exc_info[1]
    return error.code if isinstance(error, GatehouseError) else "internal_error"


def count_consumed(service: str, message, outcome: str) -> None:
    """One consumed broker message: its source is the exchange (`<service>.events`), its type the routing key."""
    info = getattr(message, "delivery_info", None) or {}
    source = str(info.get("exchange") or "").removesuffix(".events") or "unknown"
    EVENTS_CONSUMED.labels(service=service, source=source, type=info.get("routing_key") or "unknown",
                           outcome=outcome).inc()


class Cached:
    """The value of `read()`, read again at most every `seconds` (a failed read raises, and is tried again next time)."""

    def __init__(self, read: Callable, seconds: float, clock=time.monotonic):
        self.read, self.seconds, self.clock = read, seconds, clock
        self._value, self._at = None, None

    def get(self):
        now = self.clock()
        if self._at is None or now - self._at >= self.seconds:
            self._value, self._at = self.read(), now
        return self._value


def dead_letter_counts(amqp_uri: str, queue_names: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each `<queue>.dead` (a passive declare: nothing is created)."""
    from kombu import Connection

    counts = {}
    with Connection(amqp_uri, connect_timeout=3) as conn:
        for name in queue_names:
            channel = conn.channel()  # a failed passive declare closes its channel
            try:
                counts[name] = channel.queue_declare(f"{name}.dead", passive=True).message_count
            except Exception:  # noqa: BLE001 - not declared (yet): nothing waits in it
                counts[name] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001
                    pass
    return counts


class ServiceCollector:
    """What a service is at scrape time: outbox backlog, dead letters, and whatever `extra(db)` yields."""

    def __init__(self, service: str, db: ServiceDatabase, dead_letters: Callable[[], dict[str, int]],
                 extra: Callable[[ServiceDatabase], Iterable[Metric]] | None = None):
        self.service, self.db, self.dead_letters, self.extra = service, db, dead_letters, extra

    def collect(self) -> Iterable[Metric]:
        backlog = GaugeMetricFamily("gatehouse_outbox_backlog", "Committed events not yet published.",
                                    labels=["service"])
        try:
            backlog.add_metric([self.service], self.db.outbox_backlog())
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            log.warning("metrics: outbox backlog of %s unreadable", self.service, exc_info=True)
        yield backlog
        dead = GaugeMetricFamily("gatehouse_dead_letters", "Messages waiting in a dead-letter queue of this service.",
                                 labels=["service", "queue"])
        try:
            for queue, count in sorted(self.dead_letters().items()):
                dead.add_metric([self.service, queue], count)
        except Exception:  # noqa: BLE001 - the broker is away: no sample rather than a failed scrape
            log.warning("metrics: dead letters of %s unreadable", self.service, exc_info=True)
        yield dead
        if self.extra is not None:
            try:
                yield from self.extra(self.db)
            except Exception:  # noqa: BLE001
                log.warning("metrics: %s's own metrics unreadable", self.service, exc_info=True)


class ServiceMetrics(DependencyProvider):
    """Times every RPC of the service and serves its metrics on GATEHOUSE_METRICS_PORT (0: off).

    `extra(db)` yields metric families of the service's own (proxmox_sync: sync lag).
    """

    def __init__(self, extra: Callable[[ServiceDatabase], Iterable[Metric]] | None = None):
        self.extra = extra

    def setup(self):
        config = self.container.config["GATEHOUSE"]
        self.service = self.container.service_name
        self.host = config["GATEHOUSE_METRICS_HOST"]
        self.port = config.integer("GATEHOUSE_METRICS_PORT")
        self.amqp_uri = config.amqp_uri
        self.registry = CollectorRegistry()
        for metric in (RPC_DURATION, EVENTS_PUBLISHED, EVENTS_CONSUMED):
            self.registry.register(metric)
        self._started: dict = {}
        self._server = self._thread = None

    def start(self):
        from kernel.topology import consumer_queues

        db = next(dep.db for dep in self.container.dependencies if isinstance(getattr(dep, "db", None), ServiceDatabase))
        queues = [queue.name for queue in consumer_queues(self.container.service_cls)]
        dead = Cached(lambda: dead_letter_counts(self.amqp_uri, queues) if queues else {}, DEAD_LETTERS_CACHE_SECONDS)
        self.registry.register(ServiceCollector(self.service, db, dead.get, self.extra))
        if self.port:
            self._serve()

    def _serve(self):
        import eventlet
        import eventlet.wsgi

        try:
            sock = eventlet.listen((self.host, self.port))
        except OSError as error:  # metrics are not worth refusing to serve the service for
            log.error("metrics of %s not served: %s:%s: %s", self.service, self.host, self.port, error)
            return
        self._server = sock
        app = make_wsgi_app(self.registry)

        def serve():
            try:
                eventlet.wsgi.server(sock, app, log_output=False, socket_timeout=10)
            except Exception:  # noqa: BLE001 - never let the metrics server take the service down
                log.warning("metrics server of %s ended", self.service, exc_info=True)

        self._thread = self.container.spawn_managed_thread(serve, identifier="metrics server")
        log.info("metrics of %s on http://%s:%s/metrics", self.service, self.host, self.port)

    def stop(self):
        thread, server = self._thread, self._server
        self._thread = self._server = None
        if thread is not None:
            thread.kill()
        if server is not None:
            server.close()

    kill = stop

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        from nameko.rpc import Rpc

        started = self._started.pop(worker_ctx, None)
        if started is not None and isinstance(worker_ctx.entrypoint, Rpc):
            RPC_DURATION.labels(service=self.service, method=worker_ctx.entrypoint.method_name,
                                outcome=outcome_of(exc_info)).observe(time.perf_counter() - started)

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)  # a worker whose result never came
