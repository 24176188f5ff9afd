"""The directory's desired state and the changes that reach it: pure, no network.

Layout (docs/ldap.md): people are `uid=<username>,ou=people,<base>` (inetOrgPerson,
posixAccount, shadowAccount), groups `cn=<cn>,ou=groups,<base>` (posixGroup with memberUid).
The two subtrees are managed wholesale: every entry directly under them is ours, so an entry
the planner does not recognise there (no matching uidNumber, another structural class, a
group rbac does not know) is deleted by a full plan. Nothing outside them is touched.

Entries are compared canonically: attribute names case-insensitively, every attribute as a
set of values (LDAP values are unordered), objectClass ignoring `top`. Values themselves are
compared exactly, so a change of case in a name reaches the directory.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Literal

from ldap3.utils.dn import escape_rdn

from services.proxmox_sync.domain import Group, Person

PERSON_CLASSES = ("inetOrgPerson", "posixAccount", "shadowAccount")
GROUP_CLASSES = ("posixGroup",)
PERSON_STRUCTURAL, GROUP_STRUCTURAL = "inetOrgPerson", "posixGroup"
PASSWORD = "userPassword"
ARGON2_SCHEME = "{ARGON2}"
# shadowExpire counts days since 1970: day 1 is long past, so PAM refuses the account.
EXPIRED = "1"
# A person parked here while usernames are swapped (a cycle of renames).
PARKING_UID = "gatehouse-renaming-"

ATTRIBUTES = ("objectClass", "uid", "cn", "sn", "givenName", "mail", "uidNumber", "gidNumber", "homeDirectory",
              "loginShell", PASSWORD, "shadowExpire", "memberUid", "description")
# What lets a person authenticate: changed in a modify of its own, before anything else of the
# entry (ldap_directory's revoke phase), so a data change the directory refuses (a mail it
# finds malformed) never holds back a suspension or a new password.
ACCESS_ATTRIBUTES = frozenset({PASSWORD, "shadowExpire"})
CANONICAL_ATTRIBUTE = {name.lower(): name for name in ATTRIBUTES}
CANONICAL_CLASS = {name.lower(): name for name in (*PERSON_CLASSES, *GROUP_CLASSES)}
IGNORED_CLASSES = frozenset({"top"})

Op = Literal["add", "modify", "delete", "rename"]
# A modification: (action, attribute, values); action "replace" (no values: remove the attribute),
# "add" or "delete" single values (targeted memberUid updates).
Modification = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class LdapSettings:
    url: str
    bind_dn: str
    password: str = field(repr=False)
    base_dn: str
    start_tls: bool = False
    login_shell: str = "/bin/bash"
    primary_group: str = "ldapusers"
    ca_pem: str | None = field(default=None, repr=False)
    verify_tls: bool = True

    @property
    def people_dn(self) -> str:
        return f"ou=people,{self.base_dn}"

    @property
    def groups_dn(self) -> str:
        return f"ou=groups,{self.base_dn}"


_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def dn_key(dn: str) -> str:
    """A DN's comparison key: attribute types and values lowercased, spaces around separators gone."""
    if " " not in dn and "\\" not in dn:
        return dn.lower()  # the common case, ten times faster
    parts = []
    for rdn in _UNESCAPED_COMMA.split(dn):
        attribute, _, value = rdn.partition("=")
        parts.append(f"{attribute.strip().lower()}={value.strip().lower()}")
    return ",".join(parts)


def parent_key(dn: str) -> str:
    return dn_key(dn).split(",", 1)[1] if "," in dn else ""


