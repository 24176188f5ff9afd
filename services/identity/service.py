"""Identity's RPC entrypoints and event handlers: thin, each hands its call to a use case.

Use cases (services/identity/usecases/) take identity's unit of work (uow.py) and run without nameko;
rules in domain.py, sessions.py, twofactor.py, invitations.py, resets.py, mail.py, limits.py; queries in
storage.py over the models of models.py; answers shaped in views.py."""
from __future__ import annotations

import os

from eventlet import tpool
from nameko.dependency_providers import Config as NamekoConfig
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy

from kernel import DEFAULT_TENANT_ID
from kernel.consumer import on_event
from kernel.crypto import SecretBox
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, storage
from services.identity.mailer import Mailer
from services.identity.uow import IdentityUnitOfWork
from services.identity.usecases import (accounts, invites, password_resets, platform_settings, readmodels,
                                        second_factor, signin)
from contracts.events import rbac as rbac_events
from contracts.events import tenancy as tenancy_events

# argon2 is memory-hard: more hashes at once than cores only thrash the caches (measured:
# 8 threads verify ~35% fewer per second than 2). Hashing is all identity runs in threads.
tpool.set_num_threads(os.cpu_count() or 1)

# Computed now, so the first login of an unknown user costs one hash like any other.
domain.dummy_hash()


class SecretBoxProvider(DependencyProvider):
    """Workers get the service's SecretBox (GATEHOUSE_SECRET_KEY): TOTP secrets sealed at rest,
    keyed digests of recovery codes."""

    def setup(self):
        self.box = SecretBox(self.container.config["GATEHOUSE"].secret_key)

    def get_dependency(self, worker_ctx):
        return self.box


