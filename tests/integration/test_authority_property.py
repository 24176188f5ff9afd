"""Property-based authority (hypothesis, docs/security.md), through the real gateway: actors (a super
admin, tenant admins, operators, viewers, custom roles with random permission subsets, members of one or two
tenants) × targets (super admins, the first admin, users of every kind in one or two tenants, self-registered
pending users) × every account-changing route and every settings route (taken from the OpenAPI spec: every
super-admin operation under /api/v1/settings and /api/v1/tenancy, so new ones are covered as they appear).
An action succeeds only if the rule allows it.

The expectation comes from a small model written here, not from the services' code:
- settings: super admins only;
- on an account: the route's own permission in the active tenant (admin.users, also for approving and for
  joining or leaving a tenant; admin.rbac for roles and groups; super admins for the 2FA actions), and the
  actor's rights cover the target's in every tenant the target belongs to (never a super admin unless the
  actor is one; admin.users and every permission the target holds, in each of the target's tenants), and
  granting `viewer` needs its permissions.
Bounded: few examples, no deadline, no shrinking (a failure prints its example and routes); targets are made
afresh per example (an allowed action may remove them), actors are reused. Hypothesis draws actors and
targets; the routes take turns, so each is tried in every run.
"""
import uuid

import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from tests.harness import eventually, register
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
                  "unlock", "require_2fa", "cancel_2fa", "disable_2fa", "assign_role", "remove_role", "add_group",
                  "remove_group", "add_tenant", "remove_tenant", "approve")
SAFE_ON_FIRST_ADMIN = ("patch_name", "suspend", "remove", "unlock")  # never lock the shared platform's root out
SUPER_ONLY_ROUTES = ("require_2fa", "cancel_2fa", "disable_2fa")
RBAC_ROUTES = ("assign_role", "remove_role", "add_group", "remove_group")
# What an allowed action answers (cancel/disable 2FA: 409 when there is nothing to cancel, past the checks;
# leaving a tenant: 409 when it is the target's last one, past the checks).
ALLOWED = {"patch_name": {200}, "patch_email": {200}, "suspend": {200}, "remove": {204}, "reset_random": {200},
           "reset_email": {202}, "end_sessions": {204}, "unlock": {204}, "require_2fa": {200},
           "cancel_2fa": {204, 409}, "disable_2fa": {204, 409}, "assign_role": {200}, "remove_role": {204},
           "add_group": {201}, "remove_group": {204}, "add_tenant": {200, 201}, "remove_tenant": {204, 409},
           "approve": {200}}
TENANTS = 3  # default, one, two

# The settings routes come from the spec: every super-admin operation under these prefixes. A read is called
# as it is; a change needs a harmless call in settings_changes (the world fixture names a new one lacking it).
SETTINGS_PREFIXES = ("/api/v1/settings/", "/api/v1/tenancy/")


# --- the model --------------------------------------------------------------------------------------------


class Person:
    """kind: super, admin, operator, viewer, custom, first (the first admin) or pending (self-registered,
    in `default`, holding nothing); homes: tenant indexes."""

    def __init__(self, kind, homes=(0,), permissions=frozenset()):
        self.kind, self.homes, self.permissions = kind, tuple(homes), frozenset(permissions)
        self.user = self.api = self.role = None

    @property
    def is_super(self):
        return self.kind in ("super", "first")

    def rights(self, tenant) -> frozenset:
        if self.is_super:
            return CATALOGUE
        if tenant not in self.homes or self.kind == "pending":
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
    if target is None:  # a platform setting
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
        return rule_allows(actor, target)  # taking a role away: its permissions are the target's, covered
    return "admin.users" in actor.rights(here) and rule_allows(actor, target)


