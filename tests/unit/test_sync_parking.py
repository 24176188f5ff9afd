"""Issue 20: a change a target refuses for one subject's data parks that subject alone; everyone
else's work goes on in the same run, access removals go first, and a parked subject is retried
when its data changes, on a requested sync and on every full reconcile."""
from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from proxmoxer.core import ResourceException

from services.proxmox_sync import engine, ldap_directory, ldap_plan, pve, storage
from services.proxmox_sync.domain import Access, Group, Person
from services.proxmox_sync.engine import Engine
from services.proxmox_sync.ldap_directory import Directory, DirectoryUnavailable, EntryRefused
from services.proxmox_sync.ldap_plan import ACCESS_ATTRIBUTES, Entry, LdapChange, LdapSettings, dn_key, rdn_value
from services.proxmox_sync.pve_plan import PveState, marker
from tests.unit.conftest import migrated

SETTINGS = LdapSettings("ldap://127.0.0.1:1", "cn=admin,dc=t", "secret", "dc=t")
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@pytest.fixture
def db(tmp_path):
    database = migrated("proxmox_sync", tmp_path / "proxmox_sync.db", storage.metadata)
    yield database
    database.dispose()


def person(name: str, uid_number: int, status: str = "active", **changes) -> Person:
    fields = {"email": f"{name}@example.test", "password_hash": HASH, **changes}
    return Person(user_id=f"id-{name}", username=name, first_name=name.title(), last_name="Tester",
                  uid_number=uid_number, status=status, **fields)


class FakeSources:
    def __init__(self, people, tenant_id="t1"):
        self.by_id = {p.user_id: p for p in people}
        self.tenant_id = tenant_id

    def people(self, user_ids=None, tenant_id=None):
        return [p for p in self.by_id.values() if user_ids is None or p.user_id in user_ids]

    def groups(self, user_ids=None, tenant_id=None):
        return [Group("g-all", "ldapusers", 5000, "everyone", False, frozenset(self.by_id))]

    def access(self, tenant_id):
        return {uid: Access(uid, "viewer", frozenset({"vm.view"}), {}, False) for uid in self.by_id}, []

    def credentials(self, connection_id):
        return {"tenant_id": self.tenant_id, "realm": "gh", "url": "https://pve.test:8006", "verify_tls": False,
                "auth_method": "token", "login": "a@pve!t", "secret": "s"}

    def connections(self):
        return []


class FakeDirectory:
    """An in-memory directory that refuses, like slapd, a non-ASCII mail (invalidAttributeSyntax),
    and records the order of the writes it takes."""

    def __init__(self):
        self.entries: dict[str, Entry] = {}
        self.writes: list[tuple[str, str]] = []
        self.down = False
        self.refuse_access: set[str] = set()  # usernames whose access modifies are refused

    def __call__(self, settings):  # Engine._directory(settings)
        return self

    def __enter__(self):
        if self.down:
            raise DirectoryUnavailable("unreachable", "ldap://127.0.0.1:1 is unreachable: ConnectionRefused")
        return self

    def __exit__(self, *exc):
        pass

    def ensure_subtrees(self):
        return 0

    def read_all(self):
        return dict(self.entries)

    def read_for_people(self, uid_numbers, usernames, group_cns):
        return dict(self.entries)

    def apply(self, changes, progress=None, refused=None):
        """The real adapter's phases and refusal rules, over this in-memory directory."""
        real = Directory(SETTINGS, workers=1)
        real._run = lambda work, retry=False: work(None)
        real._write = lambda conn, change, count: (self._write(change), count())
        return real.apply(changes, progress, refused)

    def _write(self, change: LdapChange):
        mails = change.attributes.get("mail", ()) if change.op == "add" else [
            value for _, name, values in change.modifications if name == "mail" for value in values]
        if not all(value.isascii() for value in mails):
            raise EntryRefused(f"{change.op} {change.dn} refused: invalidAttributeSyntax (21)", 21,
                               "invalidAttributeSyntax")
        if (change.op == "modify" and rdn_value(change.dn) in self.refuse_access
                and any(name in ACCESS_ATTRIBUTES for _, name, _ in change.modifications)):
            raise EntryRefused(f"modify {change.dn} refused: constraintViolation (19)", 19, "constraintViolation")
        if change.op == "add":
            self.entries[dn_key(change.dn)] = Entry(change.dn, dict(change.attributes))
        elif change.op == "modify":
            entry = self.entries[dn_key(change.dn)]
            attributes = dict(entry.attributes)
            for action, name, values in change.modifications:
                if action == "replace":
                    if values:
                        attributes[name] = values
                    else:
                        attributes.pop(name, None)
                elif action == "add":
                    attributes[name] = tuple(sorted(set(attributes.get(name, ())) | set(values)))
                else:
                    attributes[name] = tuple(sorted(set(attributes.get(name, ())) - set(values)))
            self.entries[dn_key(change.dn)] = Entry(change.dn, attributes)
        elif change.op == "delete":
            self.entries.pop(dn_key(change.dn), None)
        self.writes.append((change.op, change.dn))

    def can_bind(self, name: str) -> bool:
        entry = self.entries.get(f"uid={name},ou=people,dc=t")
        return bool(entry and entry.attributes.get("userPassword"))


