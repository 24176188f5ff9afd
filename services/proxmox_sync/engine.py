"""The sync engine: when each target converges, and how a run is recorded.

Events mark work (`storage.enqueue`): a user's entries in the directory, or a full reconcile of
a target. A run takes the target's lease (one instance at a time), reads the desired state from
the services that own it (`Sources`, over RPC), compares it with what the target holds, writes
the difference, and deletes the work it did. A target that fails keeps its work, which is tried
again later and later (`backoff`) until the target answers: nothing is lost while it is down.
Proxmox connections always converge by a full reconcile (a tenant's users are few; four reads);
the directory, shared by everyone, converges per user and reconciles in full periodically.

One subject's bad data never holds the others: a change the target refuses for that user's or
group's data (ldap_directory.SUBJECT_REFUSALS, a Proxmox VE HTTP 400) parks that subject alone
(storage.ParkedSubject, shown in the status, audited as proxmox_sync.subject_parked) and the run
goes on and succeeds for everyone else; the target is not failing and nothing waits behind it.
A parked subject is tried again whenever a run covers it: an event that marks it (its data
changed), a requested sync and every full reconcile; a run that covers it without a refusal
unparks it (proxmox_sync.subject_unparked). Only failures of the target itself (unreachable,
timeout, busy, a refused bind, no permission) keep the whole target's backoff. Within a run,
access goes first: the directory applies deletes and revocations (password removed or changed,
account expired, memberships dropped) before anything else, Proxmox VE ACL deletes first.
A change that ends access (ldap_plan.is_access_change, pve_plan.revokes) is never parked: the
target refusing it fails the run, so access cannot outlive a refusal of someone's data.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import eventlet

from kernel.db import aware
from kernel.envelope import utc_now
from kernel.errors import NotFound, TransientError
from services.proxmox_sync import events, ldap_directory, ldap_plan, pve, pve_plan, storage
from services.proxmox_sync.domain import (LDAP_TARGET, Access, CustomRole, Group, Person, connection_of,
                                          pve_target)
from services.proxmox_sync.ldap_plan import dn_key
from services.proxmox_sync.storage import FULL

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
PROGRESS_EVERY = 0.5  # seconds between progress writes of a long run
PAGE = 2000
CONNECTION_PAGE = 200
SOURCE_TIMEOUT = 30.0  # seconds an RPC to identity, rbac or tenancy may take
MAX_RUNS_PER_LEASE = 10  # then the lease goes back, so other instances get their turn


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4, ... up to a minute."""
    return float(min(60, 2 ** max(0, attempts - 1)))


def user_subject(user_id: str) -> str:
    return f"user:{user_id}"


