"""The directory adapter (ldap3): reads the managed subtrees, applies planned changes.

Reads are paged searches on one connection. Writes go over a small pool of connections
from a ThreadPoolExecutor (real threads, or green threads under eventlet's monkey-patching),
phase by phase so that no change depends on one still in flight:
people deletes, revocations (people modifies that take a password away, change it or expire
the account, and group modifies that only drop memberUid values: access goes first), renames
(one by one: a rename may free the DN the next one takes), people modifies, people adds, group
deletes, group adds, group modifies.

apply(..., refused=[...]) isolates refusals: a change the directory refuses for its entry's
data (SUBJECT_REFUSALS: a syntax, schema, naming or constraint result) is recorded there as
(change, error) and the others go on; the engine parks the subject it belongs to. A change
that ends a person's access (ldap_plan.is_access_change) is parked only once access has ended:
a refused person delete first removes the entry's password, a revoke waiting on a refused
rename is made at the entry's old DN; a refused revoke, or a refused fallback, fails the apply
(DirectoryUnavailable "ldap_error"), so the target fails and retries and no one keeps access
through a parked subject.

Errors are DirectoryUnavailable with a code: "unreachable" (connection, TLS or time-out),
"authentication_failed" (the bind was refused), "ldap_error" (an operation refused: names
the DN and the LDAP result, never a value). The bind password appears nowhere.
"""
from __future__ import annotations

import dataclasses
import math
import queue
import ssl
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Iterable

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from services.proxmox_sync.ldap_plan import (ACCESS_ATTRIBUTES, PASSWORD, Entry, LdapChange, LdapSettings, dn_key,
                                             is_access_change)

PAGE_SIZE = 1000
FILTER_TERMS = 200  # (|(...)(...)) terms per search of read_for_people
PROGRESS_EVERY = 0.5  # seconds between progress reports during a phase
PHASES = (("person", "delete"), ("person", "revoke"), ("group", "revoke"), ("person", "rename"),
          ("person", "modify"), ("person", "add"), ("group", "delete"), ("group", "add"), ("group", "modify"))
