"""One function per figure. Each measures the product and its primitive in the same run
and returns table rows: figure, value, primitive, ratio, goal, met (+ raw numbers)."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

NA = "—"


def row(figure, value, primitive=NA, ratio=None, goal="", met=None, **numbers) -> dict:
    return {"figure": figure, "value": value, "primitive": primitive,
            "ratio": NA if ratio is None else f"{ratio:.2f}", "goal": goal,
            "met": "n.a." if met is None else ("yes" if met else "no"), "numbers": numbers}


def fmt(number: float) -> str:
    return f"{number:,.0f}" if number >= 100 else f"{number:,.1f}"


def latencies(stats: dict) -> str:
    if not stats["count"]:
        return "no answers"
    return "p50 {p50_ms:.0f} / p95 {p95_ms:.0f} / p99 {p99_ms:.0f} ms".format(**stats)


def run_load(mode: str, *args: str, timeout: float) -> dict:
    """Runs bench.load in its own process; returns its JSON result."""
    result = subprocess.run([sys.executable, "-m", "bench.load", mode, *args], capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"bench.load {mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _load_window(args) -> list[str]:
    return ["--threads", str(args.threads), "--duration", str(args.duration), "--warmup", str(args.warmup)]


def _errors_note(stats: dict) -> str:
    return f"; {stats['errors']} errors ({stats['first_error']})" if stats["errors"] else ""


# 1. Password logins through the gateway vs argon2id verify on every core

def _verify_for(args) -> tuple[int, float, float]:
    from services.identity.domain import HASHER

    password_hash, seconds = args
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        HASHER.verify(password_hash, "bench-password-1")
        count += 1
    return count, time.perf_counter() - started, time.process_time() - cpu_started


def _plain_signals() -> None:
    """Pool workers: the parent handles Ctrl-C, and SIGTERM (how the pool ends them) just ends them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def argon2_verify_rate(seconds: float, processes: int) -> tuple[float, float]:
    """Raw argon2id verifications per second, one process per core, same HASHER parameters; and
    the CPU seconds one verification takes (what it costs whatever else shares the cores)."""
    from services.identity.domain import HASHER

    password_hash = HASHER.hash("bench-password-1")
    with multiprocessing.get_context("fork").Pool(processes, initializer=_plain_signals) as pool:
        results = pool.map(_verify_for, [(password_hash, seconds)] * processes)
    verify_cpu = sum(cpu for _, _, cpu in results) / max(1, sum(count for count, _, _ in results))
    return sum(count / elapsed for count, elapsed, _ in results), verify_cpu


SERVICE_PROCESSES = ("gateway", "identity", "audit", "rbac", "tenancy", "proxmox_sync")


def _watched(platform, broker_pid: int | None) -> dict[str, int]:
    watched = {name: platform.process(name).pid for name in SERVICE_PROCESSES}
    if broker_pid:
        watched["RabbitMQ"] = broker_pid
    return watched


def password_logins(platform, admin: tuple[str, str], args, broker_pid: int | None = None) -> list[dict]:
    processes = os.cpu_count() or 1
    raw, verify_cpu = argon2_verify_rate(args.primitive_seconds, processes)
    body = json.dumps({"login": admin[0], "password": admin[1]})
    stats, cpu = run_load_watching_cpu(
        _watched(platform, broker_pid), args.warmup, "http", "--url", platform.url, "--method", "POST",
        "--path", "/api/v1/auth/login", "--body", body, *_load_window(args),
        timeout=args.duration + args.warmup + 120)
    ratio = stats["per_second"] / raw
    rows = [row(f"Password logins/s, POST /api/v1/auth/login, {args.threads} clients",
                f"{fmt(stats['per_second'])}/s ({latencies(stats)}){_errors_note(stats)}",
                f"{fmt(raw)} raw argon2id verify/s, {processes} processes", ratio, "ratio ≥ 0.8", ratio >= 0.8,
                login=stats, argon2_verify_per_second=raw, argon2_verify_cpu_seconds=verify_cpu)]
    if stats["count"]:
        per_login = _cpu_ms_per_request(cpu, stats)
        # the rest of identity's work (RPC, throttle, session, outbox); the hash itself is counted apart
        per_login["identity besides argon2"] = per_login.pop("identity") - verify_cpu * 1000
        rows.append(_cpu_row("Login CPU per sign-in (what bounds it)", per_login, {"argon2id": verify_cpu * 1000},
                             "argon2 alone"))
    return rows


