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
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from contracts.events import proxmox_sync as sync_events
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


# --- finding records: which stream of candidates to walk ---------------------------------
#
# A first page is cheap when the query walks, newest first, a stream of candidates in
# which matches are dense, checking the other conditions on each. The streams: the
# search index (q), the tenant index, the (column, seq) index of an exact filter, or every
# record. SQLite's planner cannot tell a tenant holding 40% of the trail from one holding
# 0.2%, nor a common word from a rare one (it keeps no per-value statistics), so on
# SQLite `find` counts each candidate stream up to COUNT_CAP within the seq window and
# walks the smallest. PostgreSQL keeps such statistics: it gets one plain query.

COUNT_CAP = 10_000
FEW = 2_000  # a stream this small is walked without counting the others (a few ms at most)
# How far recorded_at may run out of seq order (a record stamped, then appended a little
# later, e.g. by another instance): time filters become seq windows this much wider, which
# the walk then narrows exactly.
DISORDER = timedelta(minutes=5)
# The (column, seq) index of each exact filter; resource_type has (type, id, seq).
INDEXES = {"category": "ix_audit_records_category_seq", "action": "ix_audit_records_action_seq",
           "actor_id": "ix_audit_records_actor_seq", "actor": "ix_audit_records_actor_username_seq",
           "resource_id": "ix_audit_records_resource_id_seq"}
RESOURCE_INDEX = "ix_audit_records_resource_seq"
records_table = AuditRecord.__table__


@dataclass(frozen=True)
class Stream:
    """Candidates to walk newest first: `table` (joined to the records by `source`) rows
    meeting `condition`, which stands in for the criteria named in `covers`."""

    covers: tuple[str, ...]
    table: sa.FromClause
    seq: sa.ColumnElement
    condition: sa.ColumnElement
    source: sa.FromClause = records_table
    index: str | None = None  # SQLite: the audit_records index to walk (INDEXED BY)
    ordered: bool = True  # False: the index does not give seq order (a sort follows)


EVERY_RECORD = Stream((), records_table, AuditRecord.seq, sa.true())


def _conditions(criteria: Criteria) -> dict:
    """Each criterion as a condition on one record (a probe), by name."""
    conditions = {name: EXACT[name][0] == value for name, value in criteria.exact}
    if criteria.tenant is not None:
        conditions["tenant"] = sa.exists().where(AuditRecordTenant.tenant_id == criteria.tenant,
                                                 AuditRecordTenant.seq == AuditRecord.seq)
    if criteria.text is not None:
        conditions["q"] = _like(criteria.text)
    if criteria.since:
        conditions["since"] = AuditRecord.recorded_at >= criteria.since
    if criteria.until:
        conditions["until"] = AuditRecord.recorded_at < criteria.until
    return conditions


def _streams(criteria: Criteria, searchable: bool) -> list[Stream]:
    """The streams that could drive the walk; `searchable`: the search index may answer q."""
    exact = dict(criteria.exact)
    streams = []
    if searchable:
        streams.append(Stream(("q",), search_index, search_index.c.rowid, _match(criteria.text),
                              sa.join(search_index, records_table, AuditRecord.seq == search_index.c.rowid)))
    streams += [Stream((name,), records_table, AuditRecord.seq, EXACT[name][0] == exact[name], index=index)
                for name, index in INDEXES.items()
                if name in exact and not (name == "resource_id" and "resource_type" in exact)]
    if "resource_type" in exact:
        names = ("resource_type", "resource_id") if "resource_id" in exact else ("resource_type",)
        streams.append(Stream(names, records_table, AuditRecord.seq,
                              sa.and_(*(EXACT[name][0] == exact[name] for name in names)),
                              index=RESOURCE_INDEX, ordered=len(names) == 2))
    if criteria.tenant is not None:
        streams.append(Stream(("tenant",), AuditRecordTenant.__table__, AuditRecordTenant.seq,
                              AuditRecordTenant.tenant_id == criteria.tenant,
                              sa.join(AuditRecordTenant, records_table, AuditRecord.seq == AuditRecordTenant.seq)))
    return streams


def _within(query, stream: Stream, low: int, high: int | None):
    """Bound a query on the stream's seq (low < seq < high) and walk the stream's index."""
    if low:
        query = query.where(stream.seq > low)
    if high is not None:
        query = query.where(stream.seq < high)
    if stream.index:
        query = query.with_hint(AuditRecord, f"INDEXED BY {stream.index}", "sqlite")
    return query