def outbox(db) -> list[dict]:
    table = storage.metadata.tables["proxmox_sync_outbox"]
    with db.unit_of_work() as uow:
        return [json.loads(body) for body in uow.session.execute(table.select().with_only_columns(table.c.body)).scalars()]


def status(db, target="ldap") -> dict:
    with db.unit_of_work() as uow:
        row = uow.session.get(storage.SyncTarget, target)
        return storage.public_target(row, 0, None)


def pending(db) -> set:
    with db.unit_of_work() as uow:
        return {(w.target, w.subject) for w in uow.session.query(storage.SyncWork).all()}


@pytest.fixture
def world(db, monkeypatch):
    ada, bob, cyd = person("ada", 10001), person("bob", 10002), person("cyd", 10003)
    sources = FakeSources([ada, bob, cyd])
    directory = FakeDirectory()
    sync = Engine(db, lambda: SETTINGS)
    monkeypatch.setattr(sync, "_directory", directory)
    sync.enqueue([("ldap", None)])
    sync.process("ldap", sources)
    assert directory.can_bind("bob") and status(db)["parked"] == []
    return sync, sources, directory


def mark(sync, *people):
    for p in people:
        sync.enqueue([("ldap", None)], engine.user_subject(p.user_id), {"uid_number": p.uid_number})


def test_a_refused_user_is_parked_and_another_users_suspension_goes_through_in_the_same_run(db, world):
    sync, sources, directory = world
    poisoned = person("dee", 10004, email="dée@exämple.test")
    sources.by_id[poisoned.user_id] = poisoned
    sources.by_id["id-bob"] = replace(sources.by_id["id-bob"], status="suspended")
    mark(sync, poisoned, sources.by_id["id-bob"])
    sync.process("ldap", sources)

    assert not directory.can_bind("bob")  # the suspension reached the directory
    assert dn_key("uid=dee,ou=people,dc=t") not in directory.entries
    seen = status(db)
    assert seen["state"] == "idle" and seen["failing_since"] is None and seen["last_run"]["error"] is None
    assert seen["parked_count"] == 1
    [parked] = seen["parked"]
    assert parked["subject"] == "user:id-dee" and parked["label"] == "uid=dee,ou=people,dc=t"
    assert parked["reason"]["code"] == "ldap_refused" and "invalidAttributeSyntax" in parked["reason"]["message"]
    assert "exämple" not in json.dumps(seen)  # the refused value is nowhere
    assert pending(db) == set()  # nothing waits with backoff: not the parked user, not anyone else
    parked_events = [e for e in outbox(db) if e["type"] == "proxmox_sync.subject_parked"]
    assert [e["data"]["subject"] for e in parked_events] == ["user:id-dee"]
    assert "exämple" not in json.dumps(parked_events)
    assert not any(e["type"] == "proxmox_sync.target_failed" for e in outbox(db))


