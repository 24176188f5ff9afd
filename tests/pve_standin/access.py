"""The stand-in's access control: users, groups, roles, ACLs and realms (/access/...).

It behaves like pve-access-control: refusals come as Proxmox words them (HTTP 500 with
"create user failed: user 'x@pve' already exists", "no such user ('x@pve')", ... and 400 with
per-parameter errors where Proxmox raises a parameter exception); built-in roles exist with
their privileges and cannot be changed; unknown privileges are refused; a user's realm must
exist; a user's `groups` set its memberships (all of them, or added with `append`); deleting a
user, group or role takes its ACL entries (and memberships) along.

The state lives in `standin.state.data["access"]` (an AccessWorld), guarded by its lock: the
server answers each request in its own thread. root@pam, and every account added with
`add_user`/`add_token`, exist as users.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field

from tests.pve_standin import BOOLEANS, LIST_SEPARATOR, Call, PveError, handler, parameter_error

# --- built-in roles -------------------------------------------------------------------------------

# Proxmox VE's privilege groups (PVE::AccessControl): a category's Admin role holds its admin,
# user and audit privileges, its User role the user and audit ones, PVEAuditor every audit one;
# "root" privileges are in no role but Administrator. Privileges the schema does not know
# (another Proxmox VE version) are left out.
PRIVILEGE_GROUPS = {
    "VM": {"root": [],
           "admin": ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
                     "VM.Config.HWType", "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.Migrate",
                     "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Replicate", "VM.Monitor",
                     "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite", "VM.GuestAgent.FileSystemMgmt",
                     "VM.GuestAgent.Unrestricted"],
           "user": ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt"],
           "audit": ["VM.Audit", "VM.GuestAgent.Audit"]},
    "Sys": {"root": ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"],
            "admin": ["Sys.Console", "Sys.Syslog"], "user": [], "audit": ["Sys.Audit"]},
    "Datastore": {"root": [], "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"],
                  "user": ["Datastore.AllocateSpace"], "audit": ["Datastore.Audit"]},
    "SDN": {"root": [], "admin": ["SDN.Allocate", "SDN.Audit"], "user": ["SDN.Use"], "audit": ["SDN.Audit"]},
    "User": {"root": ["Realm.Allocate"], "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
             "user": [], "audit": []},
    "Pool": {"root": [], "admin": ["Pool.Allocate"], "user": [], "audit": ["Pool.Audit"]},
    "Mapping": {"root": [], "admin": ["Mapping.Modify"], "user": ["Mapping.Use"], "audit": ["Mapping.Audit"]},
}


def builtin_roles(valid: frozenset[str]) -> dict[str, frozenset[str]]:
    roles: dict[str, set[str]] = {"NoAccess": set(), "Administrator": set(valid), "PVEAdmin": set(),
                                  "PVEAuditor": set(), "PVETemplateUser": {"VM.Clone", "VM.Audit"}}
    for category, group in PRIVILEGE_GROUPS.items():
        roles.setdefault(f"PVE{category}Admin", set()).update(group["admin"], group["user"], group["audit"])
        roles.setdefault(f"PVE{category}User", set()).update(group["user"], group["audit"])
        roles["PVEAdmin"].update(group["admin"], group["user"], group["audit"])
        roles["PVEAuditor"].update(group["audit"])
    return {roleid: frozenset(privs & valid) for roleid, privs in roles.items()}


def valid_privileges(schema) -> frozenset[str]:
    """Every privilege this Proxmox VE knows: the schema lists them as GET /access/roles/{roleid}'s answer."""
    return frozenset(schema.by_template["/access/roles/{roleid}"].info["GET"]["returns"]["properties"])


# --- realms ---------------------------------------------------------------------------------------

BUILTIN_REALMS = {"pam": {"type": "pam", "comment": "Linux PAM standard authentication"},
                  "pve": {"type": "pve", "comment": "Proxmox VE authentication server"}}
_COMMON = {"comment", "default", "tfa"}
_DIRECTORY = {"server1", "server2", "port", "mode", "secure", "sslversion", "verify", "capath", "cert", "certkey",
              "base_dn", "bind_dn", "password", "filter", "sync_attributes", "user_classes", "group_dn",
              "group_filter", "group_classes", "group_name_attr", "sync-defaults-options", "case-sensitive",
              "check-connection"}