def _cpu_ms_per_request(cpu: dict[str, float], stats: dict) -> dict[str, float]:
    """CPU milliseconds per answered request, each watched process and the load generator."""
    per_request = {name: seconds / stats["count"] * 1000 for name, seconds in cpu.items()}
    per_request["load generator"] = stats["cpu_seconds"] / stats["count"] * 1000
    return per_request


def _cpu_row(figure: str, per_request: dict[str, float], primitive: dict[str, float], primitive_name: str) -> dict:
    """Where the cores go per request, and the rate they allow: measured CPU time, so it holds
    even when other work on the machine slows every throughput down. `primitive` is the
    part of the request the figure compares against (counted apart, first)."""
    cores = os.cpu_count() or 1
    total = sum(primitive.values()) + sum(per_request.values())
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in (*primitive.items(), *sorted(
        per_request.items(), key=lambda item: -item[1])))
    alone = sum(primitive.values())
    bound = f"{cores} cores allow ≤ {fmt(cores / total * 1000)}/s"
    if alone > 0:
        bound += f", {primitive_name} {fmt(cores / alone * 1000)}/s (ratio ≤ {alone / total:.2f})"
    return row(figure, f"{parts} = {total:.2f} ms CPU: {bound}", goal="report only",
               cpu_ms_per_request=per_request, primitive_cpu_ms=primitive)


def run_load_watching_cpu(watched: dict[str, int], warmup: float, mode: str, *args: str,
                          timeout: float) -> tuple[dict, dict[str, float]]:
    """run_load, and the CPU seconds each watched process (with its children) spent from the end
    of the warm-up until the load ended."""
    from bench.ingest import cpu_seconds

    result: dict = {}
    loader = threading.Thread(target=lambda: result.update(run_load(mode, *args, timeout=timeout)))
    loader.start()
    time.sleep(warmup)
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    loader.join()
    if not result:
        raise RuntimeError(f"bench.load {mode} gave no result")
    return result, {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}


# 2. Token-authenticated requests vs bare RPC through the same pool

def authenticated_requests(platform, token: str, args, broker_pid: int | None = None) -> list[dict]:
    watched = _watched(platform, broker_pid)
    rpc, rpc_cpu = run_load_watching_cpu(
        watched, args.warmup, "rpc", "--amqp", platform.env["GATEHOUSE_AMQP_URI"], "--service", "identity",
        "--method", "health", *_load_window(args), timeout=args.duration + args.warmup + 120)
    stats, cpu = run_load_watching_cpu(
        watched, args.warmup, "http", "--url", platform.url, "--path", "/api/v1/users?limit=20",
        "--header", f"Authorization: Bearer {token}", *_load_window(args), timeout=args.duration + args.warmup + 120)
    rows = [row(f"GET /api/v1/users?limit=20 req/s (token + admin.users check + list), {args.threads} clients",
                f"{fmt(stats['per_second'])}/s ({latencies(stats)}){_errors_note(stats)}",
                f"{fmt(rpc['per_second'])} bare RPC/s, identity.health via RpcPool, {args.threads} threads "
                f"({latencies(rpc)}){_errors_note(rpc)}",
                stats["per_second"] / rpc["per_second"] if rpc["per_second"] else None,
                "≥ 1,000 req/s", stats["per_second"] >= 1000, me=stats, rpc=rpc)]
    if rpc["count"]:
        rows.append(_cpu_row("Bare RPC CPU per call (identity.health)", _cpu_ms_per_request(rpc_cpu, rpc), {}, ""))
    if stats["count"]:
        rows.append(_cpu_row("List CPU per request (what bounds it)", _cpu_ms_per_request(cpu, stats), {}, ""))
    return rows


