"""RabbitMQ names and declarations shared by publishers, consumers and deploy.

Each service publishes to its own topic exchange `<service>.events` with the event
type as routing key (nameko's convention). Each consumer entrypoint owns one
durable queue `<service>.<method>` bound to the sources it listens to, and one
dead-letter queue `<queue>.dead` where the broker moves the messages it rejects.
Each service answers RPCs from its durable queue `rpc-<service>` (nameko's name).

Those shared durable queues are classic, or quorum (replicated on a cluster) with
GATEHOUSE_QUEUE_TYPE=quorum. Per-process temporary queues (RPC replies, the gateway's
session cache listener) are exclusive or auto-deleted: always classic, which quorum
queues cannot be.
"""
from __future__ import annotations

import inspect

from amqp.exceptions import AMQPNotImplementedError, PreconditionFailed
from kombu import Connection, Exchange, Queue, binding
from nameko.rpc import RPC_QUEUE_TEMPLATE, get_rpc_exchange

from kernel.config import Config, ConfigError
from kernel.envelope import exchange_of

DEAD_LETTER_EXCHANGE = Exchange("gatehouse.dead-letters", "direct", durable=True)
# A dead-letter queue has no dead-letter queue of its own: a message over its delivery
# limit would be dropped. Reading parked messages returns them (one delivery each time),
# so their limit is the largest the broker takes (RabbitMQ 3.x reads -1 as "none at all").
DEAD_LETTER_DELIVERY_LIMIT = 2**31 - 1


def queue_arguments(config: Config | None, dead_letters: bool = False) -> dict:
    """The x-arguments of a shared durable queue of the configured type (none: classic)."""
    if config is None or config.queue_type == "classic":
        return {}
    limit = DEAD_LETTER_DELIVERY_LIMIT if dead_letters else config.delivery_limit
    return {"x-queue-type": "quorum", "x-delivery-limit": limit}


def events_exchange(service: str) -> Exchange:
    return Exchange(exchange_of(service), "topic", durable=True)


def consumer_queue(service: str, method: str, sources, patterns, config: Config | None = None) -> Queue:
    name = f"{service}.{method}"
    return Queue(
        name, durable=True,
        bindings=[binding(events_exchange(src), routing_key=p) for src in sources for p in patterns],
        # A rejected message goes to <name>.dead through the broker itself: nothing is
        # dropped even if the consumer dies right after deciding to reject.
        # So does a message over a quorum queue's delivery limit (x-death reason "delivery_limit").
        queue_arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name, "x-dead-letter-routing-key": name,
                         **queue_arguments(config)},
    )


def dead_letter_queue(queue_name: str, config: Config | None = None) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=DEAD_LETTER_EXCHANGE, routing_key=queue_name, durable=True,
                 queue_arguments=queue_arguments(config, dead_letters=True))


def rpc_queue(service: str, config: Config | None = None) -> Queue:
    """The queue nameko's RpcConsumer consumes (same name, binding and durability), of the configured type."""
    return Queue(RPC_QUEUE_TEMPLATE.format(service), exchange=get_rpc_exchange({}), routing_key=f"{service}.*",
                 durable=True, queue_arguments=queue_arguments(config))


def consumer_queues(service_cls, config: Config | None = None) -> list[Queue]:
    """The queues of every event consumer a service class declares.

    Besides @on_event entrypoints, a dependency provider that consumes by itself (audit's
    batching ingest) names its queues with a `consumer_queues(service_name)` method.
    """
    from kernel.amqp.consumer import EventConsumer

    queues = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventConsumer):
                queues.append(consumer_queue(service_cls.name, method_name, entrypoint.sources, entrypoint.patterns,
                                             config))
    for _, member in inspect.getmembers(service_cls):
        if not inspect.isclass(member) and callable(getattr(member, "consumer_queues", None)):
            queues.extend(member.consumer_queues(service_cls.name, config))
    return queues


class QueueTypeMismatch(ConfigError):
    """Queues exist on the broker with another type (or other arguments) than the settings ask for."""


def declare(amqp_uri: str, service_classes, config: Config | None = None, recreate_empty: bool = False) -> list[str]:
    """Declare every exchange, consumer queue, dead-letter queue and RPC queue.

    Run before any producer starts: RabbitMQ drops events published to an exchange
    that no queue is bound to yet. `config` (default: the environment) gives the queue
    type. A queue that exists with another type makes RabbitMQ refuse the declaration
    (406 PRECONDITION_FAILED): all such queues are named in one QueueTypeMismatch. With
    `recreate_empty`, such a queue is deleted and declared anew if the broker finds it
    empty and without consumers (it checks both itself: a queue holding messages is
    never deleted).
    """
    from kernel import SERVICES

    config = config or Config.from_env()
    queues = []
    for cls in service_classes:
        for queue in consumer_queues(cls, config):
            queues += [queue, dead_letter_queue(queue.name, config)]
        queues.append(rpc_queue(cls.name, config))
    mismatched = []
    with Connection(amqp_uri, connect_timeout=10) as conn:
        channel = conn.channel()
        for service in SERVICES:
            events_exchange(service)(channel).declare()
        DEAD_LETTER_EXCHANGE(channel).declare()
        for queue in queues:
            try:
                queue(channel).declare()
                continue
            except PreconditionFailed as refused:  # the broker closed the channel
                channel = conn.channel()
                reason = refused.reply_text
            kept = delete_if_empty(amqp_uri, queue.name) if recreate_empty else "not recreated"
            if kept is None:
                queue(channel).declare()
                continue
            mismatched.append((queue.name, f"{reason}; {kept}"))
        vhost = conn.virtual_host
    if mismatched:
        raise QueueTypeMismatch(mismatch_message(mismatched, config.queue_type, vhost))
    return [queue.name for queue in queues if not queue.name.endswith(".dead")]


def delete_if_empty(amqp_uri: str, name: str) -> str | None:
    """Deletes queue `name` if the broker finds it empty and without consumers; else why not.

    The broker checks and deletes in one step, so a message arriving meanwhile is never lost.
    """
    # A connection of its own: RabbitMQ answers a conditional delete of a quorum queue
    # with a connection error.
    with Connection(amqp_uri, connect_timeout=10) as conn:
        try:
            conn.channel().queue_delete(name, if_unused=True, if_empty=True)
            return None
        except PreconditionFailed as refused:  # holds messages, or has consumers
            return f"not recreated: {refused.reply_text}"
        except AMQPNotImplementedError:
            return "not recreated: RabbitMQ cannot delete a quorum queue on condition (empty, unused)"


def mismatch_message(mismatched: list[tuple[str, str]], queue_type: str, vhost: str) -> str:
    names = [name for name, _ in mismatched]
    lines = [f"{len(names)} queue(s) exist on the broker (vhost {vhost!r}) with another type or other arguments "
             f"than GATEHOUSE_QUEUE_TYPE={queue_type} declares:"]
    lines += [f"  {name}: {reason}" for name, reason in mismatched]
    lines += ["Stop every Gatehouse process, let the queues drain (a .dead queue holds parked messages: handle them "
              "first), then either run `gatehouse setup-broker --recreate-empty` (it deletes only empty classic "
              "queues without consumers) or delete them yourself:"]
    lines += [f"  rabbitmqctl delete_queue -p {vhost} {name}" for name in names]
    lines.append("See docs/deployment.md, 'On a RabbitMQ cluster'.")
    return "\n".join(lines)