def test_a_parked_user_is_not_retried_by_others_work_but_by_its_own_change_and_then_unparked(db, world):
    sync, sources, directory = world
    poisoned = person("dee", 10004, email="dée@exämple.test")
    sources.by_id[poisoned.user_id] = poisoned
    mark(sync, poisoned)
    sync.process("ldap", sources)
    assert status(db)["parked"][0]["attempts"] == 1

    sources.by_id["id-ada"] = replace(sources.by_id["id-ada"], status="suspended")
    mark(sync, sources.by_id["id-ada"])
    sync.process("ldap", sources)
    assert not directory.can_bind("ada")
    assert status(db)["parked"][0]["attempts"] == 1  # ada's run did not touch dee

    sources.by_id["id-dee"] = replace(poisoned, email="dee@example.test")  # fixed (a PATCH): an event marks dee
    mark(sync, sources.by_id["id-dee"])
    sync.process("ldap", sources)
    assert directory.can_bind("dee") and status(db)["parked"] == [] and status(db)["parked_count"] == 0
    assert [e["data"]["subject"] for e in outbox(db) if e["type"] == "proxmox_sync.subject_unparked"] == ["user:id-dee"]


def test_a_full_reconcile_retries_a_parked_user_skips_its_refusal_and_converges_the_rest(db, world):
    sync, sources, directory = world
    poisoned = person("dee", 10004, email="dée@exämple.test")
    sources.by_id[poisoned.user_id] = poisoned
    mark(sync, poisoned)
    sync.process("ldap", sources)

    del directory.entries[dn_key("uid=cyd,ou=people,dc=t")]  # drift
    sources.by_id["id-eve"] = person("eve", 10005)
    sync.enqueue([("ldap", None)])  # the periodic or a requested full reconcile
    sync.process("ldap", sources)
    assert directory.can_bind("cyd") and directory.can_bind("eve")
    seen = status(db)
    assert seen["state"] == "idle" and seen["last_run"]["mode"] == "full" and seen["last_run"]["error"] is None
    assert [(p["subject"], p["attempts"]) for p in seen["parked"]] == [("user:id-dee", 2)]  # retried, still refused

    sources.by_id["id-dee"] = replace(poisoned, email="dee@example.test")
    sync.enqueue([("ldap", None)])
    sync.process("ldap", sources)
    assert directory.can_bind("dee") and status(db)["parked"] == []


def test_a_removed_parked_user_is_unparked_by_its_removal(db, world):
    sync, sources, directory = world
    poisoned = person("dee", 10004, email="dée@exämple.test")
    sources.by_id[poisoned.user_id] = poisoned
    mark(sync, poisoned)
    sync.process("ldap", sources)
    del sources.by_id["id-dee"]
    mark(sync, poisoned)
    sync.process("ldap", sources)
    assert status(db)["parked"] == []


def test_a_directory_that_is_down_fails_the_whole_target_and_parks_nobody(db, world):
    sync, sources, directory = world
    directory.down = True
    mark(sync, sources.by_id["id-ada"])
    sync.process("ldap", sources)
    seen = status(db)
    assert seen["state"] == "failing" and seen["last_run"]["error"]["code"] == "unreachable"
    assert seen["parked"] == [] and pending(db) == {("ldap", "user:id-ada")}


def test_the_tenant_view_keeps_the_count_of_parked_subjects_but_not_their_names(db, world):
    from services.proxmox_sync.views import without_names as _without_names
    sync, sources, _ = world
    poisoned = person("dee", 10004, email="dée@exämple.test")
    sources.by_id[poisoned.user_id] = poisoned
    mark(sync, poisoned)
    sync.process("ldap", sources)
    seen = _without_names(status(db))
    assert seen["parked"] == [] and seen["parked_count"] == 1 and "dee" not in json.dumps(seen)


# --- the directory adapter: access first, refusals isolated ---------------------------------------