def authorization_decisions(platform, token: str, args) -> list[dict]:
    """A route's permission check: answered from the gateway's session cache (events
    invalidate it), else by rbac over RPC. Both are timed; the goal is for the decision.
    The primitive is a bare RPC to the same rbac process (health: one indexed count), the
    floor of any answer over RPC."""
    from gateway.session_cache import SessionCache

    from bench.load import percentile

    me = platform.api().signed_in({"access_token": token}).get("/api/v1/me").json()

    def one_client(method: str, *call_args) -> dict:
        return run_load("rpc", "--amqp", platform.env["GATEHOUSE_AMQP_URI"], "--service", "rbac",
                        "--method", method, "--args", json.dumps(call_args),
                        "--threads", "1", "--duration", str(args.duration), "--warmup", "1",
                        timeout=args.duration + 120)

    cold = one_client("authorize", me["id"], "admin.users", "default")
    bare = one_client("health")
    cache = SessionCache()
    cache.connected()
    cache.authorized(me["id"], "admin.users", "default", lambda *key: True)
    hits = []
    for _ in range(20000):
        started = time.perf_counter()
        cache.authorized(me["id"], "admin.users", "default", lambda *key: True)
        hits.append((time.perf_counter() - started) * 1000)
    hit_p95 = percentile(hits, 95)
    return [row("Authorization decision p95: cached at the gateway / uncached (rbac.authorize RPC), 1 client",
                f"cached p95 {hit_p95 * 1000:.1f} µs; uncached p95 {cold['p95_ms'] or 0:.2f} ms "
                f"(p50 {cold['p50_ms'] or 0:.2f} / p99 {cold['p99_ms'] or 0:.2f} ms){_errors_note(cold)}",
                f"bare RPC rbac.health, 1 client: p95 {bare['p95_ms'] or 0:.2f} ms "
                f"(p50 {bare['p50_ms'] or 0:.2f} / p99 {bare['p99_ms'] or 0:.2f} ms){_errors_note(bare)}",
                cold["p95_ms"] / bare["p95_ms"] if cold["p95_ms"] and bare["p95_ms"] else None,
                goal="p95 < 2 ms", met=(cold["p95_ms"] or float("inf")) < 2 and not cold["errors"],
                cached_ms=[percentile(hits, 50), hit_p95, percentile(hits, 99)], uncached=cold, rpc=bare)]


# 2b. The user list at 100k users, and suspension reaching the gateway

FIRST_NAMES = ("ada alan barbara brian carla dennis edsger frances grace guido hedy ivan james joan ken "
               "linus lynn margaret niklaus olga peter radia rich ruth sophie tim ursula vint whitfield yukihiro").split()
LAST_NAMES = ("lovelace turing liskov kernighan ritchie dijkstra allen hopper rossum lamarr sutherland gosling "
              "clarke thompson torvalds conway hamilton wirth perlman pike stallman wilson wilkes berners "
              "martin cerf diffie matsumoto knuth backus").split()


def seed_users(identity_db: Path, count: int) -> None:
    """`count` users straight into identity's tables (registering 100k through argon2 would take an hour)."""
    import random

    rnd = random.Random(7)
    db = sqlite3.connect(identity_db)
    now = datetime.now(timezone.utc)
    statuses = ("active",) * 8 + ("pending", "suspended")
    roles = ("viewer",) * 6 + ("operator",) * 3 + ("admin",)
    users, user_roles = [], []
    for i in range(count):
        first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
        username, email = f"{first[0]}{last}{i}", f"{first}.{last}.{i}@example.org"
        user_id = f"bench-{i:08d}"
        created = now.replace(microsecond=0).timestamp() - rnd.randrange(86400 * 700)
        login = None if rnd.random() < 0.2 else created + rnd.randrange(86400 * 30)
        fmt_time = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
        users.append((user_id, username, email, first.title(), last.title(), "Bench Corp", rnd.choice(statuses),
                      200000 + i, None, 0, 0, 0, 0, f"{username} {first} {last} {email}", 1,
                      fmt_time(created), None, login and fmt_time(login)))
        user_roles.append((user_id, "default", rnd.choice(roles), "2026-01-01T00:00:00Z"))
    memberships = [(user_id, "default", 1, 1, 1, "2026-01-01T00:00:00Z") for user_id, *_ in users]
    with db:
        db.executemany(
            "INSERT INTO identity_users (id, username, email, first_name, last_name, company, status, uid_number, "
            "password_hash, must_change_password, is_first_admin, totp_enrolled, totp_required, search_text, "
            "version, created_at, updated_at, last_login_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", users)
        db.executemany("INSERT INTO identity_user_roles (user_id, tenant_id, role, as_of) VALUES (?,?,?,?)",
                       user_roles)
        # The user list shows a tenant's members only (identity's read model of tenancy's memberships).
        db.executemany("INSERT INTO identity_memberships (user_id, tenant_id, member, is_default, confirmed, as_of) "
                       "VALUES (?,?,?,?,?,?)", memberships)
    db.execute("ANALYZE")
    db.close()


