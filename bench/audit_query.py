"""The audit query figure: first-page latency of services/audit/queries.py over a seeded store.

`seed` fills a scratch audit SQLite database (migrated to head, so the search index and
its triggers are there) with what storage.append would store, in big transactions: a
valid chain (storage.chained, run by the process that makes the records, while this one
inserts the previous batch with the columns' own SQLAlchemy conversions but without the
per-row statement building), the tenant index and the FTS index as the service builds
them (tests/unit/test_bench_seed.py compares both ways row by row). The records mimic a
real trail: a few event types dominate, a large "default" tenant and a long tail of
small ones, some records in two tenants or in none, 20,000 actors, a year of times.
`measure` times queries.read_page (what the list_events RPC runs, serialization
included) for several filter shapes, each with parameters drawn anew per call.
"""
from __future__ import annotations

import multiprocessing
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


from bench.figures import FIRST_NAMES, LAST_NAMES, row
from bench.load import percentile

ACTORS = 20_000
TENANTS = 100
SEED_BATCH = 20_000
# (type, category, outcome, weight, resource type): roughly what a busy Gatehouse records.
EVENT_MIX = (
    ("identity.login_succeeded", "auth", "success", 30, "user"),
    ("identity.login_failed", "auth", "failure", 6, "user"),
    ("identity.logout", "auth", "success", 10, "user"),
    ("identity.sessions_revoked", "auth", "success", 4, "user"),
    ("identity.user_updated", "users", "success", 5, "user"),
    ("identity.user_created", "users", "success", 2, "user"),
    ("identity.password_changed", "users", "success", 3, "user"),
    ("identity.invitation_sent", "users", "success", 2, "invitation"),
    ("rbac.role_assigned", "rbac", "success", 4, "user"),
    ("rbac.authorization_denied", "rbac", "failure", 3, "permission"),
    ("proxmox_sync.user_synced", "sync", "success", 25, "pve_user"),
    ("proxmox_sync.sync_failed", "sync", "failure", 1, "connection"),
    ("identity.settings_changed", "settings", "success", 1, "setting"),
    ("tenancy.tenant_switched", "tenancy", "success", 4, "tenant"),
)
SMALL_TENANT = "t-080"  # about 0.2% of the records


def tenant_name(i: int) -> str:
    return "default" if i == 0 else f"t-{i:03d}"


def actor(i: int) -> dict:
    rnd = random.Random(i)
    first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
    return {"actor_id": f"user-{i:06d}", "actor_username": f"{first[0]}{last}{i}",
            "actor_display_name": f"{first.title()} {last.title()}", "actor_email": f"{first}.{last}.{i}@example.org"}


def _tenants(rnd: random.Random) -> list[str]:
    draw = rnd.random()
    if draw < 0.03:
        return []  # platform-wide: super admins only
    # "default" 40%, then a long tail (Zipf-like) over TENANTS - 1 others.
    home = "default" if draw < 0.43 else tenant_name(min(TENANTS - 1, int(rnd.paretovariate(0.8))))
    if rnd.random() < 0.05:  # an event about a user who belongs to two tenants
        return sorted({home, tenant_name(rnd.randrange(1, TENANTS))})
    return [home]


class StoredRows:
    """The insert statements of audit records and their tenant rows on SQLite, and the rows
    as the driver takes them (each value through its column type's bind processor)."""

    def __init__(self):
        from sqlalchemy.dialects import sqlite

        from services.audit.storage import AuditRecord, AuditRecordTenant

        dialect = sqlite.dialect()
        self.tables = []
        for table in (AuditRecord.__table__, AuditRecordTenant.__table__):
            names = [column.name for column in table.columns]
            processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns]
            sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            self.tables.append((sql, names, processors))

    def rows(self, records: list[dict], tenants: list[dict]) -> list[tuple[str, list[tuple]]]:
        return [(sql, [tuple(process(row[name]) if process else row[name]
                             for name, process in zip(names, processors)) for row in rows])
                for (sql, names, processors), rows in zip(self.tables, (records, tenants))]


def _make_batches(count: int, queue) -> None:
    from services.audit.chain import GENESIS
    from services.audit.storage import chained

    stored, batch, head = StoredRows(), [], (0, GENESIS)  # a fresh store: the chain starts at genesis
    for i, record in enumerate(records(count), start=1):
        batch.append(record)
        if len(batch) == SEED_BATCH or i == count:
            records_, tenants, head = chained(batch, *head)
            queue.put((stored.rows(records_, tenants), head))
            batch = []
    queue.put(None)