def test_revocations_go_before_renames_modifies_and_adds_and_a_refusal_stops_only_its_entry(monkeypatch):
    directory = Directory(SETTINGS, workers=1)
    written = []

    def write(conn, change, count):
        if change.dn.startswith("uid=bad,"):
            raise ldap_directory._refused(change.op, change.dn, {"result": 66, "description": "notAllowedOnNonLeaf"})
        written.append((change.op, change.dn))
        count()

    monkeypatch.setattr(directory, "_run", lambda work, retry=False: work(None))
    monkeypatch.setattr(directory, "_write", write)
    people = "ou=people,dc=t"
    changes = [
        LdapChange("add", f"uid=new,{people}", attributes={"uid": ("new",)}),
        LdapChange("rename", f"uid=bad,{people}", new_rdn="uid=bad2"),  # refused: the data modify of the
        LdapChange("modify", f"uid=bad2,{people}", modifications=(("replace", "cn", ("Bad",)),)),  # new DN waits
        LdapChange("modify", f"uid=pat,{people}", modifications=(("replace", "cn", ("Pat",)),)),
        LdapChange("rename", f"uid=old,{people}", new_rdn="uid=renamed"),
        LdapChange("modify", f"uid=renamed,{people}", modifications=(("replace", "shadowExpire", ("1",)),)),
        LdapChange("modify", "cn=ops,ou=groups,dc=t", modifications=(("delete", "memberUid", ("sus",)),),
                   kind="group"),
        LdapChange("modify", f"uid=sus,{people}", modifications=(("replace", "userPassword", ()),
                                                                 ("replace", "shadowExpire", ("1",)))),
    ]
    refused = []
    assert directory.apply(changes, refused=refused) == 6
    assert written == [("modify", f"uid=sus,{people}"), ("modify", "cn=ops,ou=groups,dc=t"),
                       ("rename", f"uid=old,{people}"), ("modify", f"uid=pat,{people}"),
                       ("modify", f"uid=renamed,{people}"), ("add", f"uid=new,{people}")]
    assert [(change.op, error["ldap_result"]) for change, error in refused] == [("rename", "notAllowedOnNonLeaf"),
                                                                                ("modify", "notAllowedOnNonLeaf")]
    with pytest.raises(EntryRefused):  # without isolation a refusal still ends the apply
        directory.apply(changes)


def test_a_persons_access_change_is_a_modify_of_its_own_in_the_revoke_phase():
    from services.proxmox_sync.ldap_plan import desired_person
    bob = person("bob", 10002)
    actual = desired_person(bob, SETTINGS, 5000)
    suspended = desired_person(replace(bob, status="suspended", email="bob@new.example.test"), SETTINGS, 5000)
    changes = ldap_plan._update(suspended, actual, "person")
    assert [sorted(name for _, name, _ in change.modifications) for change in changes] == [
        ["shadowExpire", "userPassword"], ["mail"]]
    assert [ldap_directory.phase_of(change, set()) for change in changes] == [("person", "revoke"),
                                                                              ("person", "modify")]
    plan = ldap_plan.plan_people({10002: replace(bob, status="suspended", email="bob@new.example.test")},
                                 {}, {actual.key: actual}, SETTINGS, 5000)
    assert [(change.op, sorted(name for _, name, _ in change.modifications)) for change in plan] == [
        ("modify", ["shadowExpire", "userPassword"]), ("modify", ["mail"])]
    # A group's modify and a person's data-only modify stay one change each.
    assert len(ldap_plan._update(desired_person(replace(bob, email="b@x.test"), SETTINGS, 5000), actual,
                                 "person")) == 1


def test_a_suspension_reaches_the_directory_though_the_users_new_mail_is_refused(db, world):
    sync, sources, directory = world
    sources.by_id["id-bob"] = replace(sources.by_id["id-bob"], status="suspended", email="böb@exämple.test")
    mark(sync, sources.by_id["id-bob"])
    sync.process("ldap", sources)

    assert not directory.can_bind("bob")  # the revoke went alone, first
    entry = directory.entries[dn_key("uid=bob,ou=people,dc=t")]
    assert entry.attributes["shadowExpire"] == ("1",) and entry.attributes["mail"] == ("bob@example.test",)
    seen = status(db)
    assert seen["state"] == "idle" and [p["subject"] for p in seen["parked"]] == ["user:id-bob"]  # for the mail


