"""Queue and exchange names derived from the service classes (no broker needed)."""
from __future__ import annotations

from kombu import Exchange, Queue

from kernel import SERVICES
from kernel.topology import (
    DEAD_LETTER_EXCHANGE, consumer_queue, consumer_queues, dead_letter_queue, events_exchange,
)
from services.audit.service import AuditService
from services.rbac.service import RbacService


def bindings_of(queue: Queue) -> set[tuple[str, str, str, bool]]:
    return {(b.exchange.name, b.exchange.type, b.routing_key, b.exchange.durable) for b in queue.bindings}


def test_events_exchange_is_a_durable_topic_per_service():
    exchange = events_exchange("identity")
    assert isinstance(exchange, Exchange)
    assert (exchange.name, exchange.type, exchange.durable) == ("identity.events", "topic", True)


def test_audit_has_one_queue_bound_to_every_service_with_hash():
    queues = consumer_queues(AuditService)
    assert len(queues) == 1
    queue = queues[0]
    assert queue.name == "audit.record"
    assert queue.durable is True
    assert bindings_of(queue) == {(f"{s}.events", "topic", "#", True) for s in SERVICES}
    assert len(queue.bindings) == len(SERVICES)


def test_rbac_enrols_new_users_from_identity_creation_and_registration():
    queues = {q.name: q for q in consumer_queues(RbacService)}
    queue = queues["rbac.enrol_new_user"]
    assert queue.durable is True
    assert bindings_of(queue) == {("identity.events", "topic", "identity.user_created", True),
                                  ("identity.events", "topic", "identity.user_registered", True)}


def test_consumer_queue_binds_every_source_and_pattern():
    queue = consumer_queue("svc", "handle", ("a", "b"), ("a.x", "b.*"))
    assert queue.name == "svc.handle"
    assert {(b.exchange.name, b.routing_key) for b in queue.bindings} == {
        ("a.events", "a.x"), ("a.events", "b.*"), ("b.events", "a.x"), ("b.events", "b.*")}


def test_dead_letter_queue_naming():
    queue = dead_letter_queue("audit.record")
    assert queue.name == "audit.record.dead"
    assert queue.exchange is DEAD_LETTER_EXCHANGE or queue.exchange == DEAD_LETTER_EXCHANGE
    assert queue.exchange.name == "gatehouse.dead-letters"
    assert queue.exchange.type == "direct" and queue.exchange.durable
    assert queue.routing_key == "audit.record"
    assert queue.durable is True


def test_consumer_queues_dead_letter_through_the_broker():
    queue = consumer_queue("audit", "record", ["identity"], ["#"])
    assert queue.queue_arguments == {"x-dead-letter-exchange": "gatehouse.dead-letters",
                                     "x-dead-letter-routing-key": "audit.record"}
    dead = dead_letter_queue("audit.record")
    assert dead.exchange.name == "gatehouse.dead-letters" and dead.routing_key == "audit.record"