class IdentityService(ServiceBase):
    name = "identity"
    db = Database(storage.metadata)
    mailer = Mailer()
    secret_box = SecretBoxProvider()
    config = NamekoConfig()  # config["GATEHOUSE"]: the kernel Config (token lifetimes, throttle limits)
    # rbac: the authority checks (kernel/authority.py; rbac never calls identity back for them), and rbac's
    # part of a user write with a role or groups (usecases/spanning.py), for which rbac asks identity
    # (user_tenants) while this worker waits: such writes need a second identity worker free.
    rbac = RpcProxy("rbac")

    def uow(self) -> IdentityUnitOfWork:
        """The unit of work of one call, with this worker's dependencies (services/identity/uow.py)."""
        return IdentityUnitOfWork(self.db, rbac=self.rbac, mailer=self.mailer, secret_box=self.secret_box,
                                  config=self.config)

    # --- read models fed by other services (usecases/readmodels.py) ------------------------------

    @on_event("rbac", types=[rbac_events.ROLE_ASSIGNED, rbac_events.ROLE_UNASSIGNED])
    def track_role(self, event, uow):
        """The user list's role column: one query sorts and pages users with their role."""
        readmodels.track_role(uow, event, unassigned=event.type == rbac_events.ROLE_UNASSIGNED)

    @on_event("tenancy", types=[tenancy_events.USER_ASSIGNED_TO_TENANT, tenancy_events.USER_REMOVED_FROM_TENANT])
    def track_membership(self, event, uow):
        """Which tenants a user belongs to: the user list shows a tenant's members, sign-in
        starts a session in one of the user's tenants."""
        readmodels.track_membership(uow, event,
                                    assigned=event.type == tenancy_events.USER_ASSIGNED_TO_TENANT)

    # --- accounts (usecases/accounts.py) -----------------------------------------------------------

    @rpc
    def register(self, actor, username, first_name, last_name, email=None, password=None, invitation_token=None):
        return accounts.register(self.uow(), actor, username, first_name, last_name, email, password,
                                 invitation_token)

    @rpc
    def bootstrap_admin(self, username, password=None):
        return accounts.bootstrap_admin(self.uow(), username, password)

    # --- sessions and sign-in (usecases/signin.py) -------------------------------------------------

    @rpc
    def login(self, actor, login, password, user_agent=""):
        return signin.login(self.uow(), actor, login, password, user_agent)

    @rpc
    def refresh(self, actor, refresh_token):
        return signin.refresh(self.uow(), actor, refresh_token)

    @rpc
    def session_user(self, session_id):
        return signin.session_user(self.uow(), session_id)

    @rpc
    def switch_tenant(self, actor, session_id, tenant_id):
        return signin.switch_tenant(self.uow(), actor, session_id, tenant_id)

    @rpc
    def user_tenants(self, user_id):
        return readmodels.user_tenants(self.uow(), user_id)

    @rpc
    def logout(self, actor, session_id):
        return signin.logout(self.uow(), actor, session_id)

    @rpc
    def list_sessions(self, actor, user_id, current_session_id=None, limit=50, cursor=None):
        return signin.list_sessions(self.uow(), actor, user_id, current_session_id, limit, cursor)

    @rpc
    def revoke_session(self, actor, user_id, session_id):
        return signin.revoke_session(self.uow(), actor, user_id, session_id)

    @rpc
    def revoke_sessions(self, actor, user_id, reason, keep_session_id=None):
        return signin.revoke_sessions(self.uow(), actor, user_id, reason, keep_session_id)

    @rpc
    def change_password(self, actor, session_id, current_password, new_password):
        return signin.change_password(self.uow(), actor, session_id, current_password, new_password)

    @rpc
    def unlock_account(self, actor, user_id):
        return signin.unlock_account(self.uow(), actor, user_id)

    # --- invitations (usecases/invites.py) ---------------------------------------------------------

    @rpc
    def create_invitations(self, actor, emails, role, tenant_id=DEFAULT_TENANT_ID):
        return invites.create_invitations(self.uow(), actor, emails, role, tenant_id)

    @rpc
    def list_invitations(self, status=None, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        return invites.list_invitations(self.uow(), status, limit, cursor, tenant_id)

    @rpc
    def get_invitation(self, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        return invites.get_invitation(self.uow(), invitation_id, tenant_id)

    @rpc
    def resend_invitation(self, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        return invites.resend_invitation(self.uow(), actor, invitation_id, tenant_id)

    @rpc
    def revoke_invitation(self, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        return invites.revoke_invitation(self.uow(), actor, invitation_id, tenant_id)

    @rpc
    def invitation_for_token(self, token):
        return invites.invitation_for_token(self.uow(), token)

    # --- password resets (usecases/password_resets.py) ---------------------------------------------

    @rpc
    def request_password_reset(self, actor, email):
        return password_resets.request_password_reset(self.uow(), actor, email)

    @rpc
    def confirm_password_reset(self, actor, token, password):
        return password_resets.confirm_password_reset(self.uow(), actor, token, password)

    @rpc
    def admin_reset_password(self, actor, user_id, method):
        return password_resets.admin_reset_password(self.uow(), actor, user_id, method)

    # --- settings (usecases/platform_settings.py) -------------------------------------------------

    @rpc
    def get_smtp_settings(self):
        return platform_settings.get_smtp_settings(self.uow())

    @rpc
    def put_smtp_settings(self, actor, settings):
        return platform_settings.put_smtp_settings(self.uow(), actor, settings)

    @rpc
    def delete_smtp_settings(self, actor):
        return platform_settings.delete_smtp_settings(self.uow(), actor)

    @rpc
    def send_test_mail(self, actor, to):
        return platform_settings.send_test_mail(self.uow(), actor, to)

    @rpc
    def get_registration_settings(self):
        return platform_settings.get_registration_settings(self.uow())

    @rpc
    def put_registration_settings(self, actor, values):
        return platform_settings.put_registration_settings(self.uow(), actor, values)

    @rpc
    def get_password_policy(self):
        return platform_settings.get_password_policy(self.uow())

    @rpc
    def put_password_policy(self, actor, values):
        return platform_settings.put_password_policy(self.uow(), actor, values)

    # --- user administration (usecases/accounts.py, usecases/readmodels.py) ------------------------

    @rpc
    def get_user(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        return readmodels.get_user(self.uow(), user_id, tenant_id)

    @rpc
    def list_users(self, tenant_id=DEFAULT_TENANT_ID, q=None, status=None, role=None, sort="created_at",
                   order="desc", limit=50, cursor=None, with_tenants=False):
        return readmodels.list_users(self.uow(), tenant_id, q=q, status=status, role=role, sort=sort, order=order,
                                     limit=limit, cursor=cursor, with_tenants=with_tenants)

    @rpc
    def directory_entries(self, user_ids=None, tenant_id=None, after=None, limit=2000):
        return readmodels.directory_entries(self.uow(), user_ids, tenant_id, after, limit)

    @rpc
    def create_user(self, actor, username, email, first_name, last_name, company="", tenant_id=DEFAULT_TENANT_ID,
                    super_admin=False, role=None, groups=None, with_access=False):
        """role, groups: rbac's part of the same write, owned here (docs/architecture.md)."""
        return accounts.create_user(self.uow(), actor, username, email, first_name, last_name, company=company,
                                    tenant_id=tenant_id, super_admin=super_admin, role=role, groups=groups,
                                    with_access=with_access)

    @rpc
    def update_user(self, actor, user_id, changes, expected_version=None, role=None, tenant_id=DEFAULT_TENANT_ID,
                    groups=None, with_access=False, in_tenant=False):
        """role, groups: rbac's part of the same write, owned here (docs/architecture.md)."""
        return accounts.update_user(self.uow(), actor, user_id, changes, expected_version=expected_version, role=role,
                                    tenant_id=tenant_id, groups=groups, with_access=with_access,
                                    in_tenant=in_tenant)

    @rpc
    def update_own_names(self, actor, session_id, names):
        return accounts.update_own_names(self.uow(), actor, session_id, names)

    @rpc
    def remove_user(self, actor, user_id, tenant_id=None):
        return accounts.remove_user(self.uow(), actor, user_id, tenant_id=tenant_id)

    # --- two-factor authentication (usecases/second_factor.py) -------------------------------------

    @rpc
    def login_second_factor(self, actor, login_ticket, code=None, recovery_code=None, user_agent=""):
        return second_factor.login_second_factor(self.uow(), actor, login_ticket, code, recovery_code, user_agent)

    @rpc
    def two_factor_status(self, session_id):
        return second_factor.two_factor_status(self.uow(), session_id)

    @rpc
    def start_two_factor_enrollment(self, actor, session_id, password=None, code=None):
        return second_factor.start_two_factor_enrollment(self.uow(), actor, session_id, password, code)

    @rpc
    def confirm_two_factor_enrollment(self, actor, session_id, code):
        return second_factor.confirm_two_factor_enrollment(self.uow(), actor, session_id, code)

    @rpc
    def disable_own_two_factor(self, actor, session_id, password=None, code=None):
        return second_factor.disable_own_two_factor(self.uow(), actor, session_id, password, code)

    @rpc
    def regenerate_recovery_codes(self, actor, session_id, password=None, code=None):
        return second_factor.regenerate_recovery_codes(self.uow(), actor, session_id, password, code)

    @rpc
    def require_two_factor(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        return second_factor.require_two_factor(self.uow(), actor, user_id, tenant_id)

    @rpc
    def cancel_two_factor_requirement(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        return second_factor.cancel_two_factor_requirement(self.uow(), actor, user_id, tenant_id)

    @rpc
    def admin_disable_two_factor(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        return second_factor.admin_disable_two_factor(self.uow(), actor, user_id, tenant_id)

    @rpc
    def get_two_factor_policy(self):
        return second_factor.get_two_factor_policy(self.uow())

    @rpc
    def put_two_factor_policy(self, actor, require_for_super_admin):
        return second_factor.put_two_factor_policy(self.uow(), actor, require_for_super_admin)