def _normalize(attributes: dict[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    normalized: dict[str, tuple[str, ...]] = {}
    for name, values in attributes.items():
        name = CANONICAL_ATTRIBUTE.get(name.lower()) or name.lower()
        if values is None:
            continue
        if isinstance(values, (str, int)):
            values = {str(values)}
        else:
            values = {str(value) for value in values if value is not None}
        values.discard("")
        if name == "objectClass":
            values = {CANONICAL_CLASS.get(value.lower()) or value.lower() for value in values} - IGNORED_CLASSES
        if values:
            normalized[name] = tuple(sorted(values)) if len(values) > 1 else tuple(values)
    return normalized


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict[str, tuple[str, ...]]  # canonical names; sorted values; objectClass included

    @classmethod
    def of(cls, dn: str, attributes: dict[str, Iterable[str]]) -> Entry:
        """An entry with canonical attribute names and values (desired or read from the directory)."""
        return cls(dn, _normalize(attributes))

    @property
    def key(self) -> str:
        return dn_key(self.dn)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else None

    @property
    def uid_number(self) -> int | None:
        value = self.first("uidNumber")
        return int(value) if value and value.isdigit() else None

    def __repr__(self) -> str:  # never a password hash in a log or a test report
        shown = {name: ("***",) if name == PASSWORD else values for name, values in self.attributes.items()}
        return f"Entry({self.dn!r}, {shown!r})"


@dataclass(frozen=True)
class LdapChange:
    op: Op
    dn: str
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # add: the whole entry
    modifications: tuple[Modification, ...] = ()  # modify
    new_rdn: str | None = None  # rename: the entry keeps its parent, drops its old RDN value
    kind: Literal["person", "group"] = "person"

    @property
    def new_dn(self) -> str | None:
        return f"{self.new_rdn},{self.dn.split(',', 1)[1]}" if self.new_rdn else None

    def describe(self) -> dict:
        """What changes, by attribute name only: never a value (userPassword's least of all)."""
        if self.op == "add":
            names = sorted(self.attributes)
        else:
            names = sorted({name for _, name, _ in self.modifications})
        described = {"op": self.op, "dn": self.dn, "attributes": names}
        if self.op == "rename":
            described["new_dn"] = self.new_dn
        return described

    def __repr__(self) -> str:
        return f"LdapChange({self.describe()!r})"


# --- desired state

def _person_dn(username: str, settings: LdapSettings) -> str:
    return f"uid={escape_rdn(username)},{settings.people_dn}"


person_dn = _person_dn


def rdn_value(dn: str) -> str:
    """The value of a DN's first RDN, unescaped enough to name it (cn=ops,... -> ops)."""
    first = _UNESCAPED_COMMA.split(dn, 1)[0]
    return first.partition("=")[2].strip().replace("\\", "")


def _group_dn(cn: str, settings: LdapSettings) -> str:
    return f"cn={escape_rdn(cn)},{settings.groups_dn}"


def desired_person(person: Person, settings: LdapSettings, primary_gid: int) -> Entry:
    """A user's entry. Inactive users keep their entry (stable uidNumber) but cannot authenticate:
    no userPassword, and shadowExpire=1 so PAM refuses the account too."""
    full_name = " ".join(part for part in (person.first_name, person.last_name) if part) or person.username
    attributes = {
        "objectClass": PERSON_CLASSES, "uid": person.username, "cn": full_name,
        "sn": person.last_name or person.username, "givenName": person.first_name, "mail": person.email,
        "uidNumber": str(person.uid_number), "gidNumber": str(primary_gid),
        "homeDirectory": f"/home/{person.username}", "loginShell": settings.login_shell,
    }
    if person.active:
        # slapd's argon2 module verifies the platform's own argon2id hash: no clear password anywhere.
        if person.password_hash and person.password_hash.startswith("$argon2"):
            attributes[PASSWORD] = ARGON2_SCHEME + person.password_hash
    else:
        attributes["shadowExpire"] = EXPIRED
    return Entry.of(_person_dn(person.username, settings), attributes)


def desired_group(group: Group, members_by_id: dict[str, Person], settings: LdapSettings) -> Entry:
    """A posixGroup listing its ACTIVE members' usernames."""
    members = [members_by_id[user_id].username for user_id in group.member_ids
               if user_id in members_by_id and members_by_id[user_id].active]
    return Entry.of(_group_dn(group.cn, settings), {
        "objectClass": GROUP_CLASSES, "cn": group.cn, "gidNumber": str(group.gid_number),
        "description": group.description, "memberUid": sorted(members)})


def primary_gid_of(groups: list[Group], settings: LdapSettings) -> int:
    for group in groups:
        if group.cn == settings.primary_group:
            return group.gid_number
    raise ValueError(f"the primary group {settings.primary_group!r} is not among the groups")


# --- comparing

def _modifications(desired: Entry, actual: Entry) -> tuple[Modification, ...]:
    """Replace exactly the attributes whose value sets differ (an attribute we do not set is removed)."""
    names = sorted(set(desired.attributes) | set(actual.attributes))
    return tuple(("replace", name, desired.attributes.get(name, ())) for name in names
                 if desired.attributes.get(name, ()) != actual.attributes.get(name, ()))


def _update(desired: Entry, actual: Entry, kind: str) -> list[LdapChange]:
    """The modifies that make `actual` `desired`. A person's access attributes (and objectClass,
    which shadowExpire needs) go in a modify of their own, listed first; the rest in another."""
    modifications = _modifications(desired, actual)
    if not modifications:
        return []
    if kind != "person" or not any(name in ACCESS_ATTRIBUTES for _, name, _ in modifications):
        return [LdapChange("modify", desired.dn, modifications=modifications, kind=kind)]
    access = tuple(mod for mod in modifications if mod[1] in ACCESS_ATTRIBUTES or mod[1] == "objectClass")
    data = tuple(mod for mod in modifications if mod not in access)
    return [LdapChange("modify", desired.dn, modifications=mods, kind=kind) for mods in (access, data) if mods]


def is_access_change(change: LdapChange) -> bool:
    """A change that can end a person's access: its deletion or a modify of its access attributes.
    The directory refusing one is never one subject's problem to park: access must not outlive it."""
    if change.kind != "person":
        return False
    if change.op == "delete":
        return True
    return change.op == "modify" and any(name in ACCESS_ATTRIBUTES for _, name, _ in change.modifications)


def _structural_ok(actual: Entry, structural: str) -> bool:
    """A structural class cannot be changed by a modify: such an entry is replaced instead."""
    return structural in actual.attributes.get("objectClass", ())


def _add(entry: Entry, kind: str) -> LdapChange:
    return LdapChange("add", entry.dn, attributes=entry.attributes, kind=kind)


def _delete(entry: Entry, kind: str) -> LdapChange:
    return LdapChange("delete", entry.dn, kind=kind)


def _with_rdn(entry: Entry, dn: str, rdn_value: str) -> Entry:
    """The entry as it reads after a rename that dropped its old RDN value."""
    return Entry(dn, {**entry.attributes, "uid": (rdn_value,)})


def _plan_person_entries(desired: dict[int, Entry], actual: dict[str, Entry], removed: Iterable[int],
                         wholesale: bool) -> list[LdapChange]:
    """People: delete, rename (moved by uidNumber), modify, add.

    wholesale: every actual entry no desired person claims is deleted (full plan); otherwise only
    those of `removed` uidNumbers, duplicates and entries sitting on a wanted DN (targeted plan).
    """
    by_uid_number: dict[int, list[str]] = defaultdict(list)
    for key, entry in sorted(actual.items()):
        if entry.uid_number is not None and _structural_ok(entry, PERSON_STRUCTURAL):
            by_uid_number[entry.uid_number].append(key)
    claimed: set[str] = set()
    changes: list[LdapChange] = []
    moves: list[tuple[Entry, Entry]] = []  # (actual, desired)
    for uid_number, entry in sorted(desired.items()):
        keys = by_uid_number.get(uid_number, [])
        source = entry.key if entry.key in keys else (keys[0] if keys else None)
        if source is None:
            changes.append(_add(entry, "person"))
            continue
        claimed.add(source)
        if source == entry.key:
            changes += _update(entry, actual[source], "person")
        else:
            moves.append((actual[source], entry))
    removed = set(removed)
    wanted = {entry.key for entry in desired.values()}
    deletes = [_delete(entry, "person") for key, entry in sorted(actual.items()) if key not in claimed and (
        wholesale or key in wanted or entry.uid_number in removed or entry.uid_number in desired)]
    renames = _order_renames(moves)
    updates = []
    for before, entry in moves:
        updates += _update(entry, _with_rdn(before, entry.dn, entry.first("uid")), "person")
    return deletes + renames + updates + changes


def _order_renames(moves: list[tuple[Entry, Entry]]) -> list[LdapChange]:
    """Renames in an order where each target DN is free; a cycle (swapped usernames) goes through
    a parking name."""
    pending = {before.key: (before.dn, entry) for before, entry in moves}
    ordered: list[LdapChange] = []
    while pending:
        ready = [key for key, (_, entry) in pending.items() if entry.key not in pending]
        if not ready:
            key = min(pending)
            source, entry = pending.pop(key)
            park = LdapChange("rename", source, new_rdn=f"uid={PARKING_UID}{entry.uid_number}")
            ordered.append(park)
            pending[dn_key(park.new_dn)] = (park.new_dn, entry)
            continue
        for key in sorted(ready):
            source, entry = pending.pop(key)
            ordered.append(LdapChange("rename", source, new_rdn=entry.dn.split(",", 1)[0]))
    return ordered


def _split(actual: dict[str, Entry], settings: LdapSettings) -> tuple[dict[str, Entry], dict[str, Entry]]:
    people_key, groups_key = dn_key(settings.people_dn), dn_key(settings.groups_dn)
    people = {key: entry for key, entry in actual.items() if parent_key(entry.dn) == people_key}
    groups = {key: entry for key, entry in actual.items() if parent_key(entry.dn) == groups_key}
    return people, groups


# --- plans

def plan_full(people: list[Person], groups: list[Group], actual: dict[str, Entry],
              settings: LdapSettings) -> list[LdapChange]:
    """Everything under ou=people and ou=groups made equal to the desired state.

    actual: every entry directly under both subtrees, keyed by dn_key (lowercased DN). The primary
    group (settings.primary_group) must be among `groups`: its gidNumber is every person's.
    """
    primary_gid = primary_gid_of(groups, settings)
    desired_people = {person.uid_number: desired_person(person, settings, primary_gid) for person in people}
    actual_people, actual_groups = _split(actual, settings)
    changes = _plan_person_entries(desired_people, actual_people, (), wholesale=True)
    by_id = {person.user_id: person for person in people}
    desired_groups = {entry.key: entry for entry in (desired_group(group, by_id, settings) for group in groups)}
    for key, entry in sorted(actual_groups.items()):
        if key not in desired_groups or not _structural_ok(entry, GROUP_STRUCTURAL):
            changes.append(_delete(entry, "group"))
    for key, entry in sorted(desired_groups.items()):
        current = actual_groups.get(key)
        if current is not None and _structural_ok(current, GROUP_STRUCTURAL):
            changes += _update(entry, current, "group")
        else:
            changes.append(_add(entry, "group"))
    return changes


def plan_people(people: dict[int, Person | None], groups_of: dict[int, set[str]], actual: dict[str, Entry],
                settings: LdapSettings, primary_gid: int) -> list[LdapChange]:
    """Only these people (by uidNumber; None = removed) and their own memberUid values.

    groups_of[uid_number]: cns of the groups the person should be listed in (ignored unless active).
    actual: the people entries with these uidNumbers or usernames, and the group entries that list
    them or should. Other members of a group are never rewritten (ldapusers may hold thousands):
    memberUid values are added and deleted one by one. A group missing from `actual` is left to
    the full plan, as is a removed person's membership when their entry is already gone (no
    username to look for).
    """
    actual_people, actual_groups = _split(actual, settings)
    desired = {uid_number: desired_person(person, settings, primary_gid)
               for uid_number, person in people.items() if person is not None}
    removed = [uid_number for uid_number, person in people.items() if person is None]
    changes = _plan_person_entries(desired, actual_people, removed, wholesale=False)

    # Every name these people go or went by (an entry's uid before a rename, a removed user's).
    names = {person.username for person in people.values() if person is not None}
    names |= {entry.first("uid") for entry in actual_people.values()
              if entry.uid_number in people and entry.first("uid")}
    listed: dict[str, set[str]] = defaultdict(set)  # group key -> usernames that belong there
    for uid_number, person in people.items():
        if person is not None and person.active:
            for cn in groups_of.get(uid_number, ()):
                listed[dn_key(_group_dn(cn, settings))].add(person.username)
    for key, group in sorted(actual_groups.items()):
        present = set(group.attributes.get("memberUid", ()))
        to_add = listed.get(key, set()) - present
        to_delete = (present & names) - listed.get(key, set())
        modifications = tuple(mod for mod in (("delete", "memberUid", tuple(sorted(to_delete))),
                                              ("add", "memberUid", tuple(sorted(to_add)))) if mod[2])
        if modifications:
            changes.append(LdapChange("modify", group.dn, modifications=modifications, kind="group"))
    return changes