# What an administrator's user list asks for: search, filters, every kind of sort key.
USER_LIST_SHAPES = (
    {"q": "hopper", "sort": "name", "order": "asc"},
    {"q": "grace.lovelace", "sort": "last_login_at", "order": "desc"},
    {"status": "active", "sort": "created_at", "order": "desc"},
    {"role": "operator", "sort": "email", "order": "asc"},
    {"q": "ritchie", "status": "active", "sort": "username", "order": "desc"},
    {"sort": "role", "order": "asc"},
)
USER_LIST_PAGE = 50
DEEP_PAGE = 21  # 1,000 rows in: what keyset cursors keep as cheap as the first


def user_list(platform, token: str, args) -> list[dict]:
    from urllib.parse import urlencode

    db_path = platform.base_dir / "data" / "identity.db"
    seed_users(db_path, args.users)
    queries = [f"/api/v1/users?{urlencode({**shape, 'limit': USER_LIST_PAGE})}" for shape in USER_LIST_SHAPES]
    auth = f"Authorization: Bearer {token}"
    window = ("--header", auth, "--threads", "1", "--duration", str(args.duration), "--warmup", "2")
    stats = run_load("http", "--url", platform.url, *(a for q in queries for a in ("--path", q)), *window,
                     timeout=args.duration + 120)
    # The floor under every list request: HTTP, the token and permission checks, one identity RPC.
    floor = run_load("http", "--url", platform.url, "--path", "/api/v1/me", *window, timeout=args.duration + 120)
    p95 = stats["p95_ms"] or float("inf")
    rows = [row(f"GET /api/v1/users search+filter+sort+page (+total) at {args.users:,} users, 1 client, "
                f"{len(queries)} query shapes",
                f"p95 {p95:.1f} ms (p50 {stats['p50_ms'] or 0:.1f} / p99 {stats['p99_ms'] or 0:.1f} ms, "
                f"{fmt(stats['per_second'])}/s){_errors_note(stats)}",
                f"GET /api/v1/me p95 {floor['p95_ms'] or 0:.1f} ms (p50 {floor['p50_ms'] or 0:.1f} ms), 1 client"
                f"{_errors_note(floor)}",
                goal="p95 < 25 ms", met=p95 < 25 and not stats["errors"], list=stats, floor=floor)]
    return rows + user_list_queries(db_path, args.users)


def user_list_queries(db_path: Path, users: int, calls: int = 40) -> list[dict]:
    """Each shape timed at the query level (storage.list_users and the page's rendering, what the
    list_users RPC runs) on the seeded database: its first page, and its page DEEP_PAGE reached
    through next_cursor."""
    from bench.load import percentile
    from kernel.db import ServiceDatabase
    from services.identity import storage

    db = ServiceDatabase("identity", f"sqlite:///{db_path}", storage.metadata)

    def page(shape: dict, cursor: str | None) -> tuple[float, storage.UserPage]:
        started = time.perf_counter()
        with db.sessions() as session:
            found = storage.list_users(session, "default", limit=USER_LIST_PAGE, cursor=cursor, **shape)
            storage.admin_users(session, found.rows)
        return (time.perf_counter() - started) * 1000, found

    rows = []
    try:
        for shape in USER_LIST_SHAPES:
            deep = None  # the cursor of page DEEP_PAGE, if the list is that long
            for _ in range(DEEP_PAGE - 1):
                deep = page(shape, deep)[1].next_cursor
                if deep is None:
                    break
            first = [page(shape, None)[0] for _ in range(calls)]
            later = [page(shape, deep)[0] for _ in range(calls)] if deep else []
            found = page(shape, None)[1]
            matches = f"{found.total:,}{'' if found.total_exact else '+'} matches"
            deep_note = (f"; page {DEEP_PAGE}: p95 {percentile(later, 95):.1f} ms (p50 {percentile(later, 50):.1f})"
                         if later else "")
            rows.append(row(f"User list query at {users:,} users: {', '.join(f'{k}={v}' for k, v in shape.items())}",
                            f"p95 {percentile(first, 95):.1f} ms (p50 {percentile(first, 50):.1f} ms, {matches})"
                            f"{deep_note}", goal="report only", first_ms=first, deep_ms=later))
    finally:
        db.dispose()
    return rows