# --- the world --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def world(platform, root, mailbox):
    tag = uuid.uuid4().hex[:6]
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    spec = root.get("/api/v1/openapi.json").json()
    settings_routes = sorted((method, path) for path, item in spec["paths"].items()
                             if path.startswith(SETTINGS_PREFIXES) for method, operation in item.items()
                             if isinstance(operation, dict) and operation.get("x-permission") == "super_admin")
    forwarding = root.get("/api/v1/settings/audit-forwarding").json()
    registration = root.get("/api/v1/settings/registration").json()
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
    world = {"tag": tag, "tenants": tenants, "groups": groups, "actors": {}, "first": first, "mailbox": mailbox,
             "count": [0], "root": root, "settings": settings_routes, "turns": {},
             "registration": {key: registration[key] for key in ("self_registration", "allowed_email_domains")},
             "forwarding": {key: forwarding[key] for key in ("enabled", "host", "port", "protocol", "app_name")
                            if forwarding.get(key) is not None}}
    unknown = [f"{method.upper()} {path}" for method, path in settings_routes
               if method != "get" and (method, path) not in settings_changes(world)]
    assert not unknown, f"new settings routes: add a harmless call for them to settings_changes: {unknown}"
    assert {("delete", "/api/v1/settings/smtp"), ("put", "/api/v1/settings/ldap"), ("post", "/api/v1/tenancy/disable"),
            ("get", "/api/v1/settings/audit-forwarding")} <= set(settings_routes), settings_routes
    return world


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
    if person.kind == "pending":  # self-registered: in `default`, waiting for approval
        registered = register(platform.api(), name)
        assert registered.status_code == 201, registered.text
        person.user = registered.json()
        return person
    role = None if person.kind == "super" else role_for(root, world, person)
    switched(root, tenants[person.homes[0]])
    try:
        body = {"username": name, "email": f"{name}@example.com", "first_name": "Prop", "last_name": "Target"}
        created = root.post("/api/v1/users", json={**body, **({"role": role} if role else {})})
        assert created.status_code == 201, created.text
    finally:
        switched(root, DEFAULT)
    person.user = created.json()["user"]
    person.role = role
    if person.kind == "super":
        assert assign(root, person.user["id"], "super_admin").status_code == 200
        role_becomes(root, person.user["id"], DEFAULT, "super_admin")
        person.role = "super_admin"
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


def prepare(route, actor: Person, target: Person, world):
    """What a removal takes away exists first: the group membership, the tenant membership as tenancy holds
    it, the role as rbac holds it (each where the actor works, if the target is there)."""
    here_index = active_tenant(actor, target)
    if target.kind in ("first", "pending") or here_index not in target.homes:
        return
    root, here, user_id = world["root"], world["tenants"][here_index], target.user["id"]
    if route == "remove_group":
        switched(root, here)
        try:
            added = root.post(f"/api/v1/groups/{world['groups'][here_index]}/members", json={"user_id": user_id})
        finally:
            switched(root, DEFAULT)
        assert added.status_code == 201, added.text
    elif route == "remove_tenant":
        eventually(lambda: root.get(f"/api/v1/tenants/{here}/users/{user_id}").status_code == 200, 20, 0.2,
                   "tenancy knows the membership")
    elif route == "remove_role" and target.kind != "super":
        role_becomes(root, user_id, here, target.role)


# --- the routes -------------------------------------------------------------------------------------------


def settings_changes(world) -> dict:
    """(method, path) → (its harmless call with an api, what a super admin gets, what restores the platform
    after it was allowed). The LDAP directory is pointed at a closed port: refused after the checks (422
    `ldap_…`), nothing stored; tenancy cannot be disabled while tenants exist (409)."""
    mailbox, root = world["mailbox"], world["root"]
    restore_smtp = lambda: root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings())  # noqa: E731
    return {
        ("put", "/api/v1/settings/smtp"): (lambda api: api.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()),
                                           {200}, None),
        ("delete", "/api/v1/settings/smtp"): (lambda api: api.delete("/api/v1/settings/smtp"), {204}, restore_smtp),
        ("put", "/api/v1/settings/password-policy"): (
            lambda api: api.put("/api/v1/settings/password-policy", json={}), {200}, None),
        ("put", "/api/v1/settings/2fa-policy"): (
            lambda api: api.put("/api/v1/settings/2fa-policy", json={"require_for_super_admin": False}), {200}, None),
        ("put", "/api/v1/settings/ldap"): (lambda api: api.put("/api/v1/settings/ldap", json={
            "url": "ldap://127.0.0.1:1", "bind_dn": "cn=nobody,dc=example,dc=org", "password": "not-stored",
            "base_dn": "dc=example,dc=org"}), {422}, None),
        ("put", "/api/v1/settings/audit-forwarding"): (
            lambda api: api.put("/api/v1/settings/audit-forwarding", json=world["forwarding"]), {200}, None),
        ("post", "/api/v1/settings/smtp/test"): (lambda api: api.post("/api/v1/settings/smtp/test", json={
            "to": f"authority-{world['tag']}@example.com"}), {200}, None),
        ("put", "/api/v1/settings/registration"): (
            lambda api: api.put("/api/v1/settings/registration", json=world["registration"]), {200}, None),
        ("post", "/api/v1/tenancy/enable"): (lambda api: api.post("/api/v1/tenancy/enable"), {200}, None),
        ("post", "/api/v1/tenancy/disable"): (lambda api: api.post("/api/v1/tenancy/disable"), {409}, None),
    }