def _batches_made_aside(count: int):
    """records(count) chained, in batches of SEED_BATCH as (statements, new head), made by
    another process while this one inserts the previous batch."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=3)
    maker = context.Process(target=_make_batches, args=(count, queue), daemon=True)
    maker.start()
    try:
        while (batch := queue.get(timeout=300)) is not None:
            yield batch
    finally:
        maker.kill()
        maker.join()


def records(count: int, seed: int = 11):
    """`count` rows for storage.append (as storage.record_from_event builds them), oldest first."""
    from kernel.envelope import Actor, Event, Resource
    from services.audit import storage

    rnd = random.Random(seed)
    weights = [mix[3] for mix in EVENT_MIX]
    actors = [actor(i) for i in range(ACTORS)]
    start = datetime.now(timezone.utc) - timedelta(days=365)
    step = timedelta(days=365) / count
    for i in range(count):
        type_, category, outcome, _, resource_type = rnd.choices(EVENT_MIX, weights)[0]
        who = actors[min(ACTORS - 1, int(rnd.paretovariate(1.1))) if rnd.random() < 0.3 else rnd.randrange(ACTORS)]
        subject = actors[rnd.randrange(ACTORS)] if resource_type == "user" else None
        resource = (Resource("user", subject["actor_id"], subject["actor_username"]) if subject
                    else Resource(resource_type, f"{resource_type}-{rnd.randrange(5000)}",
                                  f"{resource_type} {rnd.choice(LAST_NAMES)} {rnd.randrange(5000)}"))
        system = type_.startswith("proxmox_sync")
        event = Event(type=type_, source=type_.split(".")[0], category=category, outcome=outcome,
                      actor=Actor(username="system") if system else Actor(
                          user_id=who["actor_id"], username=who["actor_username"], ip=f"10.0.{i % 256}.{i % 199}",
                          request_id=f"req-{i:08d}", display_name=who["actor_display_name"], email=who["actor_email"]),
                      resource=resource, tenant_ids=tuple(_tenants(rnd)), data={"n": i, "note": "seeded"},
                      occurred_at=(start + step * i).isoformat(timespec="microseconds").replace("+00:00", "Z"))
        yield storage.record_from_event(event, start + step * i + timedelta(milliseconds=5))


def seed(url: str, count: int, say=print) -> tuple[float, float]:
    """A migrated audit database at `url` holding `count` records, indexed for search as the
    service's SearchIndexer does. Returns (records/s appended, records/s indexed)."""
    import sqlalchemy as sa

    from kernel import migrate
    from kernel.db import create_engine
    from services.audit import queries, storage

    migrate.upgrade("audit", url)
    engine = create_engine(url)
    try:
        started, done = time.perf_counter(), 0
        for statements, (head_seq, head_hash) in _batches_made_aside(count):
            with engine.begin() as conn:
                # A scratch database: no fsync, a big page cache (the unique event-id index is random).
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
                conn.exec_driver_sql("PRAGMA cache_size=-262144")
                for sql, rows in statements:
                    if rows:
                        conn.exec_driver_sql(sql, rows)
                conn.execute(sa.update(storage.ChainHead).where(storage.ChainHead.id == 1)
                             .values(seq=head_seq, hash=head_hash))
            done = head_seq
            if done % 200_000 == 0:
                say(f"seeded {done:,} audit records ({done / (time.perf_counter() - started):,.0f}/s)")
        appended = count / (time.perf_counter() - started)
        started, indexed = time.perf_counter(), 0
        while True:
            with engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
                done = queries.index_search(conn, 5000)
            if not done:
                break
            indexed += done
        indexing = indexed / (time.perf_counter() - started) if indexed else 0.0
        say(f"search index built ({indexing:,.0f} records/s)")
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return appended, indexing


# Filter shapes: (filters, whose view, filters(rnd)): a super admin reads every tenant; a
# tenant admin reads the default tenant (40% of the records) or a small one (0.2%).
def _actor_id(rnd):
    return actor(rnd.randrange(ACTORS))["actor_id"]


def _username(rnd):
    return actor(rnd.randrange(ACTORS))["actor_username"]


def _window(rnd, days: int):
    end = datetime.now(timezone.utc) - timedelta(days=rnd.randrange(days, 360))
    return {"since": (end - timedelta(days=days)).isoformat(), "until": end.isoformat()}


