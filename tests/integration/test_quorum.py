"""GATEHOUSE_QUEUE_TYPE=quorum on the real broker: every shared queue quorum, the platform
working through the gateway on them, and setup-broker on queues of the other type.

The platform here runs on the session broker in its own vhost (quorum queues work on a
single node), so it never consumes the queues of the session's classic platform.
"""
import sqlite3
import uuid

import pytest
from kombu import Connection, Exchange, Producer, Queue

from kernel import SERVICES
from kernel.config import Config
from kernel.topology import consumer_queues, dead_letter_queue, rpc_queue
from ops.serve import all_service_classes
from tests.harness import Platform, eventually, register
from tests.integration.test_slice import audit_of

QUORUM = {"GATEHOUSE_QUEUE_TYPE": "quorum"}


def queue_types(rabbit, vhost: str) -> dict[str, str]:
    """name -> type of every queue of `vhost`, as rabbitmqctl lists them."""
    out = rabbit.ctl("list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "type")
    return dict(line.split("\t") for line in out.splitlines() if "\t" in line)


def shared_queue_names() -> set[str]:
    names = set()
    for cls in all_service_classes():
        for queue in consumer_queues(cls):
            names |= {queue.name, dead_letter_queue(queue.name).name}
        names.add(rpc_queue(cls.name).name)
    return names


def new_vhost(rabbit) -> tuple[str, str]:
    vhost = f"gatehouse-q-{uuid.uuid4().hex[:8]}"
    return vhost, rabbit.add_vhost(vhost)


@pytest.fixture(scope="module")
def quorum_vhost(rabbit):
    return new_vhost(rabbit)


@pytest.fixture(scope="module")
def quorum_platform(quorum_vhost, tmp_path_factory):
    running = Platform(tmp_path_factory.mktemp("quorum-platform"), quorum_vhost[1], extra_env=QUORUM)
    try:
        running.start()
        yield running
    finally:
        running.stop()


# --- the platform on quorum queues ----------------------------------------------------------------

def test_every_shared_queue_is_quorum_and_temporary_ones_classic(quorum_platform, quorum_vhost, rabbit):
    quorum_platform.admin().get("/api/v1/me")  # a gateway worker starts its session cache listener
    types = eventually(lambda: (found := queue_types(rabbit, quorum_vhost[0]))
                       and any(name.startswith("gateway.session-cache.") for name in found) and found,
                       timeout=20, message="the gateway's session cache queue")
    expected = shared_queue_names()
    assert {f"rpc-{service}" for service in SERVICES} | {"audit.record", "audit.record.dead"} <= expected
    assert {name: types.get(name) for name in expected} == {name: "quorum" for name in expected}
    # The RPC reply queues (gateway, services' proxies) and the gateway's session cache listener
    # are per process and auto-deleted: classic.
    temporary = {name: kind for name, kind in types.items() if name not in expected}
    assert any(name.startswith("rpc.reply-") for name in temporary), types
    assert any(name.startswith("gateway.session-cache.") for name in temporary), types
    assert set(temporary.values()) == {"classic"}


def test_register_approve_login_and_audit_on_quorum_queues(quorum_platform, unique):
    name = f"qq{unique}"
    user, api = quorum_platform.create_user(name)
    assert api.get("/api/v1/me").json()["username"] == name
    admin = quorum_platform.admin()
    [registered] = audit_of(admin, name, "user_registered")
    assert registered["resource"]["id"] == user["id"]
    [login] = audit_of(admin, name, "login_succeeded")
    assert login["actor"]["username"] == name and login["outcome"] == "success"


def test_event_consumer_requeues_a_transient_failure_on_a_quorum_queue(quorum_platform, unique):
    """rbac's database locked: enrol_new_user fails (transiently), is requeued, and succeeds once it is free."""
    name = f"qt{unique}"
    log = quorum_platform.base_dir / "logs" / "rbac.log"
    requeues_before = log.read_text(errors="replace").count("enrol_new_user: transient failure, requeueing")
    lock = sqlite3.connect(quorum_platform.base_dir / "data" / "rbac.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # no other writer until released
        assert register(quorum_platform.api(), name).status_code == 201
        eventually(lambda: log.read_text(errors="replace").count("enrol_new_user: transient failure, requeueing")
                   > requeues_before, timeout=30, message="rbac requeueing the event")
    finally:
        lock.rollback()
        lock.close()
    admin = quorum_platform.admin()
    eventually(lambda: [e for e in admin.audit(action="member_added") if e["data"].get("username") == name],
               timeout=30, message=f"{name} enrolled in ldapusers after the lock")


def test_quorum_queue_marks_redelivered_messages(quorum_platform):
    """AtMostOnceRpc refuses a request the broker delivers again, by its `redelivered` flag:
    a quorum queue sets it when the consumer went away without acking, as a classic one does."""
    queue = Queue(f"redelivery-{uuid.uuid4().hex[:8]}", durable=True,
                  queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": 10})
    with Connection(quorum_platform.env["GATEHOUSE_AMQP_URI"]) as conn:
        first = conn.channel()
        queue(first).declare()
        Producer(first).publish("request", exchange="", routing_key=queue.name, delivery_mode=2)
        message = eventually(lambda: queue(first).get(no_ack=False), message="the message")
        assert message.delivery_info["redelivered"] is False
        first.close()  # dies without acking: the broker takes the message back
        second = conn.channel()
        again = eventually(lambda: queue(second).get(no_ack=False), message="the redelivery")
        assert again.delivery_info["redelivered"] is True
        assert again.headers["x-delivery-count"] == 1
        again.ack()
        queue(second).delete()


# --- setup-broker and queues of the other type ----------------------------------------------------

def publish_to_audit(amqp_uri: str, tag: str) -> None:
    with Connection(amqp_uri) as conn:
        Producer(conn.channel()).publish(
            {"tag": tag}, exchange=Exchange("identity.events", "topic", durable=True), routing_key="identity.x",
            serializer="json", delivery_mode=2)


def test_setup_broker_names_queues_of_the_other_type_and_recreates_only_empty_ones(rabbit, tmp_path):
    vhost, amqp_uri = new_vhost(rabbit)
    operator = Platform(tmp_path, amqp_uri)  # not started: only its CLI
    operator.gatehouse("setup-broker")  # a classic deployment
    assert set(queue_types(rabbit, vhost).values()) == {"classic"}
    publish_to_audit(amqp_uri, "kept")  # audit.record now holds a message

    refused = operator.run_gatehouse("setup-broker", env=QUORUM)

    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "GATEHOUSE_QUEUE_TYPE=quorum" in refused.stderr
    for name in ("audit.record", "audit.record.dead", "rpc-identity", "rbac.enrol_new_user"):
        assert f"rabbitmqctl delete_queue -p {vhost} {name}\n" in refused.stderr + "\n", refused.stderr
    assert set(queue_types(rabbit, vhost).values()) == {"classic"}  # nothing touched

    partly = operator.run_gatehouse("setup-broker", "--recreate-empty", env=QUORUM)

    assert partly.returncode != 0
    types = queue_types(rabbit, vhost)
    assert types.pop("audit.record") == "classic", "a queue holding a message was deleted"
    assert "audit.record:" in partly.stderr and "not empty" in partly.stderr, partly.stderr
    assert set(types.values()) == {"quorum"}
    with Connection(amqp_uri) as conn:  # the message is still there
        message = Queue("audit.record")(conn.channel()).get(no_ack=True)
        assert message is not None and message.payload == {"tag": "kept"}

    # audit.record is empty now: the next run converts it too.
    assert operator.run_gatehouse("setup-broker", "--recreate-empty", env=QUORUM).returncode == 0
    assert set(queue_types(rabbit, vhost).values()) == {"quorum"}
    publish_to_audit(amqp_uri, "routed")  # bindings were declared again with the queue
    with Connection(amqp_uri) as conn:
        assert eventually(lambda: Queue("audit.record")(conn.channel()).get(no_ack=True)).payload == {"tag": "routed"}

    # Back to classic: RabbitMQ cannot delete quorum queues on condition, so that is left to the operator.
    back = operator.run_gatehouse("setup-broker", "--recreate-empty")
    assert back.returncode != 0 and "Traceback" not in back.stderr, back.stderr
    assert "cannot delete a quorum queue on condition" in back.stderr
    assert set(queue_types(rabbit, vhost).values()) == {"quorum"}


def test_setup_broker_refuses_an_unknown_queue_type(rabbit, tmp_path, quorum_vhost):
    result = Platform(tmp_path, quorum_vhost[1]).run_gatehouse("setup-broker", env={"GATEHOUSE_QUEUE_TYPE": "qourum"})
    assert result.returncode != 0
    assert "GATEHOUSE_QUEUE_TYPE='qourum': must be one of classic, quorum" in result.stderr
    assert "Traceback" not in result.stderr
