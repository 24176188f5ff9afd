"""The run command's supervisor: each child restarts on its own schedule, never waiting for
another, with a delay that grows with deaths in a row and resets after a healthy period."""
from __future__ import annotations

import pytest

from ops import supervisor as supervision
from ops.supervisor import HEALTHY_AFTER, Supervisor, restart_delay


class FakeProcess:
    next_pid = 1000

    def __init__(self, *args, **kwargs):
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid
        self.returncode = None

    def poll(self):
        return self.returncode

    def die(self):
        self.returncode = -9


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def watched(tmp_path, monkeypatch, clock):
    monkeypatch.setattr(supervision.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(supervision.time, "sleep", lambda seconds: pytest.fail("the supervisor must not sleep"))
    watcher = Supervisor(env={}, log_dir=tmp_path, restart=True, clock=clock)
    watcher.start_all()
    return watcher


def test_restart_delay_doubles_up_to_a_ceiling():
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_children_that_die_together_restart_together(watched, clock):
    first = {key: process.pid for key, process in watched.children.items()}
    for key in ("identity", "rbac", "gateway"):
        watched.children[key].die()
    assert watched.watch_once() == []  # noticed; restart due in FIRST_RESTART_DELAY
    clock.now += restart_delay(1)
    assert sorted(watched.watch_once()) == ["gateway", "identity", "rbac"]
    assert all(watched.children[key].pid != first[key] for key in ("identity", "rbac", "gateway"))
    assert watched.children["audit"].pid == first["audit"]


def test_a_child_that_keeps_dying_backs_off_without_delaying_the_others(watched, clock):
    delays = []
    for _ in range(5):
        watched.children["identity"].die()
        watched.watch_once()
        started = clock.now
        while "identity" not in watched.watch_once():
            clock.now += 0.25
        delays.append(clock.now - started)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    # meanwhile another child dies once: its restart comes after the first step, not identity's
    watched.children["rbac"].die()
    watched.watch_once()
    clock.now += restart_delay(1)
    assert watched.watch_once() == ["rbac"]


def test_the_delay_resets_after_a_healthy_period(watched, clock):
    for _ in range(4):
        watched.children["tenancy"].die()
        watched.watch_once()
        clock.now += 20
        watched.watch_once()
    clock.now += HEALTHY_AFTER  # up and well for a while
    watched.watch_once()
    watched.children["tenancy"].die()
    watched.watch_once()
    clock.now += restart_delay(1)
    assert watched.watch_once() == ["tenancy"]


def test_without_restart_nothing_is_started(tmp_path, monkeypatch, clock):
    monkeypatch.setattr(supervision.subprocess, "Popen", FakeProcess)
    watcher = Supervisor(env={}, log_dir=tmp_path, restart=False, clock=clock)
    watcher.start_all()
    watcher.children["audit"].die()
    clock.now += 100
    assert watcher.watch_once() == []
