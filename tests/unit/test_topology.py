"""Queue and exchange names derived from the service classes (no broker needed)."""
from __future__ import annotations

from kombu import Exchange, Queue

from kernel import SERVICES
from kernel.config import Config
from kernel.topology import (
    DEAD_LETTER_DELIVERY_LIMIT, DEAD_LETTER_EXCHANGE, consumer_queue, consumer_queues, dead_letter_queue,
    events_exchange, mismatch_message, rpc_queue,
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


# --- queue types ------------------------------------------------------------------------------

CLASSIC = Config.from_env({})
QUORUM = Config.from_env({"GATEHOUSE_QUEUE_TYPE": "quorum", "GATEHOUSE_QUEUE_DELIVERY_LIMIT": "500"})


def test_classic_queues_carry_no_type_argument():
    assert consumer_queue("audit", "record", ["identity"], ["#"], CLASSIC).queue_arguments == {
        "x-dead-letter-exchange": "gatehouse.dead-letters", "x-dead-letter-routing-key": "audit.record"}
    assert not dead_letter_queue("audit.record", CLASSIC).queue_arguments
    assert not rpc_queue("identity", CLASSIC).queue_arguments


def test_quorum_consumer_queues_keep_dead_lettering_and_declare_the_delivery_limit():
    for queue in consumer_queues(RbacService, QUORUM) + consumer_queues(AuditService, QUORUM):
        assert queue.queue_arguments == {
            "x-dead-letter-exchange": "gatehouse.dead-letters", "x-dead-letter-routing-key": queue.name,
            "x-queue-type": "quorum", "x-delivery-limit": 500}
        assert queue.durable and not queue.exclusive and not queue.auto_delete


def test_quorum_dead_letter_queues_never_reach_a_limit():
    queue = dead_letter_queue("audit.record", QUORUM)
    assert queue.queue_arguments == {"x-queue-type": "quorum", "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT}
    assert queue.durable and not queue.auto_delete


def test_rpc_queue_is_namekos_with_the_configured_type():
    queue = rpc_queue("identity", QUORUM)
    assert (queue.name, queue.exchange.name, queue.exchange.type, queue.routing_key) == (
        "rpc-identity", "nameko-rpc", "topic", "identity.*")
    assert queue.durable and not queue.auto_delete and not queue.exclusive
    assert queue.queue_arguments == {"x-queue-type": "quorum", "x-delivery-limit": 500}


def test_services_consume_their_rpc_queue_through_the_typed_consumer():
    from kernel.amqp.rpc_server import AtMostOnceRpc, TypedRpcConsumer

    assert isinstance(AtMostOnceRpc.rpc_consumer, TypedRpcConsumer)
    for method in (RbacService.health, AuditService.health):
        [entrypoint] = method.nameko_entrypoints
        assert isinstance(entrypoint, AtMostOnceRpc)


def test_mismatch_message_names_each_queue_and_how_to_fix_it():
    message = mismatch_message([("rpc-identity", "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
                                ("audit.record.dead", "x")], "quorum", "gh")
    assert "GATEHOUSE_QUEUE_TYPE=quorum" in message and "inequivalent arg" in message
    assert "rabbitmqctl delete_queue -p gh rpc-identity" in message
    assert "rabbitmqctl delete_queue -p gh audit.record.dead" in message
    assert "--recreate-empty" in message
