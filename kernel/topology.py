"""RabbitMQ names and declarations shared by publishers, consumers and deploy.

Each service publishes to its own topic exchange `<service>.events` with the event
type as routing key (nameko's convention). Each consumer entrypoint owns one
durable queue `<service>.<method>` bound to the sources it listens to, and one
dead-letter queue `<queue>.dead` where the broker moves the messages it rejects.
"""
from __future__ import annotations

import inspect

from kombu import Connection, Exchange, Queue, binding

from kernel.envelope import exchange_of

DEAD_LETTER_EXCHANGE = Exchange("gatehouse.dead-letters", "direct", durable=True)


def events_exchange(service: str) -> Exchange:
    return Exchange(exchange_of(service), "topic", durable=True)


def consumer_queue(service: str, method: str, sources, patterns) -> Queue:
    name = f"{service}.{method}"
    return Queue(
        name, durable=True,
        bindings=[binding(events_exchange(src), routing_key=p) for src in sources for p in patterns],
        # A rejected message goes to <name>.dead through the broker itself: nothing is
        # dropped even if the consumer dies right after deciding to reject.
        queue_arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name, "x-dead-letter-routing-key": name},
    )


def dead_letter_queue(queue_name: str) -> Queue:
    return Queue(f"{queue_name}.dead", exchange=DEAD_LETTER_EXCHANGE, routing_key=queue_name, durable=True)


def consumer_queues(service_cls) -> list[Queue]:
    """The queues of every event consumer a service class declares.

    Besides @on_event entrypoints, a dependency provider that consumes by itself (audit's
    batching ingest) names its queues with a `consumer_queues(service_name)` method.
    """
    from kernel.consumer import EventConsumer

    queues = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventConsumer):
                queues.append(consumer_queue(service_cls.name, method_name, entrypoint.sources, entrypoint.patterns))
    for _, member in inspect.getmembers(service_cls):
        if not inspect.isclass(member) and callable(getattr(member, "consumer_queues", None)):
            queues.extend(member.consumer_queues(service_cls.name))
    return queues


def declare(amqp_uri: str, service_classes) -> list[str]:
    """Declare every exchange, consumer queue and dead-letter queue.

    Run before any producer starts: RabbitMQ drops events published to an exchange
    that no queue is bound to yet.
    """
    from kernel import SERVICES

    names = []
    with Connection(amqp_uri, connect_timeout=10) as conn:
        channel = conn.default_channel
        for service in SERVICES:
            events_exchange(service)(channel).declare()
        DEAD_LETTER_EXCHANGE(channel).declare()
        for cls in service_classes:
            for queue in consumer_queues(cls):
                queue(channel).declare()
                dead_letter_queue(queue.name)(channel).declare()
                names.append(queue.name)
    return names
