"""Audit: records every domain event of every service, serves them read-only."""
from __future__ import annotations

import eventlet
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from kernel.authority import require_super_admin
from kernel.envelope import Actor, utc_now
from kernel.errors import ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.audit import deadletters, events, forwarder, queries, retention, storage
from services.audit.ingest import BatchIngest

MAX_PAGE = 200


FORWARDING = "the audit forwarding"


class AuditService(ServiceBase):
    name = "audit"
    db = Database(storage.metadata)

    # --- recording: ingest, chain verification, retention, dead letters ---------

    # Queue audit.record, bound "#" on every service's exchange: event types added later
    # arrive with no change here. Batched appends, acked after commit (services/audit/ingest.py).
    ingest = BatchIngest()  # in a worker: its IngestStats
    config = Config()  # config["GATEHOUSE"]: the kernel Config (retention, broker)

    @rpc
    def health(self):
        return {**super().health(), "ingest": self.ingest.as_dict()}

    @rpc
    def verify(self):
        """Recompute the hash chain from its start (checkpoint or genesis) to the head, in one snapshot."""
        with self.db.engine.connect() as conn:
            storage.begin_snapshot(conn)
            # A million records take a while: between chunks, RPCs and the ingest go on.
            return storage.verify(conn, pause=lambda: eventlet.sleep(0))

    @rpc
    def dead_letters(self, limit=50):
        """The events the ingest parked: how many, and the first `limit` described."""
        limit = max(1, min(int(limit), MAX_PAGE))
        return deadletters.peek(self.config["GATEHOUSE"].amqp_uri, self.ingest.queue, limit)

    @retention.every("GATEHOUSE_AUDIT_PURGE_INTERVAL")
    def purge_expired(self):
        """Delete records older than the retention, oldest first, a bounded transaction at a time."""
        days = self.config["GATEHOUSE"].integer("GATEHOUSE_AUDIT_RETENTION_DAYS")
        while retention.purge_once(self.db, utc_now(), days) is not None:
            eventlet.sleep(0)  # the ingest writes between two purge transactions

    # --- reading: lists, search, export, forwarding to a SIEM --------------------

    search_indexer = queries.SearchIndexer()
    forwarding = forwarder.Forwarding()
    # Forwarding sends every tenant's records to a host the caller picks: super admins only, asked of rbac
    # here whatever the gateway asked (kernel/authority.py). rbac never calls audit.
    rbac = RpcProxy("rbac")

    @rpc
    def list_events(self, scope, filters=None, limit=50, cursor=None):
        """A page of the trail, newest first, as `scope` sees it: a tenant id, or
        queries.EVERY_TENANT (super admins, who may then filter by `tenant`). The caller
        decides the scope from the session; filters are queries.FILTERS; `cursor` is the
        previous page's `next_cursor`. Answers {"items", "next_cursor"} (no total)."""
        criteria = queries.criteria(scope, filters)
        with self.db.unit_of_work() as uow:
            return queries.read_page(uow.session, criteria, cursor, limit,
                                     None if scope == queries.EVERY_TENANT else scope)

    @rpc
    def get_forwarding(self, actor):
        require_super_admin(self.rbac, Actor.from_dict(actor), FORWARDING)
        with self.db.unit_of_work() as uow:
            return forwarder.status(uow.session)

    @rpc
    def put_forwarding(self, actor, config):
        """Replace the syslog forwarding configuration; switching it on starts after the newest record."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, FORWARDING)
        if problems := forwarder.config_problems(config):
            raise ValidationFailed("The forwarding settings have invalid fields.", details=problems)
        config = forwarder.normalized(config)
        with self.db.unit_of_work() as uow:
            before = forwarder.read_config(uow.session)
            if changed := [name for name, value in config.items() if before.get(name) != value]:
                now = utc_now()
                forwarder.write_config(uow.session, config, actor.user_id, now)
                if config["enabled"] and not before.get("enabled"):
                    forwarder.start_position(uow.session, now)
                uow.emit(events.forwarding_changed(actor, config, changed))
                uow.commit()
            answer = forwarder.status(uow.session)
        self.forwarding.wake()
        return answer