# The options of each realm type, and those it cannot do without.
REALM_OPTIONS = {
    "pam": _COMMON, "pve": _COMMON,
    "ldap": _COMMON | _DIRECTORY | {"user_attr"},
    "ad": _COMMON | _DIRECTORY | {"domain"},
    "openid": _COMMON | {"issuer-url", "client-id", "client-key", "autocreate", "username-claim", "scopes", "prompt",
                         "acr-values", "query-userinfo", "groups-claim", "groups-autocreate", "groups-overwrite"},
}
REALM_REQUIRED = {"ldap": ("server1", "base_dn", "user_attr"), "ad": ("server1", "domain"),
                  "openid": ("issuer-url", "client-id")}
WRITE_ONLY = {"password", "check-connection"}  # kept in /etc/pve/priv, or only acted upon: never read back

# --- ACL paths (PVE::AccessControl::check_path) ------------------------------------------------------

_NAME = r"[A-Za-z0-9.\-_]+"
ACL_PATH = re.compile(rf"""^(/|/access|/access/groups|/access/groups/{_NAME}|/access/realm|/access/realm/{_NAME}
    |/mapping|/mapping/{_NAME}|/mapping/{_NAME}/{_NAME}|/nodes|/nodes/{_NAME}
    |/pool|/pool/{_NAME}(/{_NAME}){{0,2}}|/sdn|/sdn/zones|/sdn/zones/{_NAME}|/sdn/zones/{_NAME}/{_NAME}
    |/sdn/zones/{_NAME}/{_NAME}/[1-9][0-9]{{0,3}}|/storage|/storage/{_NAME}|/vms|/vms/[1-9][0-9]{{2,}})$""",
                      re.VERBOSE)


# --- the state ------------------------------------------------------------------------------------


@dataclass
class AccessWorld:
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: dict = field(default_factory=dict)  # userid -> {"enable", "expire", "firstname", ..., "groups": set}
    groups: dict = field(default_factory=dict)  # groupid -> {"comment"}
    roles: dict = field(default_factory=dict)  # custom roleid -> frozenset of privileges
    acl: dict = field(default_factory=dict)  # (path, type, ugid, roleid) -> propagate (0|1)
    realms: dict = field(default_factory=lambda: {realm: dict(config) for realm, config in BUILTIN_REALMS.items()})
    adopted: set = field(default_factory=set)  # accounts of add_user/add_token already made users
    builtin: dict = field(default_factory=dict)  # roleid -> privileges (read only)
    valid: frozenset = frozenset()


def world(pve) -> AccessWorld:
    """The access state of this stand-in, with the accounts it signs in made users (once each)."""
    access = pve.state.data.get("access")
    if access is None:
        valid = valid_privileges(pve.schema)
        access = pve.state.data.setdefault("access", AccessWorld(builtin=builtin_roles(valid), valid=valid))
    with access.lock:
        accounts = ["root@pam", *pve.state.passwords, *(token.partition("!")[0] for token in pve.state.tokens)]
        for userid in accounts:
            if userid not in access.adopted:
                access.adopted.add(userid)
                access.users.setdefault(userid, _new_user())
    return access


def _new_user() -> dict:
    return {"enable": 1, "expire": 0, "groups": set()}


def _failed(action: str, problem: str) -> PveError:
    """What Proxmox answers when a change dies inside its config lock: 500 "<action>: <problem>"."""
    return PveError(500, f"{action}: {problem}" if action else problem)


def _bool(value) -> bool:
    return value if isinstance(value, bool) else BOOLEANS.get(str(value).lower(), bool(value))


def _split(value) -> list[str]:
    return [item for item in LIST_SEPARATOR.split(str(value or "").strip()) if item]


def _set_text(target: dict, params: dict, names) -> None:
    """Proxmox keeps empty text fields as absent (user.cfg drops them on the next read)."""
    for name in names:
        if name in params:
            value = str(params[name])
            if value:
                target[name] = value
            else:
                target.pop(name, None)


# --- users ----------------------------------------------------------------------------------------

USER_TEXT = ("firstname", "lastname", "email", "comment", "keys")


def _user_entry(access: AccessWorld, pve, userid: str) -> dict:
    config = access.users[userid]
    entry = {key: value for key, value in config.items() if key != "groups"}
    entry["groups"] = sorted(config["groups"])
    entry["tokens"] = {token.partition("!")[2]: {"privsep": 1, "expire": 0}
                       for token in pve.state.tokens if token.partition("!")[0] == userid}
    return entry


def _user(access: AccessWorld, userid: str, action: str = "") -> dict:
    if userid not in access.users:
        raise _failed(action, f"no such user ('{userid}')")
    return access.users[userid]


