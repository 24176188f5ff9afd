"""What every nameko service of Gatehouse has: a database with its outbox relay, and health;
`@rpc` (kernel.amqp.rpc_server's entrypoint); and `Periodic`, the base of background loops
(followers of a service's tables)."""
from __future__ import annotations

import logging
import threading

from nameko.extensions import DependencyProvider

from kernel.amqp.publisher import AmqpPublisher
from kernel.amqp.rpc_server import AtMostOnceRpc
from kernel.calllog import CallLog
from kernel.db import ServiceDatabase
from kernel.errors import GatehouseError
from kernel.metrics import ServiceMetrics
from kernel.outbox import OutboxRelay

log = logging.getLogger(__name__)


def rpc(fn=None, **options):
    """nameko's @rpc, at most once per request (AtMostOnceRpc), with domain errors expected
    (answered, not logged as crashes)."""
    options.setdefault("expected_exceptions", (GatehouseError,))
    decorator = AtMostOnceRpc.decorator(**options)
    return decorator(fn) if fn else decorator


class Database(DependencyProvider):
    """Gives workers the service's ServiceDatabase and runs its outbox relay."""

    def __init__(self, metadata):
        self.metadata = metadata
        self.db: ServiceDatabase | None = None
        self.relay: OutboxRelay | None = None

    def setup(self):
        config = self.container.config["GATEHOUSE"]
        name = self.container.service_name
        self.db = ServiceDatabase(name, config.db_url(name), self.metadata,
                                  pool_size=config.integer("GATEHOUSE_DB_POOL_SIZE"))
        self.relay = OutboxRelay(self.db, AmqpPublisher(config.amqp_uri),
                                 poll_interval=config.number("GATEHOUSE_OUTBOX_POLL_INTERVAL"))

    def start(self):
        self.container.spawn_managed_thread(self.relay.run)

    def stop(self):
        self.relay.stop()
        self.db.dispose()

    def kill(self):
        self.db.dispose()

    def get_dependency(self, worker_ctx):
        return self.db


class ServiceBase:
    """Subclasses set `name` and `db = Database(metadata)`; `metrics` times RPCs and serves
    the service's metrics (a subclass may add its own: `metrics = ServiceMetrics(extra)`)."""

    name: str
    db: ServiceDatabase
    metrics = ServiceMetrics()
    call_log = CallLog()  # log context (request id, user, tenant) and one line per call

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok", "outbox_backlog": self.db.outbox_backlog()}


class Periodic(DependencyProvider):
    """A managed thread of a service calling `run_once(db)` every `interval` seconds, or
    sooner after `wake()`; workers get the provider itself. Subclasses set `interval` and
    write `run_once`; an error is logged and the loop goes on."""

    interval = 1.0

    def setup(self):
        self.wakeup = threading.Event()  # green under eventlet
        self.stopping = threading.Event()
        self.db: ServiceDatabase | None = None

    def start(self):
        # The service's Database provider opened the database in its setup (all setups run before any start).
        self.db = next(dep.db for dep in self.container.dependencies if isinstance(dep, Database))
        self.container.spawn_managed_thread(self.run)

    def stop(self):
        self.stopping.set()
        self.wakeup.set()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    def wake(self) -> None:
        self.wakeup.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.clear()  # before the pass, so a wake() during it is not missed
            try:
                self.run_once(self.db)
            except Exception:
                log.warning("%s pass failed; retrying", type(self).__name__, exc_info=True)
            self.wakeup.wait(self.interval)

    def run_once(self, db: ServiceDatabase) -> None:
        raise NotImplementedError
