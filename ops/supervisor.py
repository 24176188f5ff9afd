"""Starts, watches and stops the processes of one Gatehouse: five services and the gateway."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kernel import SERVICES

PROCESSES = (*SERVICES, "gateway")
# A child that dies is started again after a delay that doubles with each death in a row
# (so a process that cannot start does not spin) and returns to the first step once the
# child has stayed up for HEALTHY_AFTER seconds. Each child has its own schedule: one
# crashing service never delays another's restart.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 10.0
HEALTHY_AFTER = 30.0


def restart_delay(deaths_in_a_row: int) -> float:
    """Seconds before starting a child that died `deaths_in_a_row` times without a healthy period."""
    return min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** max(0, deaths_in_a_row - 1))


@dataclass
class _Child:
    """What the supervisor remembers of one child between looks."""

    started_at: float
    deaths_in_a_row: int = 0
    restart_at: float | None = None  # set while dead and waiting for its restart


def stop_group(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signals a process group started with start_new_session; SIGKILL if it outlives the timeout."""
    if not process or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def metrics_port(base: int, name: str, instance: int = 0) -> int:
    """The metrics port of one service process on a host running several: consecutive ports from
    `base` in SERVICES order, then the same again for each further instance (0: none)."""
    if not base or name not in SERVICES:
        return 0
    return base + instance * len(SERVICES) + SERVICES.index(name)


@dataclass
class Supervisor:
    env: dict
    log_dir: Path
    restart: bool = False  # the run command restarts what dies; tests decide themselves
    children: dict = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _state: dict = field(default_factory=dict)  # key -> _Child

    def start(self, name: str, extra_env: dict | None = None, instance: int = 0) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        key = name if instance == 0 else f"{name}#{instance}"
        log = open(self.log_dir / f"{key.replace('#', '-')}.log", "ab")
        env = {**self.env, **(extra_env or {})}
        if "GATEHOUSE_METRICS_PORT" not in (extra_env or {}):  # each process its own port
            env["GATEHOUSE_METRICS_PORT"] = str(metrics_port(int(env.get("GATEHOUSE_METRICS_PORT") or 0), name, instance))
        process = subprocess.Popen(
            [sys.executable, "-m", "ops.serve", name],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child has its own copy; a restart must not leak one descriptor more
        self.children[key] = process
        known = self._state.get(key)
        self._state[key] = _Child(self.clock(), known.deaths_in_a_row if known else 0)
        return process

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        process = self.children[key]
        os.killpg(process.pid, sig)
        process.wait(30)

    def watch_once(self) -> list[str]:
        """Restarts the children whose restart time has come (run command); never waits.
        Returns the keys started in this look."""
        if not self.restart:
            return []
        now, restarted = self.clock(), []
        for key, process in list(self.children.items()):
            child = self._state[key]
            if process.poll() is None:
                continue
            if child.restart_at is None:  # a death just noticed
                if now - child.started_at >= HEALTHY_AFTER:
                    child.deaths_in_a_row = 0  # it was up long enough: a quick restart again
                child.deaths_in_a_row += 1
                child.restart_at = now + restart_delay(child.deaths_in_a_row)
            if now >= child.restart_at:
                name, _, instance = key.partition("#")
                self.start(name, instance=int(instance or 0))
                restarted.append(key)
        return restarted

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM lets services finish in-flight work and flush their outbox."""
        for process in self.children.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.children.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children.clear()