def test_a_refused_revoke_fails_the_directory_target_and_parks_no_one(db, world):
    sync, sources, directory = world
    directory.refuse_access.add("bob")
    sources.by_id["id-bob"] = replace(sources.by_id["id-bob"], status="suspended")
    mark(sync, sources.by_id["id-bob"])
    sync.process("ldap", sources)

    seen = status(db)
    assert seen["state"] == "failing" and seen["last_run"]["error"]["code"] == "ldap_error"
    assert "constraintViolation" in seen["last_run"]["error"]["message"]
    assert seen["parked"] == [] and seen["parked_count"] == 0
    assert pending(db) == {("ldap", "user:id-bob")}  # retried with backoff until access ends
    assert any(e["type"] == "proxmox_sync.target_failed" for e in outbox(db))
    assert not any(e["type"] == "proxmox_sync.subject_parked" for e in outbox(db))

    directory.refuse_access.clear()  # the directory takes it again: access ends
    with db.unit_of_work() as uow:
        storage.retry_now(uow.session, "ldap", engine.utc_now() - timedelta(minutes=1))
        uow.commit()
    sync.process("ldap", sources)
    assert not directory.can_bind("bob") and status(db)["state"] == "idle"


def test_a_refused_access_change_is_never_parked_while_access_lasts(monkeypatch):
    directory = Directory(SETTINGS, workers=1)
    refuse, written = set(), []  # refuse: (op, dn) the fake slapd refuses

    def write(conn, change, count):
        if (change.op, change.dn) in refuse or ("*", change.dn) in refuse:
            raise ldap_directory._refused(change.op, change.dn, {"result": 66, "description": "notAllowedOnNonLeaf"})
        written.append((change.op, change.dn, tuple(change.modifications)))
        count()

    monkeypatch.setattr(directory, "_run", lambda work, retry=False: work(None))
    monkeypatch.setattr(directory, "_write", write)
    people = "ou=people,dc=t"
    revoke = (("replace", "userPassword", ()), ("replace", "shadowExpire", ("1",)))

    # A refused revoke fails the apply: nothing parked.
    refuse.add(("*", f"uid=sus,{people}"))
    refused = []
    with pytest.raises(DirectoryUnavailable) as failure:
        directory.apply([LdapChange("modify", f"uid=sus,{people}", modifications=revoke)], refused=refused)
    assert not isinstance(failure.value, EntryRefused) and refused == []

    # A refused person delete: the entry stays, its password goes, then it is parked.
    refuse.add(("delete", f"uid=gone,{people}"))
    refused = []
    directory.apply([LdapChange("delete", f"uid=gone,{people}")], refused=refused)
    assert written == [("modify", f"uid=gone,{people}", (("replace", "userPassword", ()),))]
    assert [change.op for change, _ in refused] == ["delete"]
    refuse.add(("*", f"uid=gone,{people}"))  # ... and if that is refused too, the target fails
    with pytest.raises(DirectoryUnavailable):
        directory.apply([LdapChange("delete", f"uid=gone,{people}")], refused=[])

    # A revoke waiting on a refused rename is made where the entry still is.
    written.clear()
    refuse.add(("rename", f"uid=old,{people}"))
    refused = []
    directory.apply([LdapChange("rename", f"uid=old,{people}", new_rdn="uid=new"),
                     LdapChange("modify", f"uid=new,{people}", modifications=revoke),
                     LdapChange("modify", f"uid=new,{people}", modifications=(("replace", "mail", ("n@x.t",)),))],
                    refused=refused)
    assert written == [("modify", f"uid=old,{people}", revoke)]
    assert [change.op for change, _ in refused] == ["rename", "modify", "modify"]  # parked: access has ended
    refuse.add(("*", f"uid=old,{people}"))  # ... and if the old entry refuses it too, the target fails
    with pytest.raises(DirectoryUnavailable):
        directory.apply([LdapChange("rename", f"uid=old,{people}", new_rdn="uid=new"),
                         LdapChange("modify", f"uid=new,{people}", modifications=revoke)], refused=[])


