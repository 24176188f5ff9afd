"""Property-based authority (hypothesis, docs/security.md), through the real gateway: actors (a super admin,
tenant admins, operators, viewers, custom roles with random permission subsets, members of one or two
tenants) × targets (super admins, the first admin, users of every kind in one or two tenants) × every
account-changing route and every settings route. An action succeeds only if the rule allows it.

The expectation comes from a small model written here, not from the services' code:
- settings: super admins only;
- on an account: the route's own permission in the active tenant (admin.users; admin.rbac for roles and
  groups; super admins for the 2FA actions), and the actor's rights cover the target's in every tenant
  the target belongs to (never a super admin unless the actor is one; admin.users and every permission
  the target holds, in each of the target's tenants), and granting `viewer` needs its permissions.
Bounded: few examples, no deadline, no shrinking (a failure prints its example); targets are made afresh
per example (an allowed action may remove them), actors are reused.
"""
import uuid

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.harness import eventually
from tests.integration.test_isolation import switched, user_in
from tests.integration.test_rbac import assign
from tests.integration.test_tenancy import DEFAULT, member, new_tenant, role_becomes

# The catalogue and the built-in roles, restated (the model does not read the services' code).
CATALOGUE = frozenset({
    "vm.view", "vm.console", "vm.start", "vm.stop", "vm.restart", "vm.create", "vm.delete", "vm.config",
    "vm.snapshot", "vm.migrate", "storage.view", "storage.manage", "node.view", "node.manage", "backup.view",
    "backup.create", "backup.restore", "connection.view", "connection.manage", "tenant.view", "tenant.manage",
    "sync.view", "sync.run", "admin.users", "admin.rbac", "admin.audit", "admin.settings"})
VIEWS = frozenset(p for p in CATALOGUE if p.endswith(".view"))
ROLE_RIGHTS = {
    "admin": CATALOGUE - {"tenant.manage", "admin.settings"},
    "operator": CATALOGUE - {"tenant.manage", "admin.users", "admin.rbac", "admin.settings"},
    "viewer": VIEWS,
}
GRANTABLE = sorted(CATALOGUE - {"admin.settings"})  # what a custom role may hold

ACCOUNT_ROUTES = ("patch_name", "patch_email", "suspend", "remove", "reset_random", "reset_email", "end_sessions",
                  "unlock", "require_2fa", "cancel_2fa", "disable_2fa", "assign_role", "add_group", "add_tenant")
SAFE_ON_FIRST_ADMIN = ("patch_name", "suspend", "remove", "unlock")  # never lock the shared platform's root out
SETTINGS_ROUTES = ("get_smtp", "put_smtp", "get_policy", "put_policy", "put_2fa_policy", "get_ldap",
                   "enable_tenancy")
SUPER_ONLY_ROUTES = ("require_2fa", "cancel_2fa", "disable_2fa")
RBAC_ROUTES = ("assign_role", "add_group")
# What an allowed action answers (cancel/disable 2FA: 409 when there is nothing to cancel, past the checks).
ALLOWED = {"patch_name": {200}, "patch_email": {200}, "suspend": {200}, "remove": {204}, "reset_random": {200},
           "reset_email": {202}, "end_sessions": {204}, "unlock": {204}, "require_2fa": {200},
           "cancel_2fa": {204, 409}, "disable_2fa": {204, 409}, "assign_role": {200}, "add_group": {201},
           "add_tenant": {200, 201}}
TENANTS = 3  # default, one, two


# --- the model --------------------------------------------------------------------------------------------


class Person:
    """kind: super, admin, operator, viewer, custom or first (the first admin); homes: tenant indexes."""

    def __init__(self, kind, homes=(0,), permissions=frozenset()):
        self.kind, self.homes, self.permissions = kind, tuple(homes), frozenset(permissions)
        self.user = self.api = None

    @property
    def is_super(self):
        return self.kind in ("super", "first")

    def rights(self, tenant) -> frozenset:
        if self.is_super:
            return CATALOGUE
        if tenant not in self.homes:
            return frozenset()
        return self.permissions if self.kind == "custom" else ROLE_RIGHTS[self.kind]

    def __repr__(self):
        return f"{self.kind}{list(self.homes)}{sorted(self.permissions) if self.kind == 'custom' else ''}"


def rule_allows(actor: Person, target: Person, extra=()) -> bool:
    if actor.is_super:
        return True
    if target.is_super:
        return False
    return all("admin.users" in actor.rights(t) and target.rights(t) <= actor.rights(t)
               for t in set(target.homes) | set(extra))


def active_tenant(actor: Person, target: Person | None) -> int:
    """Where the actor works: a tenant of the target they share (administered first), else their first."""
    if target is None:
        return actor.homes[0]
    if actor.is_super:
        return target.homes[0]
    shared = [t for t in actor.homes if t in target.homes]
    shared.sort(key=lambda t: "admin.users" not in actor.rights(t))
    return shared[0] if shared else actor.homes[0]


def joining_tenant(actor: Person, target: Person) -> int:
    """The tenant add_tenant brings the target into: one of the actor's the target is not in, if any."""
    return next((t for t in actor.homes if t not in target.homes), active_tenant(actor, target))


