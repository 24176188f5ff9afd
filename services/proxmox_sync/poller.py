"""The inventory poller: every GATEHOUSE_INVENTORY_INTERVAL seconds (or sooner after `wake()`,
e.g. when a connection is added), reads /cluster/resources of every connection and stores it.

A poll that fails keeps the connection's last inventory and records the failure in its
status; a connection tenancy no longer has loses its inventory. Connections are polled side
by side (green threads), so one that hangs delays no other; the database is written only
between network steps, never while one is under way.
"""
from __future__ import annotations

import logging
from datetime import datetime

import eventlet
from nameko.standalone.rpc import ClusterRpcProxy

from kernel.db import ServiceDatabase, aware
from kernel.envelope import utc_now
from kernel.errors import GatehouseError
from kernel.service import Periodic
from services.proxmox_sync import inventory, pve, storage
from services.proxmox_sync.engine import every_connection

log = logging.getLogger(__name__)

CONCURRENT_POLLS = 8


def save_poll(uow, connection_id: str, tenant_id: str, started_at: datetime, rows: list[dict] | None,
              failure: pve.PveFailure | None = None) -> None:
    """Inside a unit of work: the rows of a successful poll replace the connection's, or the
    failure is recorded and the rows stay. A poll that started before the stored one (the
    loop's and a power action's overlap) changes nothing: it would bring back an older state."""
    status = uow.session.get(storage.InventoryStatus, connection_id)
    if status is not None and status.polled_at is not None and aware(status.polled_at) > started_at:
        return
    if failure is None:
        storage.replace_inventory(uow.session, connection_id, tenant_id, rows)
    storage.record_poll(uow.session, connection_id, tenant_id, started_at, failure.as_dict() if failure else None)


class InventoryPoller(Periodic):
    """A Periodic of its own RPC client: its loop runs outside any worker, so it cannot use an
    RpcProxy dependency; a standalone proxy per pass (a few ms) is used by this loop only."""

    def setup(self):
        super().setup()
        config = self.container.config["GATEHOUSE"]
        self.interval = config.number("GATEHOUSE_INVENTORY_INTERVAL")
        self.rpc_config = config.nameko()
        self.rpc_timeout = config.number("GATEHOUSE_RPC_TIMEOUT")

    def run_once(self, db: ServiceDatabase) -> None:
        with ClusterRpcProxy(self.rpc_config, timeout=self.rpc_timeout) as rpc:
            connections = every_connection(rpc.tenancy)
            endpoints = {}
            for connection in connections:
                try:
                    endpoints[connection["id"]] = pve.Endpoint.from_credentials(
                        rpc.tenancy.connection_credentials(connection["id"]))
                except GatehouseError:  # deleted meanwhile
                    continue
        pool = eventlet.GreenPool(CONCURRENT_POLLS)
        for connection in connections:
            if connection["id"] in endpoints:
                pool.spawn_n(self._poll, db, connection, endpoints[connection["id"]])
        pool.waitall()
        with db.unit_of_work() as uow:
            storage.forget_connections_but(uow.session, [connection["id"] for connection in connections])
            uow.commit()

    @staticmethod
    def _poll(db: ServiceDatabase, connection: dict, endpoint: pve.Endpoint) -> None:
        rows, failure, started_at = None, None, utc_now()
        try:
            rows = inventory.poll_connection(endpoint, started_at)
        except pve.PveFailure as error:
            failure = error
            log.info("inventory poll of connection %s failed: %s", connection["id"], error.code)
        with db.unit_of_work() as uow:
            save_poll(uow, connection["id"], connection["tenant_id"], started_at, rows, failure)
            uow.commit()

