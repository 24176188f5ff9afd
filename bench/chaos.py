"""Throughput while processes are killed: the supervisor's restarts against an undisturbed run.

A Gatehouse of its own runs under a restarting supervisor (as `gatehouse up` does). Clients
sign up users (a write through the gateway, identity, its outbox, and the events every other
service follows) in a closed loop: first undisturbed, then while one process (a service or
the gateway, chosen at random) is killed with SIGKILL every `--chaos-interval` seconds. The
figure is the ratio of answered sign-ups per minute with kills to without (goal ≥ 0.5).
"""
from __future__ import annotations

import http.client
import json
import random
import signal
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from bench.figures import fmt, row
from bench.load import closed_loop
from ops.supervisor import PROCESSES
from tests.harness import Platform

PASSWORD = "Correct-Horse-9-Battery"


def _signups(platform: Platform):
    """Each call registers a new user: distinct names per thread and call."""
    def make_call():
        prefix = uuid.uuid4().hex[:8]
        count = [0]

        def call():
            count[0] += 1
            name = f"c{prefix}{count[0]}"
            body = json.dumps({"username": name, "first_name": "Chaos", "last_name": "Monkey",
                               "email": f"{name}@example.com", "password": PASSWORD})
            _post(platform.url, body)

        return call
    return make_call


def _post(url: str, body: str) -> None:
    """One sign-up on a connection of its own: a killed gateway leaves no stale keep-alive behind."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", "/api/v1/auth/register", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if response.status != 201:
        raise RuntimeError(f"HTTP {response.status}")


class Monkey:
    """Kills one process at random every `interval` seconds while the supervisor restarts them."""

    def __init__(self, platform: Platform, interval: float, seed: int = 7):
        self.platform, self.interval, self.random = platform, interval, random.Random(seed)
        self.kills: list[str] = []
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.killer = threading.Thread(target=self._kill, daemon=True)

    def _watch(self):
        while not self.stopping.is_set():
            self.platform.supervisor.watch_once()
            time.sleep(0.2)

    def _kill(self):
        while not self.stopping.wait(self.interval):
            name = self.random.choice(PROCESSES)
            process = self.platform.supervisor.children.get(name)
            if process is not None and process.poll() is None:
                try:
                    self.platform.supervisor.kill(name, signal.SIGKILL)
                    self.kills.append(name)
                except (ProcessLookupError, OSError):
                    pass

    def start(self, killing: bool):
        self.watcher.start()
        if killing:
            self.killer.start()

    def stop(self):
        self.stopping.set()
        for thread in (self.killer, self.watcher):
            if thread.is_alive():
                thread.join(5)


def _signups_while(platform: Platform, args, killing: bool, warmup: float) -> tuple[dict, Monkey]:
    """Sign-ups for --chaos-seconds with the supervisor restarting what dies; with `killing`,
    a SIGKILL every --chaos-interval seconds. The load's stats, and the monkey (its kills)."""
    monkey = Monkey(platform, args.chaos_interval)
    monkey.start(killing)
    try:
        return closed_loop(args.chaos_threads, args.chaos_seconds, warmup, _signups(platform)), monkey
    finally:
        monkey.stop()


def chaos(workdir: Path, amqp_uri: str, args, say) -> list[dict]:
    platform = Platform(workdir / "chaos", amqp_uri)
    platform.supervisor.restart = True
    try:
        platform.start()
        say(f"chaos: {args.chaos_seconds:.0f} s undisturbed")
        undisturbed, _ = _signups_while(platform, args, killing=False, warmup=args.warmup)
        say(f"chaos: {args.chaos_seconds:.0f} s with a SIGKILL every {args.chaos_interval} s")
        disturbed, monkey = _signups_while(platform, args, killing=True, warmup=0)
    finally:
        platform.stop()
    per_minute = {name: stats["count"] / args.chaos_seconds * 60 for name, stats in
                  (("undisturbed", undisturbed), ("disturbed", disturbed))}
    ratio = per_minute["disturbed"] / per_minute["undisturbed"] if per_minute["undisturbed"] else 0.0
    kills = ", ".join(f"{name} {monkey.kills.count(name)}" for name in PROCESSES if monkey.kills.count(name))
    return [row(f"Sign-ups/min with a SIGKILL every {args.chaos_interval} s ({len(monkey.kills)} kills: {kills}), "
                f"{args.chaos_threads} clients",
                f"{fmt(per_minute['disturbed'])}/min ({disturbed['errors']} refused or failed)",
                f"{fmt(per_minute['undisturbed'])}/min undisturbed", ratio, "ratio ≥ 0.5", ratio >= 0.5,
                undisturbed=undisturbed, disturbed=disturbed, kills=monkey.kills)]