def expected_allowed(route, actor: Person, target: Person | None) -> bool:
    if route in SETTINGS_ROUTES:
        return actor.is_super
    here = active_tenant(actor, target)
    if route in SUPER_ONLY_ROUTES:
        return actor.is_super
    if route == "add_tenant":
        joining = joining_tenant(actor, target)
        return ("admin.users" in actor.rights(joining) and VIEWS <= actor.rights(joining)
                and rule_allows(actor, target, (joining,)))
    if here not in target.homes and not actor.is_super:
        return False  # not visible in the active tenant
    if route in RBAC_ROUTES:
        if "admin.rbac" not in actor.rights(here):
            return False
        if route == "assign_role":
            return VIEWS <= actor.rights(here) and rule_allows(actor, target, (here,))
        return rule_allows(actor, target)
    return "admin.users" in actor.rights(here) and rule_allows(actor, target)


# --- the world --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def world(platform, root, mailbox):
    tag = uuid.uuid4().hex[:6]
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    tenants = [DEFAULT, new_tenant(root, f"Auth P {tag} 1")["id"], new_tenant(root, f"Auth P {tag} 2")["id"]]
    groups = []  # one per tenant: groups belong to a tenant
    for index, tenant in enumerate(tenants):
        switched(root, tenant)
        try:
            group = root.post("/api/v1/groups", json={"cn": f"ap_{tag}_{index}", "description": "authority property"})
        finally:
            switched(root, DEFAULT)
        assert group.status_code == 201, group.text
        groups.append(group.json()["id"])
    first = Person("first")
    first.user = root.get("/api/v1/me").json()
    first.user = root.get(f"/api/v1/users/{first.user['id']}").json()
    first.api = root
    return {"tag": tag, "tenants": tenants, "groups": groups, "actors": {}, "first": first,
            "mailbox": mailbox, "count": [0]}


def fresh_name(world, prefix) -> str:
    world["count"][0] += 1
    return f"{prefix}{world['tag']}{world['count'][0]}"


def role_for(root, world, person: Person) -> str:
    if person.kind != "custom":
        return person.kind
    name = f"ap-{world['tag']}-{world['count'][0]}"
    created = root.post("/api/v1/roles", json={"name": name, "permissions": sorted(person.permissions),
                                               "description": "", "global": True})
    assert created.status_code == 201, created.text
    return name


def make_target(platform, root, world, person: Person) -> Person:
    """A fresh account as the person describes: created by the super admin in its first tenant, then
    assigned to the second one (waiting until rbac and identity both know)."""
    tenants = world["tenants"]
    name = fresh_name(world, "apt")
    role = None if person.kind == "super" else role_for(root, world, person)
    switched(root, tenants[person.homes[0]])
    try:
        body = {"username": name, "email": f"{name}@example.com", "first_name": "Prop", "last_name": "Target"}
        created = root.post("/api/v1/users", json={**body, **({"role": role} if role else {})})
        assert created.status_code == 201, created.text
    finally:
        switched(root, DEFAULT)
    person.user = created.json()["user"]
    if person.kind == "super":
        assert assign(root, person.user["id"], "super_admin").status_code == 200
        role_becomes(root, person.user["id"], DEFAULT, "super_admin")
    for extra in person.homes[1:]:
        assert member(root, tenants[extra], person.user["id"], role).status_code == 201
        role_becomes(root, person.user["id"], tenants[extra], role)
        eventually(lambda: any(u["id"] == person.user["id"] for u in root.get(
            "/api/v1/users", params={"tenant": tenants[extra], "q": name}).json()["items"]), 20, 0.2,
            "identity knows the membership")
    return person


def actor_for(platform, root, world, person: Person) -> Person:
    """A signed-in actor; built-in ones are reused across examples (no action ever targets an actor)."""
    key = (person.kind, person.homes, person.permissions)
    if key in world["actors"]:
        return world["actors"][key]
    tenants = world["tenants"]
    name = fresh_name(world, "apa")
    if person.kind == "super":
        person.user, person.api = user_in(platform, root, DEFAULT, name, "viewer")
        assert assign(root, person.user["id"], "super_admin").status_code == 200
        eventually(lambda: person.api.get("/api/v1/me/permissions").json()["super_admin"], 20, 0.2, "super")
    else:
        role = role_for(root, world, person)
        person.user, person.api = user_in(platform, root, tenants[person.homes[0]], name, role)
        for extra in person.homes[1:]:
            assert member(root, tenants[extra], person.user["id"], role).status_code == 201
            role_becomes(root, person.user["id"], tenants[extra], role)
    if person.kind != "custom":
        world["actors"][key] = person
    return person


# --- the routes -------------------------------------------------------------------------------------------


