"""What Gatehouse wants a Proxmox VE to hold for one connection, and the changes that get it there.

Pure: `desired_state` turns the tenant's members, their access, the groups and the custom
roles into users, groups, roles and ACL entries; `managed` keeps, of what Proxmox holds, the
part Gatehouse owns; `plan` lists the changes from one to the other. docs/proxmox.md states
the rules; the tables below are the mapping.

What Gatehouse owns on a Proxmox VE:
- users of the connection's realm whose comment starts with the marker (`MARKER (realm)`);
- groups whose comment starts with that marker;
- roles whose id starts with ROLE_PREFIX (the prefix is reserved for Gatehouse);
- every ACL entry of those users and groups.
Anything else (root@pam, hand-made users and groups, other realms, API tokens) is never
changed. A desired user or group whose id is taken by an object Gatehouse does not own is
a conflict: the plan reports it (op "conflict", which apply skips) and leaves it alone.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from services.proxmox_sync.domain import Access, CustomRole, Group, Person
from contracts import rbac

MARKER = "Gatehouse-managed"
ROLE_PREFIX = "GH_"
ADMINISTRATOR = "Administrator"

# Our permission -> the Proxmox VE 8 privileges it needs there. An empty tuple: the
# permission is about the platform itself (connections, tenants, sync, users, RBAC, audit,
# settings) and gives nothing on Proxmox; Gatehouse manages Proxmox's users and rights itself.
PRIVILEGES: dict[str, tuple[str, ...]] = {
    "vm.view": ("VM.Audit",),
    "vm.console": ("VM.Console",),
    "vm.start": ("VM.PowerMgmt",),
    "vm.stop": ("VM.PowerMgmt",),
    "vm.restart": ("VM.PowerMgmt",),
    "vm.create": ("VM.Allocate", "VM.Clone", "Datastore.AllocateSpace", "SDN.Use"),
    "vm.delete": ("VM.Allocate",),
    "vm.config": ("VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
                  "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "SDN.Use"),
    "vm.snapshot": ("VM.Snapshot", "VM.Snapshot.Rollback"),
    "vm.migrate": ("VM.Migrate",),
    "storage.view": ("Datastore.Audit",),
    "storage.manage": ("Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate"),
    "node.view": ("Sys.Audit",),
    "node.manage": ("Sys.Modify", "Sys.PowerMgmt", "Sys.Console", "Sys.Syslog"),
    "backup.view": ("Datastore.Audit",),
    "backup.create": ("VM.Backup", "Datastore.AllocateSpace"),
    "backup.restore": ("VM.Backup", "VM.Allocate", "Datastore.AllocateSpace"),
    "connection.view": (),
    "connection.manage": (),
    "tenant.view": (),
    "tenant.manage": (),
    "sync.view": (),
    "sync.run": (),
    "admin.users": (),
    "admin.rbac": (),
    "admin.audit": (),
    "admin.settings": (),
}

# Our built-in role -> Proxmox VE's built-in roles. The operator manages VMs and storage and
# sees everything (PVEAuditor adds Sys.Audit for nodes); node shell and system changes stay with
# admins (Sys.Modify and Sys.PowerMgmt are in no PVE* role, only Administrator).
BUILTIN_ROLES: dict[str, tuple[str, ...]] = {
    rbac.SUPER_ADMIN: (ADMINISTRATOR,),
    rbac.ADMIN: ("PVEAdmin",),
    rbac.OPERATOR: ("PVEVMAdmin", "PVEDatastoreAdmin", "PVEAuditor"),
    rbac.VIEWER: ("PVEAuditor",),
}

# Scope key -> the ACL path of one of its ids. Proxmox checks VM rights on /vms/<vmid>,
# storage rights on /storage/<id>, node rights on /nodes/<node>.
SCOPE_PATHS = {"nodes": "/nodes/{}", "storages": "/storage/{}", "vms": "/vms/{}"}

USER, GROUP, ROLE, ACL = "user", "group", "role", "acl"
CREATE, UPDATE, DELETE, CONFLICT = "create", "update", "delete", "conflict"


def marker(realm: str) -> str:
    """The comment prefix of the users and groups Gatehouse manages through this realm."""
    return f"{MARKER} ({realm})"


def role_id(name: str) -> str:
    """GH_<name>, with anything a Proxmox role id cannot hold ([A-Za-z0-9.-_]) made '_'."""
    return ROLE_PREFIX + re.sub(r"[^A-Za-z0-9.\-_]", "_", name)


def privileges_of(permissions) -> frozenset[str]:
    return frozenset(privilege for permission in permissions for privilege in PRIVILEGES.get(permission, ()))


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PveUser:
    userid: str  # name@realm
    firstname: str
    lastname: str
    email: str  # "" for none
    enable: bool
    groups: frozenset[str]  # read from Proxmox: every group it is in; desired: the managed ones
    comment: str


@dataclass(frozen=True)
class PveGroup:
    groupid: str
    comment: str  # members are the users' `groups`


@dataclass(frozen=True, order=True)
class AclEntry:
    path: str
    roleid: str
    ugid: str
    type: str  # "user" | "group"
    propagate: bool = True


@dataclass(frozen=True)
class PveState:
    users: dict  # userid -> PveUser
    groups: dict  # groupid -> PveGroup
    roles: dict  # roleid -> frozenset of privileges
    acls: frozenset  # of AclEntry
    # (kind, id) of the users and groups present that Gatehouse does not manage (`managed` fills
    # it): a desired object with such an id is a conflict, never taken over.
    foreign: frozenset = field(default_factory=frozenset)


@dataclass(frozen=True)
class PveChange:
    op: str  # create | update | delete | conflict
    kind: str  # user | group | role | acl
    key: str  # userid, groupid, roleid, or "path roleid type:ugid"
    fields: dict = field(default_factory=dict)  # what to send (create/update); why (conflict)

    def describe(self) -> dict:
        """For statuses and events: plain names and values, never a secret (none is ever here)."""
        fields = {name: sorted(value) if isinstance(value, (set, frozenset)) else value
                  for name, value in self.fields.items()}
        return {"op": self.op, "kind": self.kind, "key": self.key, "fields": fields}


# --- desired ------------------------------------------------------------------------------------


def desired_state(realm: str, connection_id: str, members: list[Person], access: dict[str, Access],
                  groups: list[Group], custom_roles: list[CustomRole], tenant_id: str | None = None) -> PveState:
    """What the Proxmox VE of `connection_id` (of the tenant `tenant_id`) should hold for the tenant's `members`.

    Every member is a user `<username>@<realm>`, disabled unless active. The tenant's groups and
    the platform-wide ones are mirrored (another tenant's never, whatever `groups` holds), each with
    its members among `members`. Every custom role is a GH_ role. Active members get ACL entries
    from their access (acl_entries); others none.
    """
    if tenant_id is not None:
        groups = [group for group in groups if group.seen_from(tenant_id)]
    userids = {person.user_id: f"{person.username}@{realm}" for person in members}
    memberships: dict[str, set[str]] = {user_id: set() for user_id in userids}
    for group in groups:
        for user_id in group.member_ids & memberships.keys():
            memberships[user_id].add(group.cn)
    roles = {role_id(role.name): privileges_of(role.permissions) for role in custom_roles}
    users, acls = {}, set()
    for person in members:
        userid = userids[person.user_id]
        users[userid] = PveUser(userid=userid, firstname=person.first_name, lastname=person.last_name,
                                email=person.email or "", enable=person.active,
                                groups=frozenset(memberships[person.user_id]), comment=marker(realm))
        if person.active and person.user_id in access:
            acls.update(acl_entries(userid, access[person.user_id], connection_id, roles))
    return PveState(users=users,
                    groups={group.cn: PveGroup(group.cn, _one_line(f"{marker(realm)}: {group.description}"))
                            for group in groups},
                    roles=roles, acls=frozenset(acls))


def acl_entries(userid: str, access: Access, connection_id: str, roles: dict) -> set[AclEntry]:
    """A member's rights as ACL entries: Administrator on / for a super admin; otherwise the
    Proxmox roles of their role on the paths of their scope, nothing when the scope leaves
    this connection out (or the role gives no Proxmox privilege)."""
    if access.super_admin:
        return {AclEntry("/", ADMINISTRATOR, userid, USER)}
    if (connections := access.scope.get("connections")) and connection_id not in connections:
        return set()
    pve_roles = BUILTIN_ROLES.get(access.role or "")
    if pve_roles is None:
        custom = role_id(access.role) if access.role else None
        pve_roles = (custom,) if roles.get(custom) else ()
    return {AclEntry(path, roleid, userid, USER) for roleid in pve_roles for path in acl_paths(access.scope)}


def acl_paths(scope: dict) -> list[str]:
    """The ACL paths of a scope: one per node, storage and VM it names; "/" when it narrows none."""
    paths = [template.format(value) for key, template in SCOPE_PATHS.items() for value in scope.get(key) or ()]
    return sorted(paths) or ["/"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- actual -------------------------------------------------------------------------------------


def managed(actual_full: PveState, realm: str) -> PveState:
    """The part of a Proxmox VE's state Gatehouse owns through `realm` (module docstring), with
    the ids of the users and groups it does not own in `foreign`.

    A managed user's `groups` keep every group it is in: plan changes only the managed ones.
    """
    prefix = marker(realm)
    users = {userid: user for userid, user in actual_full.users.items()
             if userid.endswith(f"@{realm}") and user.comment.startswith(prefix)}
    groups = {groupid: group for groupid, group in actual_full.groups.items() if group.comment.startswith(prefix)}
    foreign = {(USER, userid) for userid in actual_full.users.keys() - users.keys()}
    foreign |= {(GROUP, groupid) for groupid in actual_full.groups.keys() - groups.keys()}
    roles = {roleid: privs for roleid, privs in actual_full.roles.items() if roleid.startswith(ROLE_PREFIX)}
    return PveState(users=users, groups=groups, roles=roles,
                    acls=frozenset(entry for entry in actual_full.acls
                                   if (entry.type == USER and entry.ugid in users)
                                   or (entry.type == GROUP and entry.ugid in groups)),
                    foreign=frozenset(foreign))


# --- plan ---------------------------------------------------------------------------------------


# The order changes are applied in: access taken away first (ACL entries deleted: nothing
# depends on them), then what others refer to exists first (roles, groups, users, then ACLs);
# other deletes last, the users before the groups and roles they name.
_ORDER = {(CONFLICT, USER): 0, (CONFLICT, GROUP): 0, (DELETE, ACL): 0,
          (CREATE, ROLE): 1, (UPDATE, ROLE): 1, (CREATE, GROUP): 2, (UPDATE, GROUP): 2,
          (CREATE, USER): 3, (UPDATE, USER): 3, (CREATE, ACL): 4, (UPDATE, ACL): 4,
          (DELETE, USER): 6, (DELETE, GROUP): 7, (DELETE, ROLE): 8}


def ordered(changes) -> list[PveChange]:
    return sorted(changes, key=lambda change: (_ORDER[change.op, change.kind], change.key))


def revokes(change: dict) -> bool:
    """Whether a change (its describe()) takes access away: an ACL entry's delete, a user's
    disable or delete. Proxmox VE refusing one is never parked: the target fails and retries."""
    kind, op, fields = change["kind"], change["op"], change.get("fields") or {}
    if op == DELETE:
        return kind in (ACL, USER)
    return kind == USER and op == UPDATE and fields.get("enable") is False


def plan(desired: PveState, actual: PveState) -> list[PveChange]:
    """The changes that make `actual` (= managed(...)) what `desired` says, in apply order;
    empty when they agree. Conflicts come first, as op "conflict"."""
    desired, conflicts = _without_conflicts(desired, actual.foreign)
    managed_groups = desired.groups.keys() | actual.groups.keys()
    changes = list(conflicts)
    changes += _diff(ROLE, desired.roles, actual.roles, lambda privs: {"privs": privs},
                     lambda want, have: {"privs": want} if want != have else {})
    changes += _diff(GROUP, desired.groups, actual.groups, lambda group: {"comment": group.comment},
                     lambda want, have: {"comment": want.comment} if want.comment != have.comment else {})
    changes += _diff(USER, desired.users, actual.users, _user_fields,
                     lambda want, have: _user_update(want, have, managed_groups))
    changes += _diff(ACL, {_acl_key(e): e for e in desired.acls}, {_acl_key(e): e for e in actual.acls},
                     _acl_fields, lambda want, have: _acl_fields(want) if want.propagate != have.propagate else {})
    return ordered(changes)


def _without_conflicts(desired: PveState, foreign: frozenset) -> tuple[PveState, list[PveChange]]:
    """Desired minus the users and groups whose id Gatehouse does not own, and their conflicts."""
    users = {userid for userid in desired.users if (USER, userid) in foreign}
    groups = {groupid for groupid in desired.groups if (GROUP, groupid) in foreign}
    if not users and not groups:
        return desired, []
    conflicts = [PveChange(CONFLICT, USER, userid, {"reason": "a user with this id exists that Gatehouse does "
                                                              "not manage (no marker in its comment)"})
                 for userid in sorted(users)]
    conflicts += [PveChange(CONFLICT, GROUP, groupid, {"reason": "a group with this id exists that Gatehouse "
                                                                 "does not manage (no marker in its comment)"})
                  for groupid in sorted(groups)]
    kept = PveState(
        users={userid: dataclasses.replace(user, groups=user.groups - groups) for userid, user in desired.users.items()
               if userid not in users},
        groups={groupid: group for groupid, group in desired.groups.items() if groupid not in groups},
        roles=desired.roles,
        acls=frozenset(entry for entry in desired.acls
                       if entry.ugid not in (users if entry.type == USER else groups)))
    return kept, conflicts


def _diff(kind: str, desired: dict, actual: dict, create_fields, update_fields) -> list[PveChange]:
    changes = [PveChange(CREATE, kind, key, create_fields(value)) for key, value in desired.items()
               if key not in actual]
    for key in desired.keys() & actual.keys():
        if fields := update_fields(desired[key], actual[key]):
            if kind == USER and "enable" in fields and len(fields) > 1:
                # A user's enable flag goes in an update of its own, first: a refused email never
                # holds back a disable.
                changes.append(PveChange(UPDATE, kind, key, {"enable": fields.pop("enable")}))
            changes.append(PveChange(UPDATE, kind, key, fields))
    changes += [PveChange(DELETE, kind, key, _acl_fields(value) if kind == ACL else {})
                for key, value in actual.items() if key not in desired]
    return changes


def _user_fields(user: PveUser) -> dict:
    return {"firstname": user.firstname, "lastname": user.lastname, "email": user.email, "enable": user.enable,
            "groups": user.groups, "comment": user.comment}


def _user_update(want: PveUser, have: PveUser, managed_groups) -> dict:
    """The fields that differ. `groups` is the complete list to set: the desired managed groups
    and every group Gatehouse does not manage that the user is in (left as they are)."""
    fields = {name: value for name, value in _user_fields(want).items()
              if name != "groups" and getattr(have, name) != value}
    if want.groups != have.groups & managed_groups:
        fields["groups"] = want.groups | (have.groups - managed_groups)
    return fields


def _acl_key(entry: AclEntry) -> str:
    """Proxmox keys an entry by path, role and who; propagate is its value."""
    return f"{entry.path} {entry.roleid} {entry.type}:{entry.ugid}"


def _acl_fields(entry: AclEntry) -> dict:
    return {"path": entry.path, "roleid": entry.roleid, "ugid": entry.ugid, "type": entry.type,
            "propagate": entry.propagate}