def _set_groups(access: AccessWorld, config: dict, params: dict, action: str) -> None:
    if "groups" not in params:
        return
    wanted = _split(params["groups"])
    for groupid in wanted:
        if groupid not in access.groups:
            raise _failed(action, f"no such group '{groupid}'")
    if not _bool(params.get("append", False)):
        config["groups"] = set()
    config["groups"].update(wanted)


@handler("GET", "/access/users")
def list_users(pve, call: Call):
    access = world(pve)
    full = _bool(call.params.get("full", False))
    with access.lock:
        answer = []
        for userid in sorted(access.users):
            entry = _user_entry(access, pve, userid)
            if "enabled" in call.params and bool(entry["enable"]) != _bool(call.params["enabled"]):
                continue
            entry["userid"] = userid
            entry["realm-type"] = (access.realms.get(userid.rpartition("@")[2]) or {}).get("type", "pve")
            if full:
                entry["groups"] = ",".join(entry["groups"])
                entry["tokens"] = [{"tokenid": name, **token} for name, token in sorted(entry["tokens"].items())]
            else:
                del entry["groups"], entry["tokens"]
            answer.append(entry)
        return answer


@handler("POST", "/access/users")
def create_user(pve, call: Call):
    access, params, action = world(pve), call.params, "create user failed"
    userid = params["userid"]
    realm = userid.rpartition("@")[2]
    with access.lock:
        if userid in access.users:
            raise _failed(action, f"user '{userid}' already exists")
        if realm not in access.realms:
            raise _failed(action, f"domain '{realm}' does not exist")
        if "password" in params and access.realms[realm]["type"] != "pve":
            raise _failed(action, f"setting the password is not implemented for realm type "
                                  f"'{access.realms[realm]['type']}'")
        config = _new_user()
        _set_groups(access, config, params, action)
        config["enable"] = int(_bool(params.get("enable", True)))
        config["expire"] = int(params.get("expire", 0))
        _set_text(config, params, USER_TEXT)
        access.users[userid] = config
        if "password" in params:
            pve.state.passwords[userid] = params["password"]
    return None


@handler("GET", "/access/users/{userid}")
def read_user(pve, call: Call):
    access = world(pve)
    with access.lock:
        _user(access, call.params["userid"])
        return _user_entry(access, pve, call.params["userid"])


@handler("PUT", "/access/users/{userid}")
def update_user(pve, call: Call):
    access, params, action = world(pve), call.params, "update user failed"
    with access.lock:
        config = _user(access, params["userid"], action)
        changed = dict(config, groups=set(config["groups"]))  # all or nothing
        _set_groups(access, changed, params, action)
        if "enable" in params:
            changed["enable"] = int(_bool(params["enable"]))
        if "expire" in params:
            changed["expire"] = int(params["expire"])
        _set_text(changed, params, USER_TEXT)
        access.users[params["userid"]] = changed
    return None


@handler("DELETE", "/access/users/{userid}")
def delete_user(pve, call: Call):
    access, userid = world(pve), call.params["userid"]
    with access.lock:
        _user(access, userid, "delete user failed")
        del access.users[userid]
        _drop_acl(access, lambda path, kind, ugid, roleid: kind == "user" and ugid == userid)
        pve.state.passwords.pop(userid, None)
    return None


# --- groups ---------------------------------------------------------------------------------------


def _group(access: AccessWorld, groupid: str, action: str = "") -> dict:
    if groupid not in access.groups:
        raise _failed(action, f"group '{groupid}' does not exist")
    return access.groups[groupid]


def _members(access: AccessWorld, groupid: str) -> list[str]:
    return sorted(userid for userid, config in access.users.items() if groupid in config["groups"])


@handler("GET", "/access/groups")
def list_groups(pve, call: Call):
    access = world(pve)
    with access.lock:
        return [{"groupid": groupid, **config, "users": ",".join(_members(access, groupid))}
                for groupid, config in sorted(access.groups.items())]


@handler("POST", "/access/groups")
def create_group(pve, call: Call):
    access, groupid = world(pve), call.params["groupid"]
    with access.lock:
        if groupid in access.groups:
            raise _failed("create group failed", f"group '{groupid}' already exists")
        access.groups[groupid] = {}
        _set_text(access.groups[groupid], call.params, ("comment",))
    return None


@handler("GET", "/access/groups/{groupid}")
def read_group(pve, call: Call):
    access, groupid = world(pve), call.params["groupid"]
    with access.lock:
        return {**_group(access, groupid), "members": _members(access, groupid)}