def call(route, actor: Person, target: Person | None, world):
    api, tenants = actor.api, world["tenants"]
    if route in SETTINGS_ROUTES:
        mailbox = world["mailbox"]
        return {"get_smtp": lambda: api.get("/api/v1/settings/smtp"),
                "put_smtp": lambda: api.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()),
                "get_policy": lambda: api.get("/api/v1/settings/password-policy"),
                "put_policy": lambda: api.put("/api/v1/settings/password-policy", json={}),
                "put_2fa_policy": lambda: api.put("/api/v1/settings/2fa-policy",
                                                  json={"require_for_super_admin": False}),
                "get_ldap": lambda: api.get("/api/v1/settings/ldap"),
                "enable_tenancy": lambda: api.post("/api/v1/tenancy/enable")}[route]()
    here_index = active_tenant(actor, target)
    here = tenants[here_index]
    switched(api, here)
    user = f"/api/v1/users/{target.user['id']}"
    first_name = target.user.get("first_name") if target.kind == "first" else "Renamed"
    return {
        "patch_name": lambda: api.patch(user, json={"first_name": first_name}),
        "patch_email": lambda: api.patch(user, json={"email": f"moved{uuid.uuid4().hex[:8]}@example.com"}),
        "suspend": lambda: api.patch(user, json={"status": "suspended"}),
        "remove": lambda: api.delete(user),
        "reset_random": lambda: api.post(f"{user}/password-reset", json={"method": "random"}),
        "reset_email": lambda: api.post(f"{user}/password-reset", json={"method": "email"}),
        "end_sessions": lambda: api.delete(f"{user}/sessions"),
        "unlock": lambda: api.post(f"{user}/unlock"),
        "require_2fa": lambda: api.post(f"{user}/2fa/requirement"),
        "cancel_2fa": lambda: api.delete(f"{user}/2fa/requirement"),
        "disable_2fa": lambda: api.delete(f"{user}/2fa"),
        "assign_role": lambda: api.put(f"{user}/roles/{here}", json={"role": "viewer", "scope": {}}),
        "add_group": lambda: api.post(f"/api/v1/groups/{world['groups'][here_index]}/members",
                                      json={"user_id": target.user["id"]}),
        "add_tenant": lambda: api.put(f"/api/v1/tenants/{tenants[joining_tenant(actor, target)]}/users/"
                                      f"{target.user['id']}", json={"role": "viewer"}),
    }[route]()


# --- the property -----------------------------------------------------------------------------------------

homes = st.lists(st.integers(0, TENANTS - 1), min_size=1, max_size=2, unique=True)
# Random subsets, half of them with admin.users (without it a custom role reaches nobody's account).
custom_rights = st.tuples(st.sets(st.sampled_from(GRANTABLE), min_size=1, max_size=10), st.booleans()).map(
    lambda drawn: frozenset(drawn[0] | ({"admin.users"} if drawn[1] else set())))


def person(kinds):
    """A Person of one of `kinds` (repeats weigh more), with homes and, for a custom role, its rights."""
    return st.builds(lambda kind, where, rights: Person(kind, (0,) if kind in ("super", "first") else where,
                                                        rights if kind == "custom" else ()),
                     st.sampled_from(kinds), homes, custom_rights)


# Hypothesis draws the first kinds most often: the interesting ones come first.
actors = person(("admin", "custom", "super", "operator", "custom", "viewer"))
targets = person(("viewer", "custom", "super", "admin", "operator", "first", "custom"))


def _on_first_admin_safely(case):
    """The first admin is only a target of the routes that cannot lock the shared platform's root out."""
    actor, target, route = case
    if target.kind == "first" and route not in SAFE_ON_FIRST_ADMIN:
        route = SAFE_ON_FIRST_ADMIN[ACCOUNT_ROUTES.index(route) % len(SAFE_ON_FIRST_ADMIN)]
    return actor, target, route


# Every example tries one settings route and one account route with its actor.
cases = st.tuples(actors, targets, st.sampled_from(ACCOUNT_ROUTES), st.sampled_from(SETTINGS_ROUTES)).map(
    lambda case: (*_on_first_admin_safely(case[:3]), case[3]))


@settings(max_examples=50, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=list(HealthCheck))
@given(case=cases)
def test_an_action_succeeds_only_if_the_authority_rule_allows_it(platform, root, world, case):
    actor, target, route, setting = case
    actor = actor_for(platform, root, world, actor)
    check(setting, actor, None, world)
    target = world["first"] if target.kind == "first" else make_target(platform, root, world, target)
    check(route, actor, target, world)


def check(route, actor: Person, target: Person | None, world):
    answer = call(route, actor, target, world)
    allowed = expected_allowed(route, actor, target)
    event(f"{'allowed' if allowed else 'refused'}: {'settings' if target is None else 'account'}")
    what = (route, actor, target, answer.status_code, answer.text[:300])
    if target is not None and target.kind == "first" and route in ("suspend", "remove"):
        # the first admin stays protected, even from super admins; unseen from a tenant they are not in,
        # unless the actor lacks admin.users there: that 403 comes before anyone is looked up
        here = active_tenant(actor, target)
        visible = actor.is_super or here in target.homes
        unguarded = "admin.users" in actor.rights(here)
        assert answer.status_code == (403 if visible or not unguarded else 404), what
    elif allowed:
        assert answer.status_code in ALLOWED.get(route, {200}), what
    else:
        assert answer.status_code in (403, 404), what
