"""Nothing lost, nothing doubled: kills at the worst moments, redeliveries, poison."""
import json
import signal
import time
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Producer

from kernel.db import ServiceDatabase, kernel_tables
from kernel.envelope import Actor, Event, Resource
from kernel.outbox import AmqpPublisher, OutboxRelay
from tests.harness import eventually, register
from tests.integration.test_slice import audit_of


def publish(platform, exchange, routing_key, body):
    with Connection(platform.env["GATEHOUSE_AMQP_URI"]) as conn:
        Producer(conn.channel()).publish(
            body, exchange=Exchange(exchange, "topic", durable=True), routing_key=routing_key,
            content_type="application/json", content_encoding="utf-8", delivery_mode=2)


def records(admin, action, resource_id=None, name=None):
    return [e for e in admin.audit(action=action)
            if (resource_id is None or e["resource"]["id"] == resource_id)
            and (name is None or e["resource"]["name"] == name)]


def settle(platform, unique):
    """Returns once everything published so far has reached audit (a marker event went through)."""
    marker = f"m{unique}{uuid.uuid4().hex[:4]}"
    assert register(platform.api(), marker).status_code == 201
    audit_of(platform.admin(), marker, "user_registered")
    time.sleep(0.5)


def test_sigkill_after_commit_before_publish_loses_nothing(platform, unique):
    platform.restart("identity", {"GATEHOUSE_FAILPOINTS": "outbox.after_commit=identity.user_registered"})
    platform.wait_ready()
    name = f"k{unique}"

    response = register(platform.api(), name)

    assert response.status_code in (503, 504), response.text
    identity = platform.process("identity")
    eventually(lambda: identity.poll() is not None, message="identity killed by its failpoint")
    assert identity.returncode == -signal.SIGKILL
    platform.restart("identity")
    platform.wait_ready()
    settle(platform, unique)
    assert len(records(platform.admin(), "user_registered", name=name)) == 1
    assert register(platform.api(), name).status_code == 409  # the commit itself survived


def test_sigkill_after_publish_before_mark_is_absorbed(platform, unique):
    platform.restart("identity", {"GATEHOUSE_FAILPOINTS": "outbox.after_publish=identity.user_registered"})
    platform.wait_ready()
    name = f"r{unique}"

    register(platform.api(), name)  # answered or not: the process dies right after publishing

    identity = platform.process("identity")
    eventually(lambda: identity.poll() is not None, message="identity killed by its failpoint")
    platform.restart("identity")
    platform.wait_ready()
    published = platform.sql("identity", "SELECT published_at FROM identity_outbox WHERE body LIKE :body",
                             body=f'%"name":"{name}"%')
    assert len(published) == 1 and published[0][0] is not None  # republished after the restart
    settle(platform, unique)
    assert len(records(platform.admin(), "user_registered", name=name)) == 1


def test_events_wait_while_audit_is_down(platform, unique):
    platform.supervisor.kill("audit")
    names = [f"q{i}{unique}" for i in range(5)]
    for name in names:
        assert register(platform.api(), name).status_code == 201
    platform.restart("audit")
    platform.wait_ready()
    admin = platform.admin()
    for name in names:
        assert len(audit_of(admin, name, "user_registered")) == 1


def test_duplicate_deliveries_change_state_once(platform, unique):
    """The same event id delivered twice: audit stores it once, rbac acts on it once."""
    user_id = str(uuid.uuid4())
    event = Event(type="identity.user_created", source="identity", category="users", actor=Actor(username="system"),
                  resource=Resource("user", user_id, f"dup{unique}"), data={"first_admin": True})
    body = json.dumps(event.to_dict())
    publish(platform, "identity.events", event.type, body)
    publish(platform, "identity.events", event.type, body)
    settle(platform, unique)
    admin = platform.admin()
    assert len(records(admin, "user_created", resource_id=user_id)) == 1
    assert len(records(admin, "role_assigned", resource_id=user_id)) == 1


def take_parked(platform, tag):
    """Waits for the message carrying `tag` in audit.record.dead and removes it."""
    with Connection(platform.env["GATEHOUSE_AMQP_URI"]) as conn:
        channel = conn.channel()

        def parked():
            message = channel.basic_get("audit.record.dead", no_ack=False)
            if message is None:
                return None
            body = message.body if isinstance(message.body, str) else message.body.decode(errors="replace")
            if tag in body:
                channel.basic_ack(message.delivery_tag)
                return message
            channel.basic_reject(message.delivery_tag, requeue=True)
            return None

        return eventually(parked, message=f"message {tag} in audit.record.dead")


@pytest.mark.parametrize("body", [
    '{{"not": "an event", "tag": "{tag}"}}',  # valid JSON, not an envelope: the handler refuses it
    '{{not json at all {tag}',  # cannot even be decoded: kombu would ack and drop it by default
])
def test_poison_message_is_parked_not_dropped(platform, unique, body):
    publish(platform, "identity.events", "identity.garbage", body.format(tag=unique))
    message = take_parked(platform, unique)
    [death] = message.properties["application_headers"]["x-death"]
    assert death["queue"] == "audit.record" and death["reason"] == "rejected"
    settle(platform, unique)  # audit goes on recording after the poison


def test_an_event_no_queue_would_receive_stays_in_the_outbox(platform, tmp_path):
    """mandatory publishing: the broker refuses what it cannot route, the row stays pending."""
    metadata = sa.MetaData()
    kernel_tables(metadata, "orphan")  # no consumer is bound to orphan.events
    db = ServiceDatabase("orphan", f"sqlite:///{tmp_path / 'orphan.db'}", metadata)
    metadata.create_all(db.engine)
    with db.unit_of_work() as uow:
        uow.emit(Event(type="orphan.happened", source="orphan", category="system",
                       actor=Actor(), resource=Resource("thing")))
        uow.commit()
    publisher = AmqpPublisher(platform.env["GATEHOUSE_AMQP_URI"])
    with pytest.raises(Exception, match="NO_ROUTE|312"):
        OutboxRelay(db, publisher).relay_once()
    publisher.close()
    assert db.outbox_backlog() == 1
    db.dispose()


def test_sigterm_stops_a_service_gracefully(platform, unique):
    platform.supervisor.kill("rbac", signal.SIGTERM)
    assert platform.process("rbac").returncode == 0
    platform.restart("rbac")
    platform.wait_ready()
