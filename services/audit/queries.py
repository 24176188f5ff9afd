"""Reading the audit trail: filters, free-text search, tenant scoping, keyset pages.

- Order: newest first by `seq` (the append order). A page's cursor names the last seq it
  showed, so records appended while someone pages never shift or repeat a page.
- Scope: every read names whose view it is: a tenant id (the record's tenant index must
  hold it) or EVERY_TENANT (super admins). Records about no tenant (platform settings,
  sign-ins of unknown names) are in the super admins' view only. The caller (the
  gateway) decides the scope from the session; a `tenant` filter is only accepted
  within EVERY_TENANT.
- Time: `since` (inclusive) and `until` (exclusive) filter on `recorded_at`, when audit
  stored the record: indexed, and follows seq order, unlike `occurred_at` (the
  sender's clock, late for events that waited in an outbox).
- Free text `q`: case-insensitive substring of `search_text` (actor username, display
  name and email, resource name, action). On SQLite an FTS5 trigram index
  (`audit_search`, see the search migration) answers it, filled behind the appender by
  `index_search`; the few records above its highest rowid are matched by a scan, so
  results are exact at every moment. On PostgreSQL a pg_trgm index serves the LIKE.
  Fewer than 3 characters cannot use trigrams: such a `q` scans until the page is full.
- No total: counting a million matches costs more than the page; lists answer
  {"items", "next_cursor"} only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from kernel import EVERY_TENANT
from kernel.db import aware
from kernel.envelope import OUTCOMES
from kernel.errors import Forbidden, ValidationFailed
from kernel.paging import encode_keyset_cursor, keyset_of
from kernel.service import Periodic
from services.audit.storage import AuditRecord, AuditRecordTenant

MAX_PAGE = 1000  # per call; the HTTP list stops at 200, the export reads pages of this size
MAX_TEXT = 128
TRIGRAM = 3

# filter -> the column it must equal, and the longest value that column holds
EXACT = {
    "category": (AuditRecord.category, 32),
    "action": (AuditRecord.action, 128),
    "actor_id": (AuditRecord.actor_id, 36),
    "actor": (AuditRecord.actor_username, 128),
    "resource_type": (AuditRecord.resource_type, 64),
    "resource_id": (AuditRecord.resource_id, 64),
    "outcome": (AuditRecord.outcome, 16),
}
FILTERS = (*EXACT, "tenant", "since", "until", "q")

# The SQLite trigram index (contentless: rowid = seq); see the search migration.
search_index = sa.table("audit_search", sa.column("rowid", sa.Integer), sa.column("search_text", sa.Text))
SEARCH_BATCH = 500  # ~25-50 ms of SQLite write lock each


@dataclass(frozen=True)
class Criteria:
    """What a reader may see and asked for, validated."""

    tenant: str | None  # None: every tenant
    exact: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # lower-cased


def criteria(scope: str, filters: dict | None = None) -> Criteria:
    """Validate `filters` (FILTERS; None values ignored) for a reader of `scope`.

    422 naming every bad filter; 403 naming `tenant` when a tenant-scoped reader asks
    for another tenant's view (only EVERY_TENANT readers choose a tenant)."""
    if not isinstance(scope, str) or not scope:
        raise ValidationFailed("The audit scope is missing.", details={"scope": "a tenant id or EVERY_TENANT"})
    filters = {name: value for name, value in (filters or {}).items() if value is not None}
    problems = {name: "is not a filter" for name in filters if name not in FILTERS}
    exact = []
    for name, (_, longest) in EXACT.items():
        if name in filters:
            value = filters[name]
            if not isinstance(value, str) or not 0 < len(value) <= longest:
                problems[name] = f"must be text of 1 to {longest} characters"
            elif name == "outcome" and value not in OUTCOMES:
                problems[name] = f"must be one of {', '.join(sorted(OUTCOMES))}"
            else:
                exact.append((name, value))
    since, until = (_time(filters, name, problems) for name in ("since", "until"))
    if since and until and since >= until:
        problems["until"] = "must be later than since"
    text = filters.get("q")
    if text is not None:
        text = text.strip().lower() if isinstance(text, str) else None
        if not text or len(text) > MAX_TEXT:
            problems["q"] = f"must be text of 1 to {MAX_TEXT} characters"
    tenant = filters.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not 0 < len(tenant) <= 36):
        problems["tenant"] = "must be a tenant id"
    if problems:
        raise ValidationFailed("Invalid audit filters.", details=problems)
    if scope != EVERY_TENANT:
        if tenant is not None:
            raise Forbidden("Only super admins may choose the tenant of the audit view.", code="permission_denied",
                            details={"tenant": "only super admins may filter by tenant"})
        tenant = scope
    return Criteria(tenant=tenant, exact=tuple(exact), since=since, until=until, text=text or None)


def _time(filters: dict, name: str, problems: dict) -> datetime | None:
    """An ISO-8601 time as aware UTC; one without an offset is taken as UTC."""
    value = filters.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        problems[name] = "must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z"
        return None
    return aware(moment).astimezone(timezone.utc)


def _matching(criteria: Criteria) -> list:
    """WHERE clauses of everything but the free text."""
    clauses = [EXACT[name][0] == value for name, value in criteria.exact]
    if criteria.tenant is not None:
        # EXISTS on the tenant index's primary key (tenant_id, seq): the planner may walk
        # it newest first for a tenant alone, or probe it per candidate of another filter.
        clauses.append(sa.exists().where(AuditRecordTenant.tenant_id == criteria.tenant,
                                         AuditRecordTenant.seq == AuditRecord.seq))
    if criteria.since:
        clauses.append(AuditRecord.recorded_at >= criteria.since)
    if criteria.until:
        clauses.append(AuditRecord.recorded_at < criteria.until)
    return clauses