def test_only_data_refusals_are_a_subjects_other_results_are_the_directorys():
    assert isinstance(ldap_directory._refused("add", "uid=x", {"result": 21, "description": "x"}), EntryRefused)
    for code in (50, 51, 52, 53, 80):  # no access, busy, unavailable, unwilling, other
        refusal = ldap_directory._refused("add", "uid=x", {"result": code, "description": "x"})
        assert not isinstance(refusal, EntryRefused) and refusal.code == "ldap_error"


# --- Proxmox VE: one user's refused change parks that user; the others converge --------------------


class FakePve:
    """Just enough of proxmoxer's API for pve.apply: refuses (HTTP 400) any user whose email has
    a non-ASCII character, as a Proxmox VE's parameter check would."""

    def __init__(self):
        self.users, self.acls, self.calls = {}, set(), []
        self.refuse_revokes: set[str] = set()  # userids whose disable and ACL deletes answer HTTP 400
        outer = self

        class Users:
            def post(self, userid, **fields):
                if not fields.get("email", "").isascii():
                    raise ResourceException(400, "Parameter verification failed.", "", {"email": "invalid format"})
                outer.calls.append(("create", userid))
                outer.users[userid] = fields

            def __call__(self, userid):
                class One:
                    def put(self, **fields):
                        if not fields.get("email", "").isascii():
                            raise ResourceException(400, "Parameter verification failed.", "",
                                                    {"email": "invalid format"})
                        if "enable" in fields and userid in outer.refuse_revokes:
                            raise ResourceException(400, "Parameter verification failed.", "", {"enable": "x"})
                        outer.calls.append(("update", userid))
                        outer.users[userid].update(fields)

                    def delete(self):
                        outer.calls.append(("delete", userid))
                        outer.users.pop(userid)
                return One()

        class Acl:
            def put(self, path, roles, propagate, users=None, groups=None, delete=0):
                if users and users not in outer.users or delete and users in outer.refuse_revokes:
                    raise ResourceException(400, "Parameter verification failed.", "", {"users": "no such user"})
                outer.calls.append(("acl", users))
                (outer.acls.discard if delete else outer.acls.add)((path, roles, users))

        self.access = type("Access", (), {"users": Users(), "acl": Acl(), "groups": None, "roles": None})()


def test_a_user_refused_by_a_proxmox_ve_is_parked_and_the_other_users_converge(db, monkeypatch):
    ada, bob, dee = person("ada", 10001), person("bob", 10002), person("dee", 10004, email="dée@exämple.test")
    sources = FakeSources([ada, bob, dee])
    api = FakePve()
    monkeypatch.setattr(pve, "session", lambda endpoint: contextlib.nullcontext(api))
    monkeypatch.setattr(pve, "read_state", lambda api_, realm: PveState(
        users={}, groups={"ldapusers": None}, roles={}, acls=frozenset()))
    monkeypatch.setattr(engine.pve_plan, "managed", lambda state, realm: PveState({}, {"ldapusers": _group()}, {},
                                                                                  frozenset()))
    sync = Engine(db, lambda: None)
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)

    assert {"ada@gh", "bob@gh"} <= set(api.users) and "dee@gh" not in api.users
    assert {users for _, _, users in api.acls} == {"ada@gh", "bob@gh"}
    seen = status(db, "pve:c1")
    assert seen["state"] == "idle" and seen["last_run"]["error"] is None
    assert [(p["subject"], p["label"], p["reason"]["code"]) for p in seen["parked"]] == [
        ("user:id-dee", "dee@gh", "proxmox_refused")]
    assert pending(db) == set()

    sources.by_id["id-dee"] = replace(dee, email="dee@example.test")
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)
    assert "dee@gh" in api.users and status(db, "pve:c1")["parked"] == []


