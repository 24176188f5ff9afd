"""The broker goes away and comes back, unannounced: every service and the gateway stay up
(no process exits), and the platform works again by itself (issue 20: identity and
proxmox_sync used to exit on the dropped connection)."""
from __future__ import annotations

import signal
import threading
import time

import pytest

from ops.broker import LocalRabbit, free_port
from ops.supervisor import stop_group
from tests.harness import Platform, eventually, register
from tests.integration.test_slice import audit_of

pytestmark = pytest.mark.timeout(600)
DOWN_FOR = 10


@pytest.fixture
def own_broker_platform(tmp_path):
    broker = LocalRabbit(tmp_path / "rabbit", free_port()).start()
    running = Platform(tmp_path / "platform", broker.amqp_uri)
    try:
        running.start()
        yield running, broker
    finally:
        running.stop()
        broker.stop()


def test_every_process_survives_a_broker_restart_and_work_resumes(own_broker_platform, unique):
    platform, broker = own_broker_platform
    assert register(platform.api(), f"bd{unique}").status_code == 201
    audit_of(platform.admin(), f"bd{unique}", "user_registered")
    stop = threading.Event()

    def load():  # requests in flight while the broker dies: RPCs, outbox publishes, event deliveries
        count = 0
        while not stop.is_set():
            count += 1
            try:
                register(platform.api(), f"bl{unique}{count}")
                platform.admin()
            except Exception:  # noqa: BLE001 - refused or reset while the broker is away
                time.sleep(0.1)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(2)
    stop_group(broker.process, signal.SIGKILL)  # unannounced: no clean close of any connection
    time.sleep(DOWN_FOR)  # long enough for every client's first reconnection attempts to fail
    broker.start()
    time.sleep(2)
    stop.set()
    for worker in workers:
        worker.join(30)
    def back() -> bool:
        return register(platform.api(), f"ba{unique}").status_code == 201
    eventually(back, timeout=120, interval=2, message="registration works again after the broker restart")
    audit_of(platform.admin(), f"ba{unique}", "user_registered")  # events flow end to end again
    dead = {name: process.poll() for name, process in platform.supervisor.children.items() if process.poll() is not None}
    assert dead == {}, f"processes exited: {dead}\n{platform.logs_tail(40)}"