SEQUENTIAL = {("person", "rename")}
SUCCESS, NO_SUCH_ATTRIBUTE, NO_SUCH_OBJECT, VALUE_EXISTS, INVALID_CREDENTIALS = 0, 16, 32, 20, 49
SEARCH_RESULT_ENTRY = 4  # LDAP protocolOp
ACTIONS = {"replace": ldap3.MODIFY_REPLACE, "add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE}
# LDAP results that refuse one entry's data, not the directory (RFC 4511 4.1.9): that entry's
# subject is parked, everyone else's work goes on. Anything else (busy, unavailable, no access,
# a broken connection, a refused bind) is the target's failure, retried with backoff.
SUBJECT_REFUSALS = {
    17: "undefinedAttributeType", 18: "inappropriateMatching", 19: "constraintViolation",
    20: "attributeOrValueExists", 21: "invalidAttributeSyntax", 34: "invalidDNSyntax", 64: "namingViolation",
    65: "objectClassViolation", 66: "notAllowedOnNonLeaf", 67: "notAllowedOnRDN", 68: "entryAlreadyExists",
    69: "objectClassModsProhibited",
}


class DirectoryUnavailable(Exception):
    """The directory could not be read or written; `code` says why, `message` for people."""

    def __init__(self, code: str, message: str, writes: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.writes = writes  # writes made by the apply that failed, before it failed

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class EntryRefused(DirectoryUnavailable):
    """The directory refused one change for its entry's data (a SUBJECT_REFUSALS result)."""

    def __init__(self, message: str, result: int, description: str):
        super().__init__("ldap_error", message)
        self.result, self.description = result, description

    def as_dict(self) -> dict:
        return {"code": "ldap_refused", "message": self.message, "ldap_result": self.description}


def _refused(operation: str, dn: str, result: dict) -> DirectoryUnavailable:
    # The result's description and code only: a server message may quote a value.
    message = f"{operation} {dn} refused: {result.get('description')} ({result.get('result')})"
    if result.get("result") in SUBJECT_REFUSALS:
        return EntryRefused(message, result["result"], SUBJECT_REFUSALS[result["result"]])
    return DirectoryUnavailable("ldap_error", message)


def phase_of(change: LdapChange, moving: set[str]) -> tuple[str, str]:
    """The phase a change is applied in; `moving`: dn_keys renames take from or give to."""
    if change.op != "modify" or dn_key(change.dn) in moving:
        return change.kind, change.op
    names = {name for _, name, _ in change.modifications}
    if change.kind == "person" and names & ACCESS_ATTRIBUTES:
        return "person", "revoke"
    if change.kind == "group" and all(action == "delete" for action, _, _ in change.modifications):
        return "group", "revoke"
    return change.kind, change.op


class Directory:
    def __init__(self, settings: LdapSettings, timeout: float = 5.0, workers: int = 4):
        self.settings = settings
        self.timeout = timeout
        self.workers = max(1, workers)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._open: list[ldap3.Connection] = []
        self._lock = threading.Lock()

    # --- connections

    def _make_server(self) -> ldap3.Server:
        url = self.settings.url.rstrip("/")
        tls = None
        if url.lower().startswith("ldaps://") or self.settings.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if self.settings.verify_tls else ssl.CERT_NONE,
                            ca_certs_data=self.settings.ca_pem or None)  # None: the system's CAs
        return ldap3.Server(url, get_info=ldap3.NONE, tls=tls, connect_timeout=self.timeout)

    def _connect(self) -> ldap3.Connection:
        # A new Server each time: ldap3's Server remembers an address that once refused (for a while).
        conn = ldap3.Connection(self._make_server(), user=self.settings.bind_dn, password=self.settings.password,
                                receive_timeout=math.ceil(self.timeout),  # ldap3 packs it as an integer
                                raise_exceptions=False, read_only=False,
                                check_names=False, return_empty_attributes=False)  # see _lean_search_entries
        try:
            conn.open()
            if self.settings.start_tls and not conn.start_tls():
                raise DirectoryUnavailable("unreachable", f"StartTLS refused by {self.settings.url}")
            if not conn.bind():
                code = conn.result.get("result")
                if code == INVALID_CREDENTIALS:
                    raise DirectoryUnavailable("authentication_failed",
                                               f"the directory refused the bind of {self.settings.bind_dn}")
                raise _refused("bind", self.settings.bind_dn, conn.result)
        except DirectoryUnavailable:
            _unbind(conn)
            raise
        except (ldap_errors.LDAPException, OSError) as exc:
            _unbind(conn)
            raise self._unreachable(exc) from None
        _lean_search_entries(conn)
        with self._lock:
            self._open.append(conn)
        return conn

    def _unreachable(self, exc: Exception) -> DirectoryUnavailable:
        tls = " (TLS)" if isinstance(exc, (ssl.SSLError, ldap_errors.LDAPStartTLSError)) else ""
        return DirectoryUnavailable("unreachable", f"{self.settings.url} is unreachable{tls}: "
                                                   f"{type(exc).__name__}")

    def _checkout(self) -> tuple[ldap3.Connection, bool]:
        """A pooled connection (reused True) or a new one."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            return self._connect(), False

    def _drop_idle(self) -> None:
        """After one connection broke the idle ones are likely dead too (server restarted)."""
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    def _discard(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        _unbind(conn)

    def _run(self, work: Callable[[ldap3.Connection], object], retry: bool = False):
        """Runs `work` on a pooled connection; a broken connection is dropped, not reused.

        retry (reads only): a pooled connection found dead is replaced by a new one, once.
        """
        conn, reused = self._checkout()
        try:
            result = work(conn)
        except DirectoryUnavailable:
            self._idle.put(conn)
            raise
        except (ldap_errors.LDAPException, OSError) as exc:
            self._discard(conn)
            self._drop_idle()
            if retry and reused:
                return self._run(work)
            raise self._unreachable(exc) from None
        self._idle.put(conn)
        return result

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            _unbind(conn)
        self._idle = queue.LifoQueue()

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reads

    def ensure_subtrees(self) -> int:
        """Creates ou=people and ou=groups under the base if missing; returns the writes made."""
        def ensure(conn: ldap3.Connection) -> int:
            writes = 0
            for dn in (self.settings.people_dn, self.settings.groups_dn):
                conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"])
                if conn.result["result"] == SUCCESS:
                    continue
                if conn.result["result"] != NO_SUCH_OBJECT:
                    raise _refused("search", dn, conn.result)
                ou = dn.split(",", 1)[0].split("=", 1)[1]
                if not conn.add(dn, attributes={"objectClass": ["organizationalUnit"], "ou": [ou]}):
                    raise _refused("add", dn, conn.result)
                writes += 1
            return writes
        return self._run(ensure, retry=True)

    def reads_people(self) -> bool:
        """Whether this bind may read ou=people (what a Proxmox VE realm's account must do)."""
        return self._run(lambda conn: conn.search(self.settings.people_dn, "(objectClass=*)",
                                                  search_scope=ldap3.BASE, attributes=["1.1"]), retry=True)

    def read_all(self) -> dict[str, Entry]:
        """Every entry directly under ou=people and ou=groups, keyed by dn_key."""
        return self._run(lambda conn: {
            **self._search(conn, self.settings.people_dn, "(objectClass=*)"),
            **self._search(conn, self.settings.groups_dn, "(objectClass=*)")}, retry=True)

    def read_for_people(self, uid_numbers: Iterable[int], usernames: Iterable[str],
                        group_cns: Iterable[str]) -> dict[str, Entry]:
        """For plan_people: the people entries with these uidNumbers or usernames, and the groups
        that list any of their names (current or found on their entries) or are named in group_cns."""
        uid_numbers, usernames, group_cns = sorted(set(uid_numbers)), sorted(set(usernames)), sorted(set(group_cns))

        def read(conn: ldap3.Connection) -> dict[str, Entry]:
            people = {}
            terms = [f"(uidNumber={int(number)})" for number in uid_numbers]
            terms += [f"(uid={escape_filter_chars(name)})" for name in usernames]
            for chunk in _chunks(terms):
                people.update(self._search(conn, self.settings.people_dn, f"(|{''.join(chunk)})"))
            names = set(usernames) | {entry.first("uid") for entry in people.values() if entry.first("uid")}
            terms = [f"(memberUid={escape_filter_chars(name)})" for name in sorted(names)]
            terms += [f"(cn={escape_filter_chars(cn)})" for cn in group_cns]
            groups = {}
            for chunk in _chunks(terms):
                groups.update(self._search(conn, self.settings.groups_dn, f"(|{''.join(chunk)})"))
            return {**people, **groups}
        return self._run(read, retry=True)

    def _search(self, conn: ldap3.Connection, base: str, search_filter: str) -> dict[str, Entry]:
        """A paged one-level search; an absent subtree reads as empty."""
        found: dict[str, Entry] = {}
        cookie = None
        while True:
            conn.search(base, search_filter, search_scope=ldap3.LEVEL, attributes=[ldap3.ALL_ATTRIBUTES],
                        paged_size=PAGE_SIZE, paged_cookie=cookie)
            if conn.result["result"] == NO_SUCH_OBJECT:
                return found
            if conn.result["result"] != SUCCESS:
                raise _refused("search", base, conn.result)
            for item in conn.response:
                if item.get("type") != "searchResEntry":
                    continue
                entry = Entry.of(item["dn"], item["attributes"])
                found[dn_key(entry.dn)] = entry
            cookie = conn.result.get("controls", {}).get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
            if not cookie:
                return found

    # --- writes

    def apply(self, changes: list[LdapChange], progress: Callable[[int], None] | None = None,
              refused: list | None = None) -> int:
        """Applies the changes phase by phase; returns the writes made.

        progress(done) is called from the calling thread with the running total of writes, about
        every half second during a phase and after each phase. refused: when given, a change
        refused for its entry's data (EntryRefused) is appended as (change, error dict) and the
        others go on; otherwise it ends the apply.
        """
        done = [0]
        counter_lock = threading.Lock()

        def count() -> None:
            with counter_lock:
                done[0] += 1

        write = self._write
        if refused is not None:
            blocked: dict[str, dict] = {}  # dn_key -> the refusal of an earlier change of that entry

            def write(conn: ldap3.Connection, change: LdapChange, count: Callable[[], None]) -> None:
                earlier = blocked.get(dn_key(change.dn))
                if earlier is not None:  # it would meet the state the refused change left: not tried
                    error, staying = earlier
                    if is_access_change(change) and staying is not None:
                        # The entry's rename was refused: it is still at `staying`, and access ends there.
                        self._end_access(conn, dataclasses.replace(change, dn=staying), count)
                    with counter_lock:
                        refused.append((change, error))
                    return
                try:
                    self._write(conn, change, count)
                except EntryRefused as refusal:
                    if is_access_change(change):
                        if change.op != "delete":  # a refused revoke: the target's failure, never parked
                            raise DirectoryUnavailable("ldap_error", f"{refusal.message} (an access change)") from None
                        self._end_access(conn, change, count)  # the entry stays: its password goes
                    error = refusal.as_dict()
                    with counter_lock:
                        refused.append((change, error))
                        if change.op != "modify":  # a refused modify leaves the entry as it was
                            staying = change.dn if change.op == "rename" else None
                            for dn in (change.dn, change.new_dn):
                                if dn:
                                    blocked[dn_key(dn)] = (error, staying)

        moving = {dn_key(key) for change in changes if change.op == "rename" for key in (change.dn, change.new_dn)}
        phases = {phase_of(change, moving) for change in changes}
        for phase in PHASES:
            if phase not in phases:
                continue
            batch = [change for change in changes if phase_of(change, moving) == phase]
            try:
                if phase in SEQUENTIAL or len(batch) == 1 or self.workers == 1:
                    self._run(lambda conn: [write(conn, change, count) for change in batch])
                else:
                    self._apply_concurrently(batch, count, lambda: progress and progress(done[0]), write)
            except DirectoryUnavailable as exc:
                exc.writes = done[0]
                raise
            if progress:
                progress(done[0])
        return done[0]

    def _apply_concurrently(self, batch: list[LdapChange], count: Callable[[], None],
                            report: Callable[[], None], write=None) -> None:
        write = write or self._write
        pending = iter(batch)
        take = threading.Lock()
        failed = threading.Event()

        def worker() -> None:
            def drain(conn: ldap3.Connection) -> None:
                while not failed.is_set():
                    with take:
                        change = next(pending, None)
                    if change is None:
                        return
                    write(conn, change, count)
            try:
                self._run(drain)
            except Exception:
                failed.set()  # the others stop at their next change
                raise

        with ThreadPoolExecutor(max_workers=min(self.workers, len(batch))) as pool:
            futures = [pool.submit(worker) for _ in range(min(self.workers, len(batch)))]
            while True:
                finished, running = wait(futures, timeout=PROGRESS_EVERY, return_when=FIRST_EXCEPTION)
                if not running or any(future.exception() for future in finished):
                    break
                report()
            failed.set()
        for future in futures:
            if future.exception():
                raise future.exception()

    def _write(self, conn: ldap3.Connection, change: LdapChange, count: Callable[[], None]) -> None:
        if change.op == "add":
            conn.add(change.dn, attributes={name: list(values) for name, values in change.attributes.items()})
        elif change.op == "delete":
            conn.delete(change.dn)
            if conn.result["result"] == NO_SUCH_OBJECT:
                return  # already gone: nothing to write
        elif change.op == "rename":
            conn.modify_dn(change.dn, change.new_rdn, delete_old_dn=True)
        elif change.op == "modify":
            conn.modify(change.dn, _modifications(change.modifications))
            if conn.result["result"] in (NO_SUCH_ATTRIBUTE, VALUE_EXISTS) and _only_values(change):
                self._modify_value_by_value(conn, change)
                count()
                return
        else:
            raise ValueError(f"unknown LDAP change {change.op!r}")
        if conn.result["result"] != SUCCESS:
            raise _refused(change.op, change.dn, conn.result)
        count()

    def _end_access(self, conn: ldap3.Connection, change: LdapChange, count: Callable[[], None]) -> None:
        """Ends a person's access where its entry stays: the access modify itself, or (a refused
        delete) the password removed. Refused too: the target's failure."""
        if change.op == "delete":
            change = LdapChange("modify", change.dn, modifications=(("replace", PASSWORD, ()),), kind="person")
        try:
            self._write(conn, change, count)
        except EntryRefused as refusal:
            raise DirectoryUnavailable("ldap_error", f"{refusal.message} (ending access)") from None

    @staticmethod
    def _modify_value_by_value(conn: ldap3.Connection, change: LdapChange) -> None:
        """Single-value adds and deletes (memberUid) raced by another writer: each value on its own;
        a value already there (or already gone) is fine."""
        for action, name, values in change.modifications:
            for value in values:
                conn.modify(change.dn, {name: [(ACTIONS[action], [value])]})
                if conn.result["result"] not in (SUCCESS, NO_SUCH_ATTRIBUTE, VALUE_EXISTS):
                    raise _refused(change.op, change.dn, conn.result)


def _unbind(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except (ldap_errors.LDAPException, OSError):  # already broken: nothing left to release
        pass


def _lean_search_entries(conn: ldap3.Connection) -> None:
    """Decodes search entries to {"dn", "attributes"} (text values) and nothing else.

    ldap3 builds two dicts per entry (raw bytes, then text through per-value configuration
    look-ups): twice the work a no-op reconcile of 10,000 people can afford. This override is
    local to our connections; it relies on the message layout of ldap3's fast decoder (2.9,
    pinned), and anything unusual (controls on an entry) goes the library's way.
    """
    library_decode = conn.strategy.decode_response_fast

    def decode(message):
        if message["protocolOp"] != SEARCH_RESULT_ENTRY or message["controls"]:
            return library_decode(message)
        dn, attributes = message["payload"][0][3], message["payload"][1][3]
        return {"type": "searchResEntry", "dn": dn.decode("utf-8"), "attributes": {
            attribute[3][0][3].decode("utf-8"): [value[3].decode("utf-8", "replace")
                                                 for value in attribute[3][1][3] or ()]
            for attribute in attributes}}
    conn.strategy.decode_response_fast = decode


def _only_values(change: LdapChange) -> bool:
    return all(action != "replace" for action, _, _ in change.modifications)


def _modifications(modifications) -> dict[str, list]:
    changes: dict[str, list] = {}
    for action, name, values in modifications:
        changes.setdefault(name, []).append((ACTIONS[action], list(values)))
    return changes


def _chunks(terms: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(terms), FILTER_TERMS):
        yield terms[start:start + FILTER_TERMS]


def reader_problem(settings: LdapSettings) -> str | None:
    """Why this account could not look users up (None: it can). Proxmox VE realms search as it:
    a refusal found now beats logins failing on Proxmox later, far from the cause."""
    try:
        with Directory(settings) as directory:
            if directory.reads_people():
                return None
    except DirectoryUnavailable as failure:
        return failure.message
    return f"{settings.bind_dn} may not read {settings.people_dn}"
