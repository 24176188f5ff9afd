"""Property-based isolation (hypothesis): random worlds of tenants, users with roles in one or two
of them and connections per tenant are built through the API; then every GET route of the
OpenAPI spec without path parameters, and those whose ids name objects of the caller's world, is
called as each user in each of their tenants. No answer may hold an id or a name of a tenant the
user does not belong to, of a connection of such a tenant, or of a user who shares no tenant
with them. Bounded (few examples, no deadline): each world costs a few sign-ins.
"""
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_connections import create as create_connection
from tests.integration.test_isolation import member, new_tenant, role_becomes, switched, user_in

ROLES = ("admin", "operator", "viewer")
# Not tenant data: the spec itself, probes, and the audit trail (scoped by the audit helper's branch).
SKIPPED = re.compile(r"^/(healthz|readyz)|^/api/v1/(openapi|audit)")
PARAM = re.compile(r"<[^>]+>|\{[^}]+\}")


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def get_routes(root):
    spec = root.get("/api/v1/openapi.json").json()
    return sorted(path for path, item in spec["paths"].items() if "get" in item and not SKIPPED.match(path))


worlds = st.integers(2, 3).flatmap(lambda tenants: st.tuples(
    st.just(tenants),
    st.lists(st.tuples(st.lists(st.integers(0, tenants - 1), min_size=1, max_size=2, unique=True),
                       st.sampled_from(ROLES)), min_size=2, max_size=3)))


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(world=worlds)
def test_nothing_of_another_tenant_appears_in_any_get(platform, root, get_routes, world):
    tenant_count, people = world
    tag = uuid.uuid4().hex[:6]
    tenants = [new_tenant(root, f"Prop {tag} {index}") for index in range(tenant_count)]
    connections = {t["id"]: create_connection(root, name=f"prop-{tag}-{index}", tenant_id=t["id"])
                   for index, t in enumerate(tenants)}
    users = []
    for index, (homes, role) in enumerate(people):
        user, api = user_in(platform, root, tenants[homes[0]]["id"], f"prop{tag}{index}", role)
        for extra in homes[1:]:
            assert member(root, tenants[extra]["id"], user["id"], role).status_code == 201
            role_becomes(root, user["id"], tenants[extra]["id"], role)
        users.append((user, api, {tenants[h]["id"] for h in homes}))

    for user, api, mine in users:
        foreign = set()
        for tenant in tenants:
            if tenant["id"] not in mine:
                foreign |= {tenant["id"], tenant["name"], connections[tenant["id"]]["id"],
                            connections[tenant["id"]]["name"]}
        for other, _, theirs in users:
            if not theirs & mine:
                foreign |= {other["id"], other["username"]}
        for tenant_id in sorted(mine):
            switched(api, tenant_id)
            for path in paths_of(get_routes, user, connections[tenant_id], tenant_id):
                answer = api.get(path)
                assert answer.status_code < 500, (path, answer.text)
                leaked = [value for value in foreign if value in answer.text]
                assert not leaked, (user["username"], tenant_id, path, leaked)


def paths_of(routes, user, connection, tenant_id):
    """Every route; those with parameters filled with the ids of the caller's own objects."""
    ids = {"user_id": user["id"], "connection_id": connection["id"], "id": connection["id"],
           "tenant_id": tenant_id}
    for route in routes:
        names = [name.strip("<>{}").split(":")[-1] for name in PARAM.findall(route)]
        if all(name in ids for name in names):
            yield PARAM.sub(lambda match: ids[match.group(0).strip("<>{}").split(":")[-1]], route)