@handler("PUT", "/access/groups/{groupid}")
def update_group(pve, call: Call):
    access = world(pve)
    with access.lock:
        _set_text(_group(access, call.params["groupid"], "update group failed"), call.params, ("comment",))
    return None


@handler("DELETE", "/access/groups/{groupid}")
def delete_group(pve, call: Call):
    access, groupid = world(pve), call.params["groupid"]
    with access.lock:
        _group(access, groupid, "delete group failed")
        del access.groups[groupid]
        for config in access.users.values():
            config["groups"].discard(groupid)
        _drop_acl(access, lambda path, kind, ugid, roleid: kind == "group" and ugid == groupid)
    return None


# --- roles ----------------------------------------------------------------------------------------


def _privileges(access: AccessWorld, value, action: str) -> set[str]:
    privileges = set(_split(value))
    for privilege in sorted(privileges):
        if privilege not in access.valid:
            raise _failed(action, f"invalid privilege '{privilege}'")
    return privileges


def _role(access: AccessWorld, roleid: str, action: str = "") -> frozenset:
    if roleid in access.builtin:
        return access.builtin[roleid]
    if roleid not in access.roles:
        raise _failed(action, f"role '{roleid}' does not exist")
    return access.roles[roleid]


@handler("GET", "/access/roles")
def list_roles(pve, call: Call):
    access = world(pve)
    with access.lock:
        every = [(roleid, privileges, 1) for roleid, privileges in access.builtin.items()]
        every += [(roleid, privileges, 0) for roleid, privileges in access.roles.items()]
        return [{"roleid": roleid, "privs": ",".join(sorted(privileges)), "special": special}
                for roleid, privileges, special in sorted(every)]


@handler("POST", "/access/roles")
def create_role(pve, call: Call):
    access, roleid, action = world(pve), call.params["roleid"], "create role failed"
    if roleid.upper().startswith("PVE"):
        raise parameter_error({"roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"})
    with access.lock:
        if roleid in access.builtin or roleid in access.roles:
            raise _failed(action, f"role '{roleid}' already exists")
        access.roles[roleid] = frozenset(_privileges(access, call.params.get("privs"), action))
    return None


@handler("GET", "/access/roles/{roleid}")
def read_role(pve, call: Call):
    access = world(pve)
    with access.lock:
        return {privilege: 1 for privilege in sorted(_role(access, call.params["roleid"]))}


@handler("PUT", "/access/roles/{roleid}")
def update_role(pve, call: Call):
    access, roleid, action = world(pve), call.params["roleid"], "update role failed"
    with access.lock:
        current = _role(access, roleid, action)
        if roleid in access.builtin:
            raise _failed(action, f"cannot modify built-in role '{roleid}'")
        privileges = _privileges(access, call.params.get("privs"), action)
        access.roles[roleid] = frozenset(privileges | current if _bool(call.params.get("append", False))
                                         else privileges)
    return None


@handler("DELETE", "/access/roles/{roleid}")
def delete_role(pve, call: Call):
    access, roleid, action = world(pve), call.params["roleid"], "delete role failed"
    with access.lock:
        _role(access, roleid, action)
        if roleid in access.builtin:
            raise _failed(action, f"cannot delete built-in role '{roleid}'")
        del access.roles[roleid]
        _drop_acl(access, lambda path, kind, ugid, role: role == roleid)
    return None


# --- ACLs -----------------------------------------------------------------------------------------


def normalize_path(path: str) -> str | None:
    path = "/" + "/".join(part for part in str(path).split("/") if part)
    return path if path.isprintable() else None


def _drop_acl(access: AccessWorld, matches) -> None:
    for key in [key for key in access.acl if matches(*key)]:
        del access.acl[key]


@handler("GET", "/access/acl")
def list_acl(pve, call: Call):
    access = world(pve)
    with access.lock:
        return [{"path": path, "type": kind, "ugid": ugid, "roleid": roleid, "propagate": propagate}
                for (path, kind, ugid, roleid), propagate in sorted(access.acl.items())]