def suspension_to_refusal(platform, args, targets=None) -> list[dict]:
    """Suspend a signed-in user; how long until the gateway refuses their existing token, and
    (with `targets`, a bench.sync.SuspensionTargets) until LDAP refuses their bind and Proxmox VE
    shows their user disabled.

    Pollers start before the suspension: GET /api/v1/me with the token on fresh connections (so
    both gateway workers answer), LDAP binds with the password, GET of the Proxmox user; the clock
    starts when the PATCH is sent.
    """
    import requests

    from bench.load import percentile

    admin = platform.admin()
    delays: dict[str, list[float]] = {"token": [], "ldap": [], "pve": []}
    for i in range(args.suspensions):
        username = f"suspend{i}x{os.getpid()}"
        created = admin.post("/api/v1/users", json={"username": username, "email": f"{username}@example.org",
                                                    "first_name": "Sus", "last_name": "Pended"})
        if created.status_code != 201:
            raise RuntimeError(f"create user: {created.status_code} {created.text[:200]}")
        user, password = created.json(), created.json()["password"]
        token = platform.api().login(username, password).token
        checks = {"token": lambda: requests.get(platform.url + "/api/v1/me", timeout=10, headers={
            "Authorization": f"Bearer {token}", "Connection": "close"}).status_code == 401}
        if targets is not None:
            _until(lambda: targets.ldap_binds(username, password) and targets.pve_enabled(username), 30,
                   f"{username} propagated")
            checks["ldap"] = lambda: not targets.ldap_binds(username, password)
            checks["pve"] = lambda: targets.pve_enabled(username) is False
        refused_at: dict[str, float] = {}
        stop = threading.Event()

        def poll(name, refused):
            while not stop.is_set():
                if refused():
                    refused_at[name] = time.monotonic()
                    return
                time.sleep(0.003)

        pollers = [threading.Thread(target=poll, args=item, daemon=True) for item in checks.items()]
        for poller in pollers:
            poller.start()
        time.sleep(0.05)
        sent = time.monotonic()
        answer = admin.patch(f"/api/v1/users/{user['user']['id']}", json={"status": "suspended"})
        if answer.status_code != 200:
            stop.set()
            raise RuntimeError(f"suspend: {answer.status_code} {answer.text[:200]}")
        for poller in pollers:
            poller.join(10)
        stop.set()
        for name in checks:
            delays[name].append(refused_at[name] - sent if name in refused_at else float("inf"))
    what = {"token": "existing access token refused at the gateway", "ldap": "LDAP bind refused (slapd)",
            "pve": "Proxmox VE user disabled (stand-in)"}
    rows = []
    for name, found in delays.items():
        if found:
            p50, p99 = percentile(found, 50), percentile(found, 99)
            rows.append(row(f"Suspend → {what[name]}, {len(found)} users", f"p99 {p99 * 1000:.0f} ms (p50 "
                            f"{p50 * 1000:.0f} ms)", goal="p99 < 1 s", met=p99 < 1.0, delays_s=found))
    return rows


def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


# 3. Audit ingest: bench/ingest.py


# 4. Peak RSS per process, sampled during every load phase

class RssSampler(threading.Thread):
    """Peak resident memory of each named process tree (a gunicorn master with its workers counts as one)."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.targets: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self._halt = threading.Event()

    def watch(self, name: str, pid: int) -> None:
        self.targets[name] = pid

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            for name, pid in list(self.targets.items()):
                try:
                    parent = psutil.Process(pid)
                    rss = sum(p.memory_info().rss for p in (parent, *parent.children(recursive=True)))
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def stop(self) -> None:
        self._halt.set()


def peak_rss(sampler: RssSampler) -> list[dict]:
    return [row(f"Peak RSS: {name}", f"{peak / 2**20:,.0f} MiB", goal="report only", rss_bytes=peak)
            for name, peak in sampler.peaks.items()]