def _count(session: Session, stream: Stream, low: int, high: int | None) -> int:
    """How many candidates the stream holds in the window, up to COUNT_CAP."""
    query = _within(sa.select(stream.seq).select_from(stream.table).where(stream.condition), stream, low, high)
    return session.scalar(sa.select(sa.func.count()).select_from(query.limit(COUNT_CAP).subquery()))


def _choose(session: Session, streams: list[Stream], low: int, high: int | None) -> Stream:
    """The stream to walk: a small one if there is (walked whole, it costs a few ms at
    most), else the search index (it yields only records holding the text), else the
    smallest. Counting the search index would cost as much as walking it: it is not counted."""
    search = [stream for stream in streams if stream.covers == ("q",)]
    others = [stream for stream in streams if stream.covers != ("q",)]
    if search and not others:
        return search[0]
    if len(others) == 1 and others[0].ordered and not search:
        return others[0]
    counted = []
    for stream in others:
        count = _count(session, stream, low, high)
        if count < FEW:
            return stream
        counted.append((count, stream))
    if search:
        return search[0]
    usable = [(count, rank, stream) for rank, (count, stream) in enumerate(counted)
              if stream.ordered or count < COUNT_CAP]
    return min(usable, key=lambda entry: entry[:2])[2] if usable else EVERY_RECORD


def _walk(session: Session, criteria: Criteria, low: int, high: int | None, limit: int,
          searchable: bool) -> list[sa.Row]:
    """Up to `limit` matches with low < seq < high, newest first."""
    if high is not None and high <= low + 1:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    stream = _choose(session, _streams(criteria, searchable), low, high) if sqlite else EVERY_RECORD
    others = [condition for name, condition in _conditions(criteria).items() if name not in stream.covers]
    # Rows, not ORM objects: a page is read, never changed, and loading objects costs more than the query.
    query = sa.select(records_table).select_from(stream.source).where(stream.condition, *others)
    return list(session.execute(_within(query, stream, low, high).order_by(stream.seq.desc()).limit(limit)))


def _window(session: Session, criteria: Criteria, before: int | None) -> tuple[int, int | None]:
    """The seq window (low < seq < high) that holds every record of the time filters."""
    low, high = 0, before
    if criteria.since:
        earlier = session.scalar(sa.select(AuditRecord.seq).where(AuditRecord.recorded_at < criteria.since - DISORDER)
                                 .order_by(AuditRecord.recorded_at.desc()).limit(1))
        low = earlier or 0
    if criteria.until:
        later = session.scalar(sa.select(AuditRecord.seq).where(AuditRecord.recorded_at >= criteria.until + DISORDER)
                               .order_by(AuditRecord.recorded_at).limit(1))
        if later is not None:
            high = later if high is None else min(high, later)
    return low, high


