"""Tenancy: the multi-tenancy switch, tenants, Proxmox VE connections and who belongs where.

Rules live in domain.py; every change emits its event (events.py) in its unit of work.
Answers about objects of a tenant take the tenant they are asked from (`tenant_id`, None
for any): an object of another tenant is NotFound, never Forbidden, so ids cannot be probed.

The entrypoints only translate nameko to the use cases: tenants.py (the switch and tenants),
connections.py, memberships.py and handlers.py (events). Those take a unit of work
(`self.db.unit_of_work()`) and the RpcProxy they ask, so they run without nameko; views.py shapes
the answers.
"""
from __future__ import annotations

from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from kernel import ratelimit
from kernel.authority import require_permission, require_super_admin
from kernel.consumer import on_event
from kernel.crypto import SecretBox
from kernel.envelope import Actor
from kernel.service import Database, ServiceBase, rpc
from contracts.events import identity as identity_events
from services.tenancy import connections, handlers, memberships, storage, tenants

# The routes' own permissions, asked of rbac here (kernel/authority.py) before a change looks anything up,
# whatever the gateway asked: a request reaching tenancy over the broker is refused all the same.
CONNECTION_MANAGE, TENANT_MANAGE = "connection.manage", "tenant.manage"


class TenancyService(ServiceBase):
    name = "tenancy"
    db = Database(storage.metadata)
    config = Config()  # config["GATEHOUSE"].secret_key seals connection secrets
    # who administers which tenant, the authority checks (kernel/authority.py); rbac never calls tenancy
    # back for them
    rbac = RpcProxy("rbac")

    def _box(self) -> SecretBox:
        return SecretBox(self.config["GATEHOUSE"].secret_key)

    def _count_name_attempt(self, actor) -> None:
        """Connection names are unique across tenants (docs/security.md): each attempt at one counts
        against GATEHOUSE_CONNECTION_NAMES_PER_ADMIN, refused or not."""
        settings = self.config["GATEHOUSE"]
        ratelimit.count_attempt(self.db.unit_of_work(), storage.rate_counters, "connection_names_per_admin", actor,
                                settings.integer("GATEHOUSE_CONNECTION_NAMES_PER_ADMIN"),
                                settings.integer("GATEHOUSE_RATE_LIMIT_WINDOW"), "Too many connection names tried.")

    # --- reacting to identity ------------------------------------------------------

    @on_event("identity", types=[identity_events.USER_CREATED, identity_events.USER_REGISTERED,
                                 identity_events.INVITATION_ACCEPTED])
    def enrol_new_user(self, event, uow):
        handlers.enrol_new_user(uow, event, invitation_accepted=event.type == identity_events.INVITATION_ACCEPTED)

    @on_event("identity", types=[identity_events.INVITATION_SENT])
    def enrol_invited(self, event, uow):
        handlers.enrol_invited(uow, event)

    @on_event("identity", types=[identity_events.INVITATION_REVOKED])
    def forget_revoked_placeholder(self, event, uow):
        handlers.forget_revoked_placeholder(uow, event)

    @on_event("identity", types=[identity_events.USER_UPDATED])
    def follow_rename(self, event, uow):
        handlers.follow_rename(uow, event)

    @on_event("identity", types=[identity_events.USER_REMOVED])
    def forget_removed_user(self, event, uow):
        handlers.forget_removed_user(uow, event)

    # --- the multi-tenancy switch ------------------------------------------------------

    @rpc
    def status(self):
        return tenants.status(self.db.unit_of_work())

    @rpc
    def enable(self, actor):
        return tenants.enable(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor))

    @rpc
    def disable(self, actor):
        return tenants.disable(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor))

    @rpc
    def adopt_users(self, actor, users):
        require_super_admin(self.rbac, actor, "who belongs to the default tenant")
        return tenants.adopt_users(self.db.unit_of_work(), Actor.from_dict(actor), users)

    # --- tenants -----------------------------------------------------------------------------

    @rpc
    def list_tenants(self, tenant_ids=None, limit=50, cursor=None):
        return tenants.list_tenants(self.db.unit_of_work(), tenant_ids, limit, cursor)

    @rpc
    def get_tenant(self, tenant_id):
        return tenants.get_tenant(self.db.unit_of_work(), tenant_id)

    @rpc
    def tenant_exists(self, tenant_id):
        return tenants.tenant_exists(self.db.unit_of_work(), tenant_id)

    @rpc
    def create_tenant(self, actor, name, description=""):
        require_super_admin(self.rbac, actor, "the tenants")
        return tenants.create_tenant(self.db.unit_of_work(), Actor.from_dict(actor), name, description)

    @rpc
    def update_tenant(self, actor, tenant_id, changes, expected_version=None):
        require_permission(self.rbac, actor, TENANT_MANAGE, tenant_id, tenant_required=True)
        return tenants.update_tenant(self.db.unit_of_work(), Actor.from_dict(actor), tenant_id, changes,
                                     expected_version)

    @rpc
    def delete_tenant(self, actor, tenant_id):
        require_super_admin(self.rbac, actor, "the tenants")
        tenants.delete_tenant(self.db.unit_of_work(), Actor.from_dict(actor), tenant_id)

    # --- connections ------------------------------------------------------------------------

    @rpc
    def list_connections(self, tenant_id=None, limit=50, cursor=None):
        return connections.list_connections(self.db.unit_of_work(), tenant_id, limit, cursor)

    @rpc
    def get_connection(self, connection_id, tenant_id=None):
        return connections.get_connection(self.db.unit_of_work(), connection_id, tenant_id)

    @rpc
    def create_connection(self, actor, tenant_id, fields):
        require_permission(self.rbac, actor, CONNECTION_MANAGE, tenant_id, tenant_required=True)
        self._count_name_attempt(actor)
        return connections.create_connection(self.db.unit_of_work(), self._box(), Actor.from_dict(actor), tenant_id,
                                             fields)

    @rpc
    def update_connection(self, actor, connection_id, changes, tenant_id=None, expected_version=None):
        require_permission(self.rbac, actor, CONNECTION_MANAGE, tenant_id)  # None (every tenant): super admins
        if "name" in (changes or {}):
            self._count_name_attempt(actor)
        return connections.update_connection(self.db.unit_of_work(), self._box(), Actor.from_dict(actor),
                                             connection_id, changes, tenant_id, expected_version)

    @rpc
    def reassign_connection(self, actor, connection_id, to_tenant_id, tenant_id=None):
        require_super_admin(self.rbac, actor, "which tenant a connection belongs to")
        return connections.reassign_connection(self.db.unit_of_work(), Actor.from_dict(actor), connection_id,
                                               to_tenant_id, tenant_id)

    @rpc
    def delete_connection(self, actor, connection_id, tenant_id=None):
        require_permission(self.rbac, actor, CONNECTION_MANAGE, tenant_id)
        connections.delete_connection(self.db.unit_of_work(), Actor.from_dict(actor), connection_id, tenant_id)

    @rpc
    def connection_credentials(self, connection_id):
        """Internal, for proxmox_sync only (the gateway never exposes it): the connection with its secret."""
        return connections.connection_credentials(self.db.unit_of_work(), self._box(), connection_id)

    # --- memberships --------------------------------------------------------------------------

    @rpc
    def memberships_of(self, user_id):
        return memberships.memberships_of(self.db.unit_of_work(), user_id)

    @rpc
    def is_member(self, user_id, tenant_id):
        return memberships.is_member(self.db.unit_of_work(), user_id, tenant_id)

    @rpc
    def members_among(self, tenant_id, user_ids):
        return memberships.members_among(self.db.unit_of_work(), tenant_id, user_ids)

    @rpc
    def get_membership(self, tenant_id, user_id):
        return memberships.get_membership(self.db.unit_of_work(), tenant_id, user_id)

    @rpc
    def list_members(self, tenant_id, limit=50, cursor=None):
        return memberships.list_members(self.db.unit_of_work(), tenant_id, limit, cursor)

    @rpc
    def assign_user(self, actor, tenant_id, user_id, username, role=None, make_default=False):
        return memberships.assign_user(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor), tenant_id, user_id,
                                       username, role, make_default)

    @rpc
    def check_takeover(self, actor, tenant_id, user_id):
        """The gateway asks before anything else about the user (their role, the role given), so that
        a user of tenants the actor does not administer answers exactly as an unknown id there too."""
        memberships.refuse_takeover(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor), tenant_id, user_id)

    @rpc
    def remove_user(self, actor, tenant_id, user_id):
        memberships.remove_user(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor), tenant_id, user_id)