def call_setting(setting, actor: Person, world):
    """The answer and what a super admin gets; restores the platform after an allowed destructive call."""
    method, path = setting
    if method == "get":
        return actor.api.get(path), {200}
    attempt, allowed, restore = settings_changes(world)[setting]
    answer = attempt(actor.api)
    if restore and answer.status_code in allowed:
        assert restore().status_code in (200, 204)
    return answer, allowed


def call(route, actor: Person, target: Person | None, world):
    api, tenants = actor.api, world["tenants"]
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
        "remove_role": lambda: api.delete(f"{user}/roles/{here}"),
        "add_group": lambda: api.post(f"/api/v1/groups/{world['groups'][here_index]}/members",
                                      json={"user_id": target.user["id"]}),
        "remove_group": lambda: api.delete(f"/api/v1/groups/{world['groups'][here_index]}/members/{target.user['id']}"),
        "add_tenant": lambda: api.put(f"/api/v1/tenants/{tenants[joining_tenant(actor, target)]}/users/"
                                      f"{target.user['id']}", json={"role": "viewer"}),
        "remove_tenant": lambda: api.delete(f"/api/v1/tenants/{here}/users/{target.user['id']}"),
        "approve": lambda: api.patch(user, json={"status": "active"}),
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
    """The first admin is only a target of the routes that cannot lock the shared platform's root out;
    approving has a pending target (self-registered, in `default`)."""
    actor, target, route = case
    if route == "approve":
        return actor, Person("pending"), route
    if target.kind == "first" and route not in SAFE_ON_FIRST_ADMIN:
        route = SAFE_ON_FIRST_ADMIN[ACCOUNT_ROUTES.index(route) % len(SAFE_ON_FIRST_ADMIN)]
    return actor, target, route


def in_turn(world, case) -> tuple[str, tuple[str, str]]:
    """The account route and the settings route of an example: each route in turn across the run, whatever
    Hypothesis draws (it draws a list's first entries far more often: 50 examples left a third of the routes
    untried); the same ones when Hypothesis runs an example again to report it. The case's salt keeps examples
    whose actor and target read alike apart."""
    turns = world["turns"]
    turn = turns.setdefault(repr(case), len(turns))
    return ACCOUNT_ROUTES[turn % len(ACCOUNT_ROUTES)], world["settings"][turn % len(world["settings"])]


# Every example tries one settings route and one account route with its actor (routes in turn, see in_turn).
cases = st.tuples(actors, targets, st.integers(0, 2 ** 32 - 1))


@settings(max_examples=50, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=list(HealthCheck))
@given(case=cases)
def test_an_action_succeeds_only_if_the_authority_rule_allows_it(platform, root, world, case):
    route, setting = in_turn(world, case)
    actor, target, route = _on_first_admin_safely((*case[:2], route))
    note(f"routes: {route} {setting}")
    actor = actor_for(platform, root, world, actor)
    check(setting, actor, None, world)
    target = world["first"] if target.kind == "first" else make_target(platform, root, world, target)
    prepare(route, actor, target, world)
    check(route, actor, target, world)


def check(route, actor: Person, target: Person | None, world):
    if target is None:
        answer, allowed_answers = call_setting(route, actor, world)
    else:
        answer, allowed_answers = call(route, actor, target, world), ALLOWED[route]
    allowed = expected_allowed(route, actor, target)
    event(f"{'allowed' if allowed else 'refused'}: {'settings' if target is None else 'account'}")
    event(f"{'allowed' if allowed else 'refused'}: {route}")
    what = (route, actor, target, answer.status_code, answer.text[:300])
    if target is not None and target.kind == "first" and route in ("suspend", "remove"):
        # the first admin stays protected, even from super admins; unseen from a tenant they are not in,
        # unless the actor lacks admin.users there: that 403 comes before anyone is looked up
        here = active_tenant(actor, target)
        visible = actor.is_super or here in target.homes
        unguarded = "admin.users" in actor.rights(here)
        assert answer.status_code == (403 if visible or not unguarded else 404), what
    elif allowed:
        assert answer.status_code in allowed_answers, what
        if answer.status_code == 422:  # refused by the directory, past every check
            assert answer.json()["error"]["code"].startswith("ldap_"), what
    else:
        assert answer.status_code in (403, 404), what