def _like(text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return AuditRecord.search_text.like(f"%{escaped}%", escape="\\")


def _match(text: str):
    """An FTS5 phrase: with the trigram tokenizer, a substring match."""
    return sa.literal_column("audit_search").op("MATCH")('"' + text.replace('"', '""') + '"')


def indexed_up_to(session: Session) -> int:
    """The highest seq the SQLite search index holds (it is filled in seq order)."""
    return session.scalar(sa.select(sa.func.max(search_index.c.rowid))) or 0


def find(session: Session, criteria: Criteria, before: int | None, limit: int) -> list[sa.Row]:
    """Up to `limit` records matching, newest first, below seq `before` when given."""
    low, high = _window(session, criteria, before)
    text = criteria.text
    if text is None or len(text) < TRIGRAM or session.get_bind().dialect.name != "sqlite":
        return _walk(session, criteria, low, high, limit, searchable=False)
    # The records the search index does not hold yet (the newest, few) by a scan; then the index.
    indexed = indexed_up_to(session)
    found = _walk(session, criteria, max(low, indexed), high, limit, searchable=False)
    if len(found) < limit:
        below = indexed + 1 if high is None else min(high, indexed + 1)
        found += _walk(session, criteria, low, below, limit - len(found), searchable=True)
    return found


def read_page(session: Session, criteria: Criteria, cursor: str | None, limit: int,
              shown_tenant: str | None = None) -> dict:
    """One page: {"items": public records, "next_cursor": keyset cursor or None}. A reader
    confined to `shown_tenant` sees only that tenant among a record's tenant_ids: an event
    about a user of several tenants must not name the others."""
    limit = max(1, min(int(limit), MAX_PAGE))
    records = find(session, criteria, keyset_of(cursor), limit + 1)
    items = [public_record(record, shown_tenant) for record in records[:limit]]
    return {"items": items, "next_cursor": encode_keyset_cursor(items[-1]["seq"]) if len(records) > limit else None}


def public_record(record, shown_tenant: str | None = None) -> dict:
    """An audit record (a row or an AuditRecord) as the API shows it (see read_page for shown_tenant)."""
    return {
        "id": record.event_id, "seq": record.seq, "type": record.type, "source": record.source,
        "category": record.category, "action": record.action, "outcome": record.outcome,
        "occurred_at": record.occurred_at, "recorded_at": _iso(record.recorded_at),
        "actor": {"user_id": record.actor_id, "username": record.actor_username,
                  "display_name": record.actor_display_name, "email": record.actor_email, "ip": record.actor_ip},
        "request_id": record.request_id, "tenant_ids": [shown_tenant] if shown_tenant else record.tenant_ids,
        "resource": {"type": record.resource_type, "id": record.resource_id, "name": record.resource_name},
        "data": record.data if not shown_tenant else tenant_view_data(record.type, record.data,
                                                                      set(record.tenant_ids) - {shown_tenant}),
    }


# --- what a tenant's view of a record leaves out -------------------------------------------
#
# A record is in a tenant's view when its tenant index holds that tenant; it may be about
# others too (a user switching from T1 to T2, a connection reassigned between them, a sync of
# T1's cluster that mirrored every tenant's groups). The tenant's reader sees none of the
# others: their ids are replaced wherever they appear in the data, and sync samples (names of
# users, groups and roles of a cluster or directory) keep only what was done to what kind of
# object; parked subjects lose their names (NAMED_FIELDS). Super admins (EVERY_TENANT) see records as stored.

ANOTHER_TENANT = "(another tenant)"
SAMPLED_TYPES = (sync_events.TARGET_SYNCED,)  # its payload (TargetSynced) describes changes in SAMPLES
SAMPLES = sync_events.SAMPLES
# A parked (or unparked) subject names a user or group of a cluster or directory that may be
# another tenant's or a super admin's (mirrored into every tenant's cluster): the tenant's view
# keeps the event, its target and its error code, not the name, the label or the target's message.
NAMED_FIELDS = {sync_events.SUBJECT_PARKED: ("subject", "label", "error_message"),
                sync_events.SUBJECT_UNPARKED: ("subject", "label")}


def tenant_view_data(record_type: str, data, other_tenants: set[str]):
    """`data` of a record of `record_type` as a reader of one tenant sees it (see above)."""
    if record_type in SAMPLED_TYPES and isinstance(data, dict):
        data = {key: [_kind_only(entry) for entry in value] if key in SAMPLES and isinstance(value, list) else value
                for key, value in data.items()}
    if record_type in NAMED_FIELDS and isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in NAMED_FIELDS[record_type]}
    return _without(data, other_tenants) if other_tenants else data


def _kind_only(entry):
    return {key: entry[key] for key in ("op", "kind") if key in entry} if isinstance(entry, dict) else None


def _without(value, other_tenants: set[str]):
    """`value` with every mention of the tenant ids `other_tenants` (as a value, a key or inside text) replaced."""
    if isinstance(value, dict):
        return {_without(key, other_tenants): _without(item, other_tenants) for key, item in value.items()}
    if isinstance(value, list):
        return [_without(item, other_tenants) for item in value]
    if isinstance(value, str):
        for tenant_id in other_tenants:
            if tenant_id and tenant_id in value:
                value = value.replace(tenant_id, ANOTHER_TENANT)
        return value
    return value


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
    a search scans: 20-80 ms at 20,000 on a busy 2-core machine); when recording pauses it
    catches up fully. The index work (50-150 us a record, in the service's one thread)
    thus waits out ingest bursts of up to TAIL records (the ingest figure's 20,000).
    """

    TAIL = 20_000
    batch = SEARCH_BATCH
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
            with db.engine.connect() as conn:
                # The write lock first (as the appender does): another process's commit between
                # our read and our write would otherwise fail the batch instead of waiting.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                done = index_search(conn, self.batch)
                conn.commit()
            if not done:
                break
            indexed += done
            time.sleep(0)  # let the service's other green threads (recording) run between batches
        return indexed