def _like(text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return AuditRecord.search_text.like(f"%{escaped}%", escape="\\")


def _phrase(text: str) -> str:
    """An FTS5 string literal: with the trigram tokenizer, a substring match."""
    return '"' + text.replace('"', '""') + '"'


def indexed_up_to(session: Session) -> int:
    """The highest seq the SQLite search index holds (it is filled in seq order)."""
    return session.scalar(sa.select(sa.func.max(search_index.c.rowid))) or 0


def _select(clauses: list, before: int | None, limit: int):
    if before is not None:
        clauses = [*clauses, AuditRecord.seq < before]
    return sa.select(AuditRecord).where(*clauses).order_by(AuditRecord.seq.desc()).limit(limit)


def find(session: Session, criteria: Criteria, before: int | None, limit: int) -> list[AuditRecord]:
    """Up to `limit` records matching, newest first, below seq `before` when given."""
    clauses = _matching(criteria)
    text = criteria.text
    if text is None:
        return list(session.scalars(_select(clauses, before, limit)))
    if len(text) < TRIGRAM or session.get_bind().dialect.name != "sqlite":
        return list(session.scalars(_select([*clauses, _like(text)], before, limit)))
    # SQLite: records the index does not hold yet by a scan (few, and the newest), then the index.
    indexed = indexed_up_to(session)
    found = list(session.scalars(_select([*clauses, AuditRecord.seq > indexed, _like(text)], before, limit)))
    if len(found) < limit:
        in_index = AuditRecord.seq.in_(sa.select(search_index.c.rowid).where(
            sa.literal_column("audit_search").op("MATCH")(_phrase(text))))
        below = indexed + 1 if before is None else min(before, indexed + 1)
        found += session.scalars(_select([*clauses, in_index], below, limit - len(found)))
    return found


def read_page(session: Session, criteria: Criteria, cursor: str | None, limit: int) -> dict:
    """One page: {"items": public records, "next_cursor": keyset cursor or None}."""
    limit = max(1, min(int(limit), MAX_PAGE))
    records = find(session, criteria, keyset_of(cursor), limit + 1)
    items = [public_record(record) for record in records[:limit]]
    return {"items": items, "next_cursor": encode_keyset_cursor(items[-1]["seq"]) if len(records) > limit else None}


def public_record(record: AuditRecord) -> dict:
    return {
        "id": record.event_id, "seq": record.seq, "type": record.type, "source": record.source,
        "category": record.category, "action": record.action, "outcome": record.outcome,
        "occurred_at": record.occurred_at, "recorded_at": _iso(record.recorded_at),
        "actor": {"user_id": record.actor_id, "username": record.actor_username,
                  "display_name": record.actor_display_name, "email": record.actor_email, "ip": record.actor_ip},
        "request_id": record.request_id, "tenant_ids": record.tenant_ids,
        "resource": {"type": record.resource_type, "id": record.resource_id, "name": record.resource_name},
        "data": record.data,
    }


def _iso(moment: datetime) -> str:
    """Like occurred_at: ISO-8601 UTC to the microsecond, with Z (a second is too coarse for a trail)."""
    return aware(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the SQLite search index, filled behind the appender ---------------------------

def index_search(conn: sa.Connection, batch: int = SEARCH_BATCH) -> int:
    """Index the next `batch` records the SQLite search index lacks; returns how many.

    One statement: it reads the index's position and extends it under SQLite's write
    lock, so two indexers on one database never index a record twice. No-op elsewhere.
    """
    if conn.dialect.name != "sqlite":
        return 0
    position = sa.select(sa.func.coalesce(sa.func.max(search_index.c.rowid), 0)).scalar_subquery()
    pending = (sa.select(AuditRecord.seq, AuditRecord.search_text).where(AuditRecord.seq > position)
               .order_by(AuditRecord.seq).limit(batch))
    return conn.execute(sa.insert(search_index).from_select(["rowid", "search_text"], pending)).rowcount


class SearchIndexer(Periodic):
    """Keeps the SQLite search index close behind the appender, giving way to recording.

    While records are arriving it indexes only what exceeds TAIL (the unindexed records
    a search scans: ~15 ms at 20,000); when recording pauses it catches up fully. The
    index work (~50-100 us a record) thus never competes with an ingest burst.
    """

    TAIL = 20_000
    interval = 1.0

    def setup(self):
        super().setup()
        self.last_head = None

    def run_once(self, db) -> int:
        if db.engine.dialect.name != "sqlite":
            self.stopping.set()  # PostgreSQL's trigram index needs no follower
            return 0
        with db.engine.connect() as conn:
            head = conn.scalar(sa.select(sa.func.max(AuditRecord.seq))) or 0
            behind = head - (conn.scalar(sa.select(sa.func.max(search_index.c.rowid))) or 0)
        busy, self.last_head = head != self.last_head, head
        keep = self.TAIL // 2 if busy and behind > self.TAIL else (self.TAIL if busy else 0)
        indexed = 0
        while behind - indexed > keep and not self.stopping.is_set():
            with db.engine.begin() as conn:
                done = index_search(conn)
            if not done:
                break
            indexed += done
            time.sleep(0)  # let the service's other green threads (recording) run between batches
        return indexed
