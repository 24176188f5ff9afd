"""Audit: records every domain event of every service, serves them read-only."""
from __future__ import annotations

from kernel import SERVICES
from kernel.consumer import on_event
from kernel.envelope import Actor, utc_now
from kernel.errors import ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.audit import events, forwarder, queries, storage


class AuditService(ServiceBase):
    name = "audit"
    db = Database(storage.metadata)

    # --- recording: ingest, chain verification, retention, dead letters ---------

    # Binds "#" on every service's exchange: event types added later arrive with no change here.
    @on_event(*SERVICES, dedupe=False)
    def record(self, event):
        """Append the event once; a redelivered event id is ignored (the id is unique)."""
        with self.db.engine.begin() as conn:
            storage.append(conn, [storage.record_from_event(event, utc_now())])

    # --- reading: lists, search, export, forwarding to a SIEM --------------------

    search_indexer = queries.SearchIndexer()
    forwarding = forwarder.Forwarding()

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
    def get_forwarding(self):
        with self.db.unit_of_work() as uow:
            return forwarder.status(uow.session)

    @rpc
    def put_forwarding(self, actor, config):
        """Replace the syslog forwarding configuration; switching it on starts after the newest record."""
        actor = Actor.from_dict(actor)
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
