"""The benchmark command: `python -m bench` (or `make bench`).

Starts an isolated Gatehouse (its own RabbitMQ on a free port, its own temporary data
folder), measures every figure that can be measured today against a primitive measured
in the same run, and prints one table (text, then Markdown for the README). The same
table goes to bench/results/latest.json. Everything it started is stopped on exit,
Ctrl-C or failure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import kernel  # noqa: F401  (filters eventlet's import warning)
from bench import audit_query, chaos as chaos_figures, figures, ingest as ingest_figures, sync as sync_figures
from ops.broker import LocalRabbit, free_port
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, Platform

COLUMNS = ("figure", "value", "primitive", "ratio", "goal", "met")
RESULTS = Path(__file__).with_name("results") / "latest.json"
INGEST_VHOST = "bench-ingest"
PHASES = ("logins", "list", "authz", "suspend", "users", "ingest", "ldap-sync", "chaos", "audit-query")
CHAOS_VHOST = "bench-chaos"
SYNC_VHOST = "bench-sync"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients of the HTTP and RPC loads")
    parser.add_argument("--duration", type=float, default=15, help="seconds measured per HTTP/RPC load")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before measuring")
    parser.add_argument("--primitive-seconds", type=float, default=8, help="seconds of raw argon2id verifying")
    parser.add_argument("--events", type=int, default=50000, help="events published for the audit ingest")
    # Above the 5,000/s goal: a rate measured under an offer of exactly the goal is at most the goal.
    parser.add_argument("--ingest-rate", type=float, default=6000,
                        help="events/s offered to audit during the ingest (0: as fast as the publisher goes)")
    parser.add_argument("--steady-rate", type=float, default=1000,
                        help="events/s offered for ten seconds to measure the ingest lag without a backlog")
    parser.add_argument("--users", type=int, default=100_000, help="users seeded for the user list figure")
    parser.add_argument("--suspensions", type=int, default=20, help="users suspended for the revocation figure")
    parser.add_argument("--ldap-users", type=int, default=10_000, help="people seeded for the full LDAP sync figure")
    parser.add_argument("--audit-records", type=int, default=1_000_000,
                        help="records seeded for the audit query figure (a scratch database, no platform)")
    parser.add_argument("--audit-query-calls", type=int, default=200, help="first pages timed per audit query shape")
    parser.add_argument("--only", nargs="+", choices=PHASES, default=PHASES,
                        help="figures to measure (always run in this order)")
    parser.add_argument("--chaos-seconds", type=float, default=60, help="seconds of sign-ups, undisturbed then with kills")
    parser.add_argument("--chaos-interval", type=float, default=3.5, help="seconds between two SIGKILLs in the chaos run")
    parser.add_argument("--chaos-threads", type=int, default=4, help="concurrent sign-up clients of the chaos run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for_consumer(amqp_uri: str, queue: str, timeout: float = 60) -> None:
    from kombu import Connection

    deadline = time.monotonic() + timeout
    with Connection(amqp_uri, connect_timeout=10) as conn:
        while conn.default_channel.queue_declare(queue=queue, passive=True).consumer_count < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consumer on {queue} after {timeout}s")
            time.sleep(0.3)


def measure(args, workdir: Path, cleanup: list) -> list[dict]:
    rows = []
    if "audit-query" in args.only:  # first, on a quiet machine: it needs no platform
        rows += _phase("audit-query", lambda: audit_query.audit_query(workdir, args, say))
    if not set(args.only) - {"audit-query"}:
        return rows
    say(f"starting RabbitMQ and Gatehouse under {workdir}")
    rabbit = LocalRabbit(workdir / "rabbit", free_port()).start()
    cleanup.append(rabbit.stop)
    gatehouse = Platform(workdir / "platform", rabbit.amqp_uri)
    cleanup.append(gatehouse.stop)
    gatehouse.start()
    sampler = figures.RssSampler()
    for name, process in gatehouse.supervisor.children.items():
        sampler.watch(name if name != "gateway" else "gateway (gunicorn master + workers)", process.pid)
    sampler.start()
    cleanup.append(sampler.stop)

    # The ingest runs on its own vhost with its own audit process and database, so its
    # backlog cannot slow the other figures down (nor their events mix with its count).
    ingest = None
    if "ingest" in args.only:
        ingest = Platform(workdir / "ingest", rabbit.add_vhost(INGEST_VHOST))
        cleanup.append(ingest.stop)
        ingest.gatehouse("migrate", "audit")
        ingest.gatehouse("setup-broker")
        sampler.watch("audit (ingest vhost)", ingest.supervisor.start("audit").pid)
        wait_for_consumer(ingest.env["GATEHOUSE_AMQP_URI"], "audit.record")

    # The LDAP sync runs on a Gatehouse of its own too: its 10k seeded people stay out of the
    # other figures (and the main platform's 100k seeded users out of its directory).
    def ldap_sync():
        synced = Platform(workdir / "sync", rabbit.add_vhost(SYNC_VHOST))
        cleanup.append(synced.stop)
        synced.start()
        try:
            return sync_figures.ldap_sync(synced, workdir, args)
        finally:
            synced.stop()

    def suspend():
        targets = sync_figures.SuspensionTargets(gatehouse, workdir)
        cleanup.append(targets.stop)
        return figures.suspension_to_refusal(gatehouse, args, targets)

    phases = {
        "logins": lambda: figures.password_logins(gatehouse, (ADMIN_USERNAME, ADMIN_PASSWORD), args,
                                                  rabbit.process.pid),
        "list": lambda: figures.authenticated_requests(gatehouse, gatehouse.admin().token, args,  # fresh: TTL 15 min
                                                       rabbit.process.pid),
        "authz": lambda: figures.authorization_decisions(gatehouse, gatehouse.admin().token, args),
        "suspend": suspend,
        # after the others: 100k seeded users would slow the authorized-list figure's total count
        "users": lambda: figures.user_list(gatehouse, gatehouse.admin().token, args),
        "ingest": lambda: ingest_figures.audit_ingest(ingest, rabbit.process.pid, args),
        "ldap-sync": ldap_sync,
        # last: its own Gatehouse, whose processes it kills
        "chaos": lambda: chaos_figures.chaos(workdir, rabbit.add_vhost(CHAOS_VHOST), args, say),
    }
    for name in (p for p in PHASES if p in args.only and p in phases):
        rows += _phase(name, phases[name])
    sampler.stop()
    return rows + [{**r, "phase": "rss"} for r in figures.peak_rss(sampler)]


def _phase(name: str, run) -> list[dict]:
    say(f"measuring {name}")
    try:
        rows = run()
    except Exception as error:  # one broken figure still leaves the others measured
        traceback.print_exc()
        rows = [figures.row(f"{name} (failed)", f"failed: {type(error).__name__}: {error}"[:200], met=False)]
    return [{**r, "phase": name} for r in rows]


def merged_with_earlier(rows: list[dict], measured: set[str]) -> list[dict]:
    """A run of some phases (--only) replaces their rows in the last results and keeps the others'."""
    if not RESULTS.exists():
        return rows
    earlier = json.loads(RESULTS.read_text()).get("rows", [])
    kept = [r for r in earlier if r.get("phase") and r["phase"] not in measured]
    return kept + rows


def text_table(rows: list[dict]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS), "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c].replace("|", "\\|") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started, load_before = time.monotonic(), os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    cleanup: list = []

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        rows = measure(args, workdir, cleanup)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception:  # keep stopping the rest
                traceback.print_exc()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    rows = merged_with_earlier(rows, set(args.only) | ({"rss"} if set(args.only) - {"audit-query"} else set()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_seconds": round(elapsed, 1),
        "machine": {"cpus": os.cpu_count(), "python": host.python_version(), "system": host.platform(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "settings": vars(args) | {"only": list(args.only)},
        "columns": list(COLUMNS), "rows": rows,
    }, indent=2, ensure_ascii=False) + "\n")
    print(text_table(rows))
    print(f"\nRun time {elapsed:.0f} s on {os.cpu_count()} cores (1-min load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after: other work on the machine skews every figure); JSON in {RESULTS}")
    print("\nMarkdown (for README.md):\n")
    print(markdown_table(rows))
    return 1 if any(r["value"].startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
