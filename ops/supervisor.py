"""Starts, watches and stops the processes of one Gatehouse: five services and the gateway."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel import SERVICES

PROCESSES = (*SERVICES, "gateway")


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
    _restarts: dict = field(default_factory=dict)

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
        self.children[key] = process
        return process

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        process = self.children[key]
        os.killpg(process.pid, sig)
        process.wait(30)

    def watch_once(self) -> list[str]:
        """Restart children that died (run command); returns the keys restarted."""
        restarted = []
        for key, process in list(self.children.items()):
            if process.poll() is not None and self.restart:
                count = self._restarts.get(key, 0) + 1
                self._restarts[key] = count
                time.sleep(min(count, 5))
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