READERS = {"*": "super admin", "default": "default tenant, 40%", SMALL_TENANT: "small tenant, 0.2%"}
SHAPES = (
    ("no filter", "*", lambda rnd: {}),
    ("no filter", "default", lambda rnd: {}),
    ("no filter", SMALL_TENANT, lambda rnd: {}),
    ("category", "*", lambda rnd: {"category": rnd.choice(("users", "rbac", "settings"))}),
    ("category", "default", lambda rnd: {"category": rnd.choice(("users", "rbac", "settings"))}),
    ("category", SMALL_TENANT, lambda rnd: {"category": rnd.choice(("users", "settings"))}),
    ("actor_id", "*", lambda rnd: {"actor_id": _actor_id(rnd)}),
    ("actor (username)", "default", lambda rnd: {"actor": _username(rnd)}),
    ("resource type + id", "*", lambda rnd: {"resource_type": "user", "resource_id": _actor_id(rnd)}),
    ("resource id", "default", lambda rnd: {"resource_id": _actor_id(rnd)}),
    ("outcome failure", "default", lambda rnd: {"outcome": "failure"}),
    ("q common word", "*", lambda rnd: {"q": rnd.choice(("login", "user", "sync"))}),
    ("q rare (a username)", "*", lambda rnd: {"q": _username(rnd)}),
    ("q name part", "default", lambda rnd: {"q": rnd.choice(LAST_NAMES) + str(rnd.randrange(100))}),
    ("q common", SMALL_TENANT, lambda rnd: {"q": rnd.choice(("login", "hopper", "sync"))}),
    ("q name + category", "default", lambda rnd: {"q": rnd.choice(LAST_NAMES), "category": "users"}),
    ("q of 2 characters (no trigram: a scan)", "*", lambda rnd: {"q": rnd.choice(("lo", "ad", "sy"))}),
    ("time window of 1 day", "*", lambda rnd: _window(rnd, 1)),
    ("time window of 30 days + category", "default", lambda rnd: {**_window(rnd, 30), "category": "rbac"}),
)


def measure(url: str, calls: int, say=print) -> list[dict]:
    """p50/p95/p99 of `calls` first pages (limit 50) per shape; returns one stats dict per shape."""
    from kernel.db import ServiceDatabase
    from services.audit import queries, storage

    db = ServiceDatabase("audit", url, storage.metadata)
    rnd = random.Random(5)
    results = []
    try:
        for name, scope, filters in SHAPES:
            timings, sizes = [], []
            for i in range(calls + 3):  # 3 warm-up calls
                criteria = queries.criteria(scope, filters(rnd))
                began = time.perf_counter()
                with db.unit_of_work() as uow:
                    page = queries.read_page(uow.session, criteria, None, 50)
                if i >= 3:
                    timings.append(time.perf_counter() - began)
                    sizes.append(len(page["items"]))
            stats = {"shape": name, "reader": READERS[scope], "calls": calls,
                     "mean_items": sum(sizes) / len(sizes),
                     **{f"p{p}_ms": percentile(timings, p) * 1000 for p in (50, 95, 99)}}
            say("{shape:42} {reader:20} p50 {p50_ms:7.1f}  p95 {p95_ms:7.1f}  p99 {p99_ms:7.1f} ms  ({mean_items:.0f} items)"
                .format(**stats))
            results.append(stats)
    finally:
        db.dispose()
    return results


def audit_query(workdir: Path, args, say=print) -> list[dict]:
    """The bench phase: seed args.audit_records, measure every shape; one row per shape and the worst."""
    path = workdir / "audit-query.db"
    url = f"sqlite:///{path}"
    say(f"seeding {args.audit_records:,} audit records into {path}")
    appended, indexing = seed(url, args.audit_records, say)
    results = measure(url, args.audit_query_calls, say)
    rows = [row(f"Audit first page (50) at {args.audit_records:,} records: {r['shape']} ({r['reader']})",
                f"p95 {r['p95_ms']:.1f} ms (p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms, "
                f"{r['mean_items']:.0f} items)", goal="p95 < 50 ms", met=r["p95_ms"] < 50, **r)
            for r in results]
    worst = max(results, key=lambda r: r["p95_ms"])
    rows.append(row(f"Audit first-page query p95 at {args.audit_records:,} records, worst of {len(results)} "
                    f"filter shapes ({worst['shape']}, {worst['reader']})", f"p95 {worst['p95_ms']:.1f} ms",
                    f"seeded (chained as storage.append does) at {appended:,.0f} records/s, search index built at "
                    f"{indexing:,.0f}/s; database {path.stat().st_size / 2**20:,.0f} MiB",
                    goal="p95 < 50 ms", met=worst["p95_ms"] < 50, seed_per_second=appended,
                    index_per_second=indexing, db_bytes=path.stat().st_size))
    return rows