def test_a_proxmox_ve_failure_that_is_not_a_subjects_fails_the_connection(db, monkeypatch):
    sources = FakeSources([person("ada", 10001)])
    api = FakePve()

    def broken(**fields):
        raise ResourceException(500, "Internal Server Error", "cfs lock timeout")

    api.access.users.post = broken
    monkeypatch.setattr(pve, "session", lambda endpoint: contextlib.nullcontext(api))
    monkeypatch.setattr(pve, "read_state", lambda api_, realm: None)
    monkeypatch.setattr(engine.pve_plan, "managed", lambda state, realm: PveState({}, {"ldapusers": _group()}, {},
                                                                                  frozenset()))
    sync = Engine(db, lambda: None)
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)
    seen = status(db, "pve:c1")
    assert seen["state"] == "failing" and seen["parked"] == [] and pending(db) == {("pve:c1", "full")}


def _pve_world(db, monkeypatch):
    """ada and bob mirrored to a fake Proxmox VE whose state is read back from what it took."""
    from services.proxmox_sync.pve_plan import AclEntry, PveUser
    sources = FakeSources([person("ada", 10001), person("bob", 10002)])
    api = FakePve()

    def managed(state, realm):
        users = {userid: PveUser(userid, f.get("firstname", ""), f.get("lastname", ""), f.get("email", ""),
                                 bool(int(f.get("enable", 1))), frozenset(filter(None, str(f.get("groups", "")).split(","))),
                                 f.get("comment", "")) for userid, f in api.users.items()}
        acls = frozenset(AclEntry(path, roles, users_, "user", True) for path, roles, users_ in api.acls)
        return PveState(users, {"ldapusers": _group()}, {}, acls)

    monkeypatch.setattr(pve, "session", lambda endpoint: contextlib.nullcontext(api))
    monkeypatch.setattr(pve, "read_state", lambda api_, realm: None)
    monkeypatch.setattr(engine.pve_plan, "managed", managed)
    sync = Engine(db, lambda: None)
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)
    assert api.users["bob@gh"]["enable"] == 1 and any(users == "bob@gh" for _, _, users in api.acls)
    return sync, sources, api


def test_a_proxmox_ve_suspension_goes_through_though_the_users_new_email_is_refused(db, monkeypatch):
    sync, sources, api = _pve_world(db, monkeypatch)
    sources.by_id["id-bob"] = replace(sources.by_id["id-bob"], status="suspended", email="böb@exämple.test")
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)

    assert api.users["bob@gh"]["enable"] == 0 and not any(users == "bob@gh" for _, _, users in api.acls)
    assert api.users["bob@gh"]["email"] == "bob@example.test"
    seen = status(db, "pve:c1")
    assert seen["state"] == "idle" and [p["subject"] for p in seen["parked"]] == ["user:id-bob"]  # the email


def test_a_proxmox_ve_refusing_a_disable_or_an_acl_delete_fails_the_connection_and_parks_no_one(db, monkeypatch):
    sync, sources, api = _pve_world(db, monkeypatch)
    api.refuse_revokes.add("bob@gh")
    sources.by_id["id-bob"] = replace(sources.by_id["id-bob"], status="suspended")
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)

    seen = status(db, "pve:c1")
    assert seen["state"] == "failing" and seen["parked"] == [] and seen["parked_count"] == 0
    assert "HTTP 400" in json.dumps(seen["last_run"]["error"])
    assert pending(db) == {("pve:c1", "full")}
    assert not any(e["type"] == "proxmox_sync.subject_parked" for e in outbox(db))


def test_a_proxmox_ve_users_enable_flag_is_an_update_of_its_own_before_its_data():
    from services.proxmox_sync import pve_plan
    from services.proxmox_sync.pve_plan import PveUser
    have = PveUser("bob@gh", "Bob", "T", "bob@example.test", True, frozenset(), "c")
    want = replace(have, enable=False, email="bob@new.test")
    changes = pve_plan.plan(PveState({"bob@gh": want}, {}, {}, frozenset()),
                            PveState({"bob@gh": have}, {}, {}, frozenset()))
    assert [(change.op, change.fields) for change in changes] == [("update", {"enable": False}),
                                                                   ("update", {"email": "bob@new.test"})]
    assert pve_plan.revokes(changes[0].describe()) and not pve_plan.revokes(changes[1].describe())
    assert pve_plan.revokes({"op": "delete", "kind": "acl", "key": "/ PVEAuditor user:bob@gh", "fields": {}})
    assert not pve_plan.revokes({"op": "create", "kind": "acl", "key": "/ PVEAuditor user:bob@gh", "fields": {}})


