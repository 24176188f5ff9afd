"""RBAC's entrypoints: authorization decisions, roles, role assignments, LDAP groups and membership.

Every change emits an rbac event in its unit of work: audit records it and the gateway
drops its cached decisions on it, so a change applies to the very next request. Decisions
come from each process's grant cache, checked against the grant generation on every call
(services/rbac/grant_cache.py), so every rbac instance sees a change at once too.

The entrypoints only translate nameko to the use cases: access.py (decisions, authority),
roles.py, assignments.py, groups.py (groups and members) and handlers.py (events). Those take a
unit of work (`self.db.unit_of_work()`) and what they ask over RPC (access.Memberships), so they
run without nameko; views.py shapes the answers.
"""
from __future__ import annotations

from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from kernel import DEFAULT_TENANT_ID, ratelimit
from kernel.consumer import on_event
from kernel.envelope import Actor
from kernel.service import Database, ServiceBase, rpc
from contracts.events import identity as identity_events
from contracts.events import tenancy as tenancy_events
from services.rbac import access, assignments, domain, groups, handlers, roles, storage, views
from services.rbac.grant_cache import ProcessGrantCache

_groups = groups  # for add_to_groups, whose RPC signature has a parameter named `groups`


class RbacService(ServiceBase):
    name = "rbac"
    db = Database(storage.metadata)
    config = Config()
    grants = ProcessGrantCache()
    # Only asked who belongs where (a group of a tenant takes only its members; the authority check of
    # rbac's own changes): tenancy's memberships, identity's read model for a user created moments ago.
    # Neither calls back here.
    tenancy = RpcProxy("tenancy")
    identity = RpcProxy("identity")

    @property
    def _memberships(self) -> access.Memberships:
        return access.Memberships(self.tenancy, self.identity)

    def _gid_range(self) -> tuple[int, int]:
        settings = self.config["GATEHOUSE"]
        return settings.integer("GATEHOUSE_GID_MIN"), settings.integer("GATEHOUSE_GID_MAX")

    def _count_name_attempt(self, actor) -> None:
        """Group names and GIDs are unique across the directory (docs/security.md): each attempt at one
        counts against GATEHOUSE_GROUP_NAMES_PER_ADMIN, refused or not."""
        settings = self.config["GATEHOUSE"]
        ratelimit.count_attempt(self.db.unit_of_work(), storage.rate_counters, "group_names_per_admin", actor,
                                settings.integer("GATEHOUSE_GROUP_NAMES_PER_ADMIN"),
                                settings.integer("GATEHOUSE_RATE_LIMIT_WINDOW"), "Too many group names or GIDs tried.")

    # --- reacting to identity ------------------------------------------------

    @on_event("identity", types=[identity_events.USER_CREATED, identity_events.USER_REGISTERED])
    def enrol_new_user(self, event, uow):
        handlers.enrol_new_user(uow, event)

    @on_event("identity", types=[identity_events.INVITATION_ACCEPTED])
    def grant_invited_role(self, event, uow):
        handlers.grant_invited_role(uow, event)

    @on_event("identity", types=[identity_events.USER_UPDATED])
    def follow_rename(self, event, uow):
        handlers.follow_rename(uow, event)

    @on_event("identity", types=[identity_events.USER_REMOVED])
    def forget_removed_user(self, event, uow):
        handlers.forget_removed_user(uow, event)

    # --- reacting to tenancy ---------------------------------------------------------

    @on_event("tenancy", types=[tenancy_events.USER_ASSIGNED_TO_TENANT])
    def grant_tenant_role(self, event, uow):
        handlers.grant_tenant_role(uow, event)

    @on_event("tenancy", types=[tenancy_events.USER_REMOVED_FROM_TENANT])
    def revoke_tenant_role(self, event, uow):
        handlers.revoke_tenant_role(uow, event)

    @on_event("tenancy", types=[tenancy_events.TENANT_DELETED])
    def forget_deleted_tenant(self, event, uow):
        handlers.forget_deleted_tenant(uow, event)

    # --- decisions -------------------------------------------------------------

    @rpc
    def list_permissions(self):
        return [views.permission_out(p) for p in domain.PERMISSIONS.values()]

    @rpc
    def effective_permissions(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        return access.effective_permissions(self.db.unit_of_work(), user_id, tenant_id)

    @rpc
    def authorize(self, user_id, permission, tenant_id=DEFAULT_TENANT_ID, resource=None):
        return access.authorize(self.db.engine, self.grants, user_id, permission, tenant_id, resource)

    @rpc
    def scope_of(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        """The user's scope in the tenant, for filtering lists; empty lists mean everything."""
        return domain.normalize_scope(access.current_grant(self.db.engine, self.grants, user_id, tenant_id).scope)

    @rpc
    def record_denial(self, actor, permission, tenant_id=DEFAULT_TENANT_ID, route=None):
        access.record_denial(self.db.unit_of_work(), Actor.from_dict(actor), permission, tenant_id, route)

    # --- authority over other accounts ------------------------------------------------

    @rpc
    def check_authority(self, actor_user_id, target_user_id, tenant_ids=()):
        access.check_authority(self.db.unit_of_work(), actor_user_id, target_user_id, tenant_ids)

    # --- roles -------------------------------------------------------------------

    @rpc
    def list_roles(self, tenant_id=DEFAULT_TENANT_ID):
        return roles.list_roles(self.db.unit_of_work(), tenant_id)

    @rpc
    def get_role(self, role_id, tenant_id=DEFAULT_TENANT_ID):
        return roles.get_role(self.db.unit_of_work(), role_id, tenant_id)

    @rpc
    def create_role(self, actor, name, permissions, description="", tenant_id=DEFAULT_TENANT_ID, is_global=False):
        return roles.create_role(self.db.unit_of_work(), Actor.from_dict(actor), name, permissions, description,
                                 tenant_id, is_global)

    @rpc
    def update_role(self, actor, role_id, tenant_id=DEFAULT_TENANT_ID, description=None, permissions=None,
                    expected_version=None):
        return roles.update_role(self.db.unit_of_work(), Actor.from_dict(actor), role_id, tenant_id, description,
                                 permissions, expected_version)

    @rpc
    def delete_role(self, actor, role_id, tenant_id=DEFAULT_TENANT_ID):
        roles.delete_role(self.db.unit_of_work(), Actor.from_dict(actor), role_id, tenant_id)

    # --- assignments ---------------------------------------------------------------

    @rpc
    def check_assignable(self, actor_user_id, role, tenant_id=DEFAULT_TENANT_ID, scope=None):
        access.check_assignable(self.db.unit_of_work(), actor_user_id, role, tenant_id, scope)

    @rpc
    def assign_role(self, actor, user_id, role, tenant_id=DEFAULT_TENANT_ID, username=None, scope=None,
                    required_permission=None):
        return assignments.assign_role(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), user_id,
                                       role, tenant_id, username, scope, required_permission)

    @rpc
    def unassign_role(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID, username=None, required_permission=None):
        assignments.unassign_role(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), user_id,
                                  tenant_id, username, required_permission)

    @rpc
    def user_roles(self, user_id):
        return assignments.user_roles(self.db.unit_of_work(), user_id)

    @rpc
    def roles_in_tenant(self, tenant_id, user_ids):
        return assignments.roles_in_tenant(self.db.unit_of_work(), tenant_id, user_ids)

    @rpc
    def user_access(self, user_id, tenant_id=None):
        return assignments.user_access(self.db.unit_of_work(), user_id, tenant_id)

    # --- for proxmox_sync (internal) ----------------------------------------------------

    @rpc
    def directory_groups(self, user_ids=None, tenant_id=None):
        return groups.directory_groups(self.db.unit_of_work(), user_ids, tenant_id)

    @rpc
    def access_in_tenant(self, tenant_id):
        return assignments.access_in_tenant(self.db.unit_of_work(), tenant_id)

    # --- groups and members ----------------------------------------------------------

    @rpc
    def list_groups(self, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        return groups.list_groups(self.db.unit_of_work(), self._memberships, limit, cursor, tenant_id)

    @rpc
    def get_group(self, group_id, tenant_id=DEFAULT_TENANT_ID):
        return groups.get_group(self.db.unit_of_work(), self._memberships, group_id, tenant_id)

    @rpc
    def create_group(self, actor, cn, gid_number=None, description="", is_admin=False, tenant_id=DEFAULT_TENANT_ID,
                     platform=False):
        self._count_name_attempt(actor)
        return groups.create_group(self.db.unit_of_work(), Actor.from_dict(actor), cn, gid_number, description,
                                   is_admin, tenant_id, platform, self._gid_range())

    @rpc
    def next_gid(self, actor, tenant_id=DEFAULT_TENANT_ID):
        return groups.next_gid(self.db.unit_of_work(), Actor.from_dict(actor), tenant_id, self._gid_range())

    @rpc
    def update_group(self, actor, group_id, changes, tenant_id=DEFAULT_TENANT_ID):
        if {"cn", "gid_number"} & set(changes or ()):
            self._count_name_attempt(actor)
        return groups.update_group(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), group_id,
                                   changes, tenant_id, self._gid_range())

    @rpc
    def delete_group(self, actor, group_id, tenant_id=DEFAULT_TENANT_ID):
        groups.delete_group(self.db.unit_of_work(), Actor.from_dict(actor), group_id, tenant_id)

    @rpc
    def list_members(self, group_id, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        return groups.list_members(self.db.unit_of_work(), self._memberships, group_id, limit, cursor, tenant_id)

    @rpc
    def get_member(self, group_id, user_id, tenant_id=DEFAULT_TENANT_ID):
        return groups.get_member(self.db.unit_of_work(), self._memberships, group_id, user_id, tenant_id)

    @rpc
    def add_member(self, actor, group_id, user_id, username=None, tenant_id=DEFAULT_TENANT_ID):
        return groups.add_member(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), group_id,
                                 user_id, username, tenant_id)

    @rpc
    def remove_member(self, actor, group_id, user_id, username=None, tenant_id=DEFAULT_TENANT_ID):
        groups.remove_member(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), group_id, user_id,
                             username, tenant_id)

    @rpc
    def user_groups(self, user_id, tenant_id=None):
        return groups.user_groups(self.db.unit_of_work(), user_id, tenant_id)

    @rpc
    def add_to_groups(self, actor, user_id, groups, username=None, tenant_id=DEFAULT_TENANT_ID):
        return _groups.add_to_groups(self.db.unit_of_work(), self._memberships, Actor.from_dict(actor), user_id,
                                     groups, username, tenant_id)

    @rpc
    def unknown_groups(self, cns, tenant_id=DEFAULT_TENANT_ID):
        return groups.unknown_groups(self.db.unit_of_work(), cns, tenant_id)