@handler("PUT", "/access/acl")
def update_acl(pve, call: Call):
    access, params, action = world(pve), call.params, "ACL update failed"
    if not any(params.get(kind) for kind in ("users", "groups", "tokens")):
        raise parameter_error({kind: "either 'users', 'groups' or 'tokens' is required." for kind in
                               ("users", "groups", "tokens")})
    path = normalize_path(params["path"])
    if path is None or not ACL_PATH.match(path):
        raise parameter_error({"path": f"invalid ACL path '{params['path']}'"})
    propagate = int(_bool(params.get("propagate", True)))
    with access.lock:
        keys = []
        for roleid in _split(params["roles"]):
            _role(access, roleid, action)
            for kind, known, what in (("group", access.groups, "group"), ("user", access.users, "user"),
                                      ("token", pve.state.tokens, "token")):
                for ugid in _split(params.get(kind + "s")):
                    if ugid not in known:
                        raise _failed(action, f"{what} '{ugid}' does not exist")
                    keys.append((path, kind, ugid, roleid))
        for key in keys:  # checked first: all or nothing
            if _bool(params.get("delete", False)):
                access.acl.pop(key, None)
            else:
                access.acl[key] = propagate
    return None


# --- realms ---------------------------------------------------------------------------------------


def _realm(access: AccessWorld, realm: str, action: str = "") -> dict:
    if realm not in access.realms:
        raise _failed(action, f"domain '{realm}' does not exist")
    return access.realms[realm]


def _digest(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _realm_options(pve, kind: str, params: dict) -> dict:
    """The realm options among the call's parameters, typed as the schema says (GET answers
    integers and booleans as numbers); 400 for any option its type does not have."""
    options = {key: value for key, value in params.items() if key not in ("realm", "type", "delete", "digest")}
    if unexpected := sorted(set(options) - REALM_OPTIONS[kind]):
        raise parameter_error({key: f"unexpected property for realm type '{kind}'" for key in unexpected})
    properties = pve.schema.by_template["/access/domains"].info["POST"]["parameters"]["properties"]
    for key, value in options.items():
        kind_of = properties[key].get("type")
        if kind_of == "integer":
            options[key] = int(value)
        elif kind_of == "boolean":
            options[key] = int(_bool(value))
    return options


def realm_password(pve, realm: str) -> str | None:
    """The bind password a realm keeps (Proxmox VE: /etc/pve/priv/realm/<realm>.pw), which no call answers."""
    access = world(pve)
    with access.lock:
        return _realm(access, realm).get("password")


@handler("GET", "/access/domains")
def list_realms(pve, call: Call):
    access = world(pve)
    with access.lock:
        return [{"realm": realm, "type": config["type"],
                 **{key: config[key] for key in ("comment", "tfa") if key in config}}
                for realm, config in sorted(access.realms.items())]


@handler("POST", "/access/domains")
def create_realm(pve, call: Call):
    access, params, action = world(pve), call.params, "create auth server failed"
    kind, realm = params["type"], params["realm"]
    if kind in BUILTIN_REALMS:
        raise _failed(action, f"unable to create builtin type '{kind}'")
    options = _realm_options(pve, kind, params)
    if missing := [key for key in REALM_REQUIRED.get(kind, ()) if key not in options]:
        raise parameter_error({key: "property is missing and it is not optional" for key in missing})
    with access.lock:
        if realm in access.realms:
            raise _failed(action, f"domain '{realm}' already exists")
        access.realms[realm] = {"type": kind, **{key: value for key, value in options.items()
                                                 if key != "check-connection"}}
    return None


@handler("GET", "/access/domains/{realm}")
def read_realm(pve, call: Call):
    access = world(pve)
    with access.lock:
        config = {key: value for key, value in _realm(access, call.params["realm"]).items() if key not in WRITE_ONLY}
        return {**config, "digest": _digest(config)}


@handler("PUT", "/access/domains/{realm}")
def update_realm(pve, call: Call):
    access, params, action = world(pve), call.params, "update auth server failed"
    with access.lock:
        config = _realm(access, params["realm"], action)
        if "digest" in params and params["digest"] != _digest({k: v for k, v in config.items() if k not in WRITE_ONLY}):
            raise _failed(action, "detected modified configuration - file changed by other user? Try again.")
        options = _realm_options(pve, config["type"], params)
        changed = {key: value for key, value in config.items() if key not in _split(params.get("delete"))}
        changed.update((key, value) for key, value in options.items() if key != "check-connection")
        if missing := [key for key in REALM_REQUIRED.get(config["type"], ()) if key not in changed]:
            raise parameter_error({key: "property is missing and it is not optional" for key in missing})
        access.realms[params["realm"]] = changed
    return None


@handler("DELETE", "/access/domains/{realm}")
def delete_realm(pve, call: Call):
    access, realm, action = world(pve), call.params["realm"], "delete auth server failed"
    with access.lock:
        if _realm(access, realm, action)["type"] in BUILTIN_REALMS:
            raise _failed(action, f"cannot delete builtin realm '{realm}'")
        del access.realms[realm]
    return None