def _group():
    from services.proxmox_sync.pve_plan import PveGroup
    return PveGroup("ldapusers", f"{marker('gh')}: everyone")


def test_users_work_runs_before_a_waiting_full_reconcile_of_the_directory(db, monkeypatch):
    sync = Engine(db, lambda: SETTINGS)
    sync.enqueue([("ldap", None)])  # a full reconcile waits
    sync.enqueue([("ldap", None)], "user:id-bob", {"uid_number": 10002})  # then a suspension arrives
    runs = []
    monkeypatch.setattr(sync, "_converge", lambda target, mode, hints, sources: runs.append(
        (mode, sorted(hints))) or engine.Outcome())
    sync.process("ldap", sources=None)
    assert runs == [("targeted", ["user:id-bob"]), ("full", ["full"])]
    assert pending(db) == set()


def test_a_stream_of_users_work_does_not_starve_the_full_reconcile(db, monkeypatch):
    sync = Engine(db, lambda: SETTINGS)
    sync.enqueue([("ldap", None)])
    sync.enqueue([("ldap", None)], "user:id-a", {"uid_number": 10001})
    runs = []

    def converge(target, mode, hints, sources):
        runs.append((mode, sorted(hints)))
        if len(runs) < 5:
            sync.enqueue([("ldap", None)], f"user:id-{len(runs)}", {"uid_number": 20000 + len(runs)})
        return engine.Outcome()

    monkeypatch.setattr(sync, "_converge", converge)
    sync.process("ldap", sources=None)
    assert runs[0] == ("targeted", ["user:id-a"]) and runs[1][0] == "full" and "user:id-1" in runs[1][1]
    assert pending(db) == set()


def test_a_tenant_caller_sees_how_many_subjects_a_cluster_parked_but_not_who(db, monkeypatch):
    from services.proxmox_sync import targets
    sync, sources, api = _pve_world(db, monkeypatch)
    sources.by_id["id-root"] = person("root", 10009, email="röot@exämple.test")  # e.g. a super admin, mirrored
    sync.enqueue([("pve:c1", "t1")])
    sync.process("pve:c1", sources)

    def cluster(tenant_id):
        [item] = [item for item in targets.sync_status(db.unit_of_work(), True, tenant_id)["items"]
                  if item["target"] == "pve:c1"]
        return item

    seen = cluster("t1")
    assert seen["parked"] == [] and seen["parked_count"] == 1 and "root" not in json.dumps(seen)
    assert [p["subject"] for p in cluster(None)["parked"]] == ["user:id-root"]  # super admins: everything


def test_a_subject_longer_than_the_column_stays_parked_run_after_run(db):
    subject = "entry:" + "uid=x" * 100  # 506 characters: more than ParkedSubject.subject holds
    error = {"code": "ldap_refused", "message": "refused"}
    now = engine.utc_now()
    with db.unit_of_work() as uow:
        assert storage.park(uow.session, "ldap", subject, "x", error, now) is True
        uow.commit()
    for attempt in (2, 3):
        with db.unit_of_work() as uow:
            assert storage.park(uow.session, "ldap", subject, "x", error, now) is False  # already parked
            assert storage.unpark(uow.session, "ldap", None, keep={subject: {}}) == []  # still refused: kept
            assert storage.unpark(uow.session, "ldap", [subject], keep={subject: {}}) == []
            uow.commit()
        with db.unit_of_work() as uow:
            [row] = storage.parked_subjects(uow.session, "ldap").values()
            assert row.attempts == attempt and len(row.subject) == storage.SUBJECT_LENGTH
    with db.unit_of_work() as uow:  # covered without a refusal: unparked
        assert len(storage.unpark(uow.session, "ldap", [subject])) == 1
        uow.commit()