class TargetFailure(Exception):
    """A run could not finish; `error` ({"code", "message"}) never holds a secret."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.error = {"code": code, "message": message}


@dataclass
class Outcome:
    changes: list[dict] = field(default_factory=list)  # describe() of each change made
    conflicts: list[dict] = field(default_factory=list)
    # The subjects whose change the target refused for their data: {"subject", "label", "error"}.
    refused: list[dict] = field(default_factory=list)


def group_subject(cn: str) -> str:
    return f"group:{cn}"


class Sources:
    """The desired state's inputs, read from identity, rbac and tenancy (a worker's RPC proxies).

    nameko's proxies wait for an answer for ever: a reply lost with a dying instance would hold
    the run, and its lease, until the process ends. Each call gets SOURCE_TIMEOUT instead.
    """

    def __init__(self, identity, rbac, tenancy):
        self.identity, self.rbac, self.tenancy = (_Bounded(proxy) for proxy in (identity, rbac, tenancy))

    def people(self, user_ids: list[str] | None = None, tenant_id: str | None = None) -> list[Person]:
        found, after = [], None
        while True:
            page = self.identity.directory_entries(user_ids=user_ids, tenant_id=tenant_id, after=after, limit=PAGE)
            found += [Person.from_dict(item) for item in page["items"]]
            after = page["next"]
            if after is None:
                return found

    def groups(self, user_ids: list[str] | None = None, tenant_id: str | None = None) -> list[Group]:
        """Every group (the directory's), or those a tenant's Proxmox VE mirrors (tenant_id)."""
        return [Group.from_dict(item) for item in self.rbac.directory_groups(user_ids=user_ids, tenant_id=tenant_id)]

    def access(self, tenant_id: str) -> tuple[dict[str, Access], list[CustomRole]]:
        answer = self.rbac.access_in_tenant(tenant_id)
        return ({item["user_id"]: Access.from_dict(item) for item in answer["access"]},
                [CustomRole.from_dict(item) for item in answer["custom_roles"]])

    def connections(self) -> list[dict]:
        return every_connection(self.tenancy)

    def credentials(self, connection_id: str) -> dict | None:
        try:
            return self.tenancy.connection_credentials(connection_id)
        except NotFound:
            return None


def every_connection(tenancy) -> list[dict]:
    """Every connection of every tenant, page by page (a tenancy proxy of any kind)."""
    found, cursor = [], None
    while True:
        page = tenancy.list_connections(tenant_id=None, limit=CONNECTION_PAGE, cursor=cursor)
        found += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


class _Bounded:
    """A service proxy whose calls give up after SOURCE_TIMEOUT seconds (TransientError)."""

    def __init__(self, proxy):
        self._proxy = proxy

    def __getattr__(self, method):
        call = getattr(self._proxy, method)

        def bounded(*args, **kwargs):
            with eventlet.Timeout(SOURCE_TIMEOUT, TransientError(f"no answer to {method} in {SOURCE_TIMEOUT:.0f} s")):
                return call(*args, **kwargs)

        return bounded


class Engine:
    """One per service process (see service.SyncEngine): runs the work of due targets."""

    def __init__(self, db, directory_settings, owner: str | None = None):
        self.db = db
        self.directory_settings = directory_settings  # () -> ldap_plan.LdapSettings | None
        self.owner = owner or f"sync-{uuid.uuid4().hex[:12]}"
        self._holding: dict[str, str] = {}  # target -> the lease holder name of the run on it

    # --- marking work -----------------------------------------------------------------

    def enqueue(self, targets: list[tuple[str, str | None]], subject: str = FULL, hint: dict | None = None) -> None:
        """targets: (target, tenant id) pairs."""
        if not targets:
            return
        now = utc_now()
        with self.db.unit_of_work() as uow:
            for target, tenant_id in sorted(targets, key=_target_name):  # one lock order (storage.take_turns)
                storage.ensure_target(uow.session, target, tenant_id)
                storage.enqueue(uow.session, target, subject, now, hint)
            uow.commit()

    # --- running ------------------------------------------------------------------------

    def process_due(self, sources: Sources, only: set[str] | None = None) -> None:
        with self.db.unit_of_work() as uow:
            due = storage.due_targets(uow.session, utc_now())
        for target in due:
            if only is None or target in only:
                self.process(target, sources)

    def process(self, target: str, sources: Sources) -> None:
        # Each run holds the lease under its own name: two workers of one process are two holders.
        holder = f"{self.owner}/{uuid.uuid4().hex[:8]}"
        with self.db.unit_of_work() as uow:
            taken = storage.take_lease(uow.session, target, holder, utc_now(), LEASE_SECONDS)
            uow.commit()
        if not taken:
            return  # another run is on it; its work stays queued for it (or for the next look)
        self._holding[target] = holder
        try:
            # Work that arrived during a run (its events found the lease taken) runs right after it.
            users_first = True
            for _ in range(MAX_RUNS_PER_LEASE):
                with self.db.unit_of_work() as uow:
                    rows = storage.due_work(uow.session, target, utc_now())
                    work = {(row.target, row.subject): row.generation for row in rows}
                    hints = {row.subject: dict(row.hint or {}) for row in rows}
                if users_first and target == LDAP_TARGET and FULL in hints and len(hints) > 1:
                    # Users' changes (a suspension, a removal) never wait for a full reconcile:
                    # they run first, on their own; the reconcile is the next run (which takes
                    # whatever users' work came meanwhile along: a stream of events cannot starve it).
                    users_first = False
                    work = {key: generation for key, generation in work.items() if key[1] != FULL}
                    hints = {subject: hint for subject, hint in hints.items() if subject != FULL}
                if not work or not self._run(target, work, hints, sources):
                    break
        finally:
            self._holding.pop(target, None)
            with self.db.unit_of_work() as uow:
                storage.release_lease(uow.session, target, holder)
                uow.commit()

    def _run(self, target: str, work: dict, hints: dict, sources: Sources) -> bool:
        """One run; whether it succeeded."""
        mode = "full" if FULL in hints else "targeted"
        started, clock = utc_now(), time.monotonic()
        self._set(target, running=mode, progress_done=0, progress_total=0, last_started_at=started)
        try:
            outcome = self._converge(target, mode, hints, sources)
        except TargetFailure as failure:
            self._failed(target, work, failure.error, started, clock, mode)
            return False
        except (ldap_directory.DirectoryUnavailable, pve.PveFailure) as failure:
            self._failed(target, work, failure.as_dict(), started, clock, mode)
            return False
        except Exception as error:  # noqa: BLE001 - any failure keeps the work for later
            log.warning("sync of %s failed", target, exc_info=True)
            code = "source_unavailable" if type(error).__name__ in {"RpcTimeout", "UnknownService"} else "internal_error"
            self._failed(target, work, {"code": code, "message": f"The run failed ({type(error).__name__})."},
                         started, clock, mode)
            return False
        self._succeeded(target, work, outcome, started, clock, mode)
        return True

    def _converge(self, target: str, mode: str, hints: dict, sources: Sources) -> Outcome:
        if target == LDAP_TARGET:
            settings = self.directory_settings()
            if settings is None:
                return Outcome()  # no directory configured: nothing to write to
            if mode == "full":
                return self._ldap_full(target, settings, sources)
            return self._ldap_people(settings, hints, sources)
        connection_id = connection_of(target)
        if connection_id is None:
            raise TargetFailure("unknown_target", f"{target} is not a sync target.")
        return self._proxmox(target, connection_id, sources)

    # --- the directory ----------------------------------------------------------------------

    def _ldap_full(self, target: str, settings, sources: Sources) -> Outcome:
        people, groups = sources.people(), sources.groups()
        with self._directory(settings) as directory:
            directory.ensure_subtrees()
            actual = directory.read_all()
            changes = ldap_plan.plan_full(people, groups, actual, settings)
            owners = {person.uid_number: (person.user_id, person.username) for person in people}
            return self._ldap_apply(target, directory, changes, _ldap_subjects(settings, owners, actual))

    def _ldap_people(self, settings, hints: dict, sources: Sources) -> Outcome:
        user_ids = [subject.partition(":")[2] for subject in hints if subject.startswith("user:")]
        found = {person.user_id: person for person in sources.people(user_ids=user_ids)}
        groups = sources.groups(user_ids=user_ids)
        people: dict[int, Person | None] = {}
        owners: dict[int, tuple[str, str | None]] = {}  # uidNumber -> (user id, username if any)
        usernames: set[str] = set()
        for user_id in user_ids:
            hint = hints[user_subject(user_id)]
            person = found.get(user_id)
            usernames.update(hint.get("usernames") or ())
            if person is not None:
                people[person.uid_number] = person
                owners[person.uid_number] = (user_id, person.username)
                usernames.add(person.username)
            elif hint.get("uid_number") is not None:
                people[int(hint["uid_number"])] = None  # removed: its entry goes
                owners[int(hint["uid_number"])] = (user_id, None)
        if not people:
            return Outcome()
        groups_of = {person.uid_number: {g.cn for g in groups if person.user_id in g.member_ids} if person.active
                     else set() for person in people.values() if person is not None}
        groups_of.update({uid_number: set() for uid_number, person in people.items() if person is None})
        wanted = set().union(*groups_of.values()) if groups_of else set()
        primary = _primary_gid(groups, settings)
        with self._directory(settings) as directory:
            actual = directory.read_for_people(set(people), usernames, wanted | {settings.primary_group})
            changes = ldap_plan.plan_people(people, groups_of, actual, settings, primary)
            return self._ldap_apply(None, directory, changes, _ldap_subjects(settings, owners, actual))

    def _ldap_apply(self, target: str | None, directory, changes: list, subject_of) -> Outcome:
        """Applies the changes; those the directory refuses for their entry's data are parked by
        subject (subject_of(change) -> (subject, label)) and the others are made."""
        refused: list = []
        described = self._apply(target, lambda todo, progress: directory.apply(todo, progress, refused), changes)
        parked: dict[str, dict] = {}
        for change, error in refused:
            subject, label = subject_of(change)
            parked.setdefault(subject, {"subject": subject, "label": label, "error": error})
        refused_changes = [change.describe() for change, _ in refused]
        return Outcome([change for change in described if change not in refused_changes],
                       refused=list(parked.values()))

    @staticmethod
    def _directory(settings):
        return ldap_directory.Directory(settings)

    # --- Proxmox ------------------------------------------------------------------------------

    def _proxmox(self, target: str, connection_id: str, sources: Sources) -> Outcome:
        credentials = sources.credentials(connection_id)
        if credentials is None:
            with self.db.unit_of_work() as uow:  # the connection is gone: so is its target
                storage.forget_target(uow.session, target)
                uow.commit()
            return Outcome()
        tenant_id, realm = credentials["tenant_id"], credentials["realm"]
        members = sources.people(tenant_id=tenant_id)
        access, custom_roles = sources.access(tenant_id)
        groups = sources.groups(user_ids=[person.user_id for person in members], tenant_id=tenant_id)
        desired = pve_plan.desired_state(realm, connection_id, members, access, groups, custom_roles,
                                         tenant_id=tenant_id)
        userids = {f"{person.username}@{realm}": person.user_id for person in members}
        refused: list[dict] = []

        def apply(todo, progress) -> None:
            try:
                pve.apply(api, todo)
            except pve.ChangesFailed as failed:
                # A change refused for its object's data parks that user or group; any other
                # failure is the connection's, retried with backoff.
                # A refused revoke (an ACL delete, a user's disable or delete) is never parked:
                # access must end, so the connection fails and retries.
                theirs = [item for item in failed.failures if item.get("status") in pve.SUBJECT_STATUSES
                          and not pve_plan.revokes(item["change"])]
                others = [item for item in failed.failures if item not in theirs]
                refused.extend(theirs)
                if others:
                    raise pve.ChangesFailed(failed.applied, others) from None

        with pve.session(pve.Endpoint.from_credentials(credentials)) as api:
            actual = pve_plan.managed(pve.read_state(api, realm), realm)
            changes = pve_plan.plan(desired, actual)
            conflicts = [change.describe() for change in changes if change.op == "conflict"]
            changes = [change for change in changes if change.op != "conflict"]
            described = self._apply(target, apply, changes)
        parked: dict[str, dict] = {}
        for item in refused:
            subject, label = _pve_subject(item["change"], userids)
            parked.setdefault(subject, {"subject": subject, "label": label,
                                        "error": {"code": "proxmox_refused", "message": item["message"]}})
        refused_changes = [item["change"] for item in refused]
        return Outcome([change for change in described if change not in refused_changes], conflicts,
                       list(parked.values()))

    # --- bookkeeping -----------------------------------------------------------------------------

    def _apply(self, target: str | None, apply, changes: list) -> list[dict]:
        """Applies the changes, reporting progress of a full run on `target`; their descriptions."""
        if not changes:
            return []
        described = [change.describe() for change in changes]
        if target is not None:
            self._set(target, progress_total=len(changes))
        last = [time.monotonic()]

        def progress(done: int) -> None:
            if target is not None and time.monotonic() - last[0] >= PROGRESS_EVERY:
                last[0] = time.monotonic()
                self._set(target, progress_done=done)
                with self.db.unit_of_work() as uow:
                    storage.renew_lease(uow.session, target, self._holding.get(target, ""), utc_now(), LEASE_SECONDS)
                    uow.commit()

        apply(changes, progress)
        return described

    def _set(self, target: str, **values) -> None:
        with self.db.unit_of_work() as uow:
            row = storage.ensure_target(uow.session, target, None)
            for name, value in values.items():
                setattr(row, name, value)
            uow.commit()

    def _succeeded(self, target, work, outcome: Outcome, started, clock, mode) -> None:
        now, duration = utc_now(), int((time.monotonic() - clock) * 1000)
        with self.db.unit_of_work() as uow:
            storage.finish_work(uow.session, work)
            row = uow.session.get(storage.SyncTarget, target)
            if row is None:  # forgotten during the run (connection deleted)
                uow.commit()
                return
            self._park(uow, target, row.tenant_id, work, outcome, mode, now)
            if row.failing_since is not None:
                uow.emit(events.target_recovered(target, row.tenant_id, (now - aware(row.failing_since)).total_seconds()))
                row.failing_since = None
                storage.retry_now(uow.session, target, now)  # it answers again: what waits need not wait
            row.running, row.last_mode, row.last_finished_at, row.last_duration_ms = None, mode, now, duration
            row.last_changes, row.last_error = len(outcome.changes), None
            row.changes_total += len(outcome.changes)
            row.progress_done = row.progress_total
            if mode == "full":
                row.last_full_at, row.conflicts = started, outcome.conflicts
            if outcome.changes or (mode == "full" and outcome.conflicts):
                uow.emit(events.target_synced(target, row.tenant_id, mode, outcome.changes, duration, outcome.conflicts))
            uow.commit()

    @staticmethod
    def _park(uow, target: str, tenant_id, work, outcome: Outcome, mode: str, now) -> None:
        """Parks the subjects the run's target refused; unparks those it covered without a refusal
        (a full run covers every subject; a targeted one the subjects of its work)."""
        refused = {item["subject"]: item for item in outcome.refused}
        for subject, item in sorted(refused.items()):
            if storage.park(uow.session, target, subject, item.get("label"), item["error"], now):
                uow.emit(events.subject_parked(target, tenant_id, subject, item.get("label"), item["error"]))
        covered = None if mode == "full" else [subject for (_, subject) in work]
        for row in storage.unpark(uow.session, target, covered, keep=refused):
            uow.emit(events.subject_unparked(target, tenant_id, row.subject, row.label,
                                             (now - aware(row.since)).total_seconds()))

    def _failed(self, target, work, error: dict, started, clock, mode) -> None:
        now = utc_now()
        with self.db.unit_of_work() as uow:
            storage.postpone_work(uow.session, work, now, backoff)
            row = storage.ensure_target(uow.session, target, None)
            if row.failing_since is None:
                row.failing_since = now
                uow.emit(events.target_failed(target, row.tenant_id, error))
            row.running, row.last_mode, row.last_finished_at = None, mode, now
            row.last_duration_ms, row.last_changes, row.last_error = int((time.monotonic() - clock) * 1000), 0, error
            uow.commit()

    # --- schedule --------------------------------------------------------------------------------

    def schedule_fulls(self, sources: Sources, interval: float, everything: bool, directory_configured: bool) -> None:
        """Marks a full reconcile for each target whose last one is older than `interval` (all of
        them when `everything`), and registers connections the engine has not seen yet."""
        known = [(pve_target(c["id"]), c["tenant_id"]) for c in sources.connections()]
        if directory_configured:
            known.append((LDAP_TARGET, None))
        now = utc_now()
        with self.db.unit_of_work() as uow:
            live = {target for target, _ in known}
            for row in uow.session.query(storage.SyncTarget).all():  # connections deleted while we were away
                if row.target not in live:
                    storage.forget_target(uow.session, row.target)
            for target, tenant_id in sorted(known, key=_target_name):
                row = storage.ensure_target(uow.session, target, tenant_id)
                stale = row.last_full_at is None or (now - aware(row.last_full_at)).total_seconds() >= interval
                if everything or stale:
                    storage.enqueue(uow.session, target, FULL, now)
            uow.commit()


def _target_name(pair: tuple[str, str | None]) -> str:
    return pair[0]


def _primary_gid(groups: list[Group], settings) -> int:
    for group in groups:
        if group.cn == settings.primary_group:
            return group.gid_number
    raise TargetFailure("primary_group_missing", f"The primary group {settings.primary_group} does not exist.")


def _ldap_subjects(settings, owners: dict[int, tuple[str, str | None]], actual: dict):
    """subject_of(change) -> (subject, label) for the directory's changes: a person's entry (by
    its uidNumber, or the DN a person wants) is `user:<id>`, a group's `group:<cn>`, anything
    else in the way `entry:<dn>`."""
    by_dn: dict[str, str] = {}
    for key, entry in actual.items():
        if entry.uid_number in owners:
            by_dn[key] = user_subject(owners[entry.uid_number][0])
    for user_id, username in owners.values():
        if username:
            by_dn.setdefault(dn_key(ldap_plan.person_dn(username, settings)), user_subject(user_id))

    def subject_of(change) -> tuple[str, str]:
        for dn in (change.dn, change.new_dn):
            if dn and dn_key(dn) in by_dn:
                return by_dn[dn_key(dn)], change.dn
        if change.kind == "group":
            return group_subject(ldap_plan.rdn_value(change.dn)), change.dn
        return f"entry:{dn_key(change.dn)}", change.dn
    return subject_of


def _pve_subject(change: dict, userids: dict[str, str]) -> tuple[str, str]:
    """(subject, label) of a Proxmox VE change (its describe()): users by their Gatehouse id."""
    kind, key, fields = change["kind"], change["key"], change.get("fields") or {}
    if kind == pve_plan.ACL:
        kind, key = fields.get("type"), fields.get("ugid")
    if kind == pve_plan.USER:
        return (user_subject(userids[key]) if key in userids else f"pve-user:{key}"), key
    if kind == pve_plan.GROUP:
        return group_subject(key), key
    return f"{kind}:{key}", key
