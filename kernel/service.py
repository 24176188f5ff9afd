"""What every nameko service of Gatehouse has: a database with its outbox relay, and health."""
from __future__ import annotations

from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc

from kernel.db import ServiceDatabase
from kernel.errors import GatehouseError
from kernel.outbox import AmqpPublisher, OutboxRelay


def rpc(fn=None, **options):
    """nameko's @rpc, with domain errors expected (answered, not logged as crashes)."""
    options.setdefault("expected_exceptions", (GatehouseError,))
    decorator = Rpc.decorator(**options)
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
    """Subclasses set `name` and `db = Database(metadata)`."""

    name: str
    db: ServiceDatabase

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok", "outbox_backlog": self.db.outbox_backlog()}
