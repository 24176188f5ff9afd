"""Tenancy: the multi-tenancy switch, tenants, Proxmox VE connections and who belongs where.

Rules live in domain.py; every change emits its event (events.py) in its unit of work.
Answers about objects of a tenant take the tenant they are asked from (`tenant_id`, None
for any): an object of another tenant is NotFound, never Forbidden, so ids cannot be probed.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, SUPER_ADMIN_ONLY, paging
from kernel.authority import require_authority, require_super_admin
from kernel.consumer import on_event
from kernel.crypto import SecretBox
from kernel.envelope import Actor, utc_now
from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed, refuse_stale_edit
from kernel.service import Database, ServiceBase, rpc
from contracts.events import identity as identity_events
from services.tenancy import domain, events, storage
from services.tenancy.storage import Connection, Membership, Tenant

MAX_PAGE = 200
MEMBERS_AMONG_CHUNK = 500  # ids per IN (...) of members_among


class TenancyService(ServiceBase):
    name = "tenancy"
    db = Database(storage.metadata)
    config = Config()  # config["GATEHOUSE"].secret_key seals connection secrets
    # who administers which tenant, the authority checks (kernel/authority.py); rbac never calls tenancy
    # back for them
    rbac = RpcProxy("rbac")

    # --- reacting to identity ------------------------------------------------------

    @on_event("identity", types=[identity_events.USER_CREATED, identity_events.USER_REGISTERED,
                                 identity_events.INVITATION_ACCEPTED])
    def enrol_new_user(self, event, uow):
        """A new user joins the tenant their event names first (an invitation's tenant), else `default`.
        An invitee joins the inviting tenant only: when it was deleted meanwhile, no tenant (as its
        members were left), never `default`, where its administrators would see them."""
        if event.type == identity_events.INVITATION_ACCEPTED:
            user_id, username, wanted = event.data["user_id"], event.data.get("username"), event.data.get("tenant_id")
            if not (wanted and uow.session.get(Tenant, wanted)):
                return
        elif event.data.get("invitation_id"):
            return  # registered through an invitation: invitation_accepted, of the same commit, names the tenant
        else:
            user_id, username = event.resource.id, event.data.get("username")
            wanted = event.tenant_ids[0] if event.tenant_ids else None
        tenant_id = wanted if wanted and uow.session.get(Tenant, wanted) else DEFAULT_TENANT_ID
        self._join(uow, user_id, username, tenant_id, event.actor)

    @on_event("identity", types=[identity_events.INVITATION_SENT])
    def enrol_invited(self, event, uow):
        """An invitation's placeholder belongs to the inviting tenant from the invitation on (no
        username yet): other tenants treat it as any user of a tenant they do not administer."""
        user_id, tenant_id = event.data.get("user_id"), event.tenant_ids[0] if event.tenant_ids else None
        if user_id and tenant_id and not event.data.get("resent") and uow.session.get(Tenant, tenant_id):
            self._join(uow, user_id, None, tenant_id, event.actor)

    @on_event("identity", types=[identity_events.INVITATION_REVOKED])
    def forget_revoked_placeholder(self, event, uow):
        """A revoked invitation's placeholder is gone (identity deleted it): so are its memberships."""
        if user_id := event.data.get("user_id"):
            for membership, _ in storage.memberships_of(uow.session, user_id):
                self._leave(uow, membership, event.actor, events.USER_GONE)

    @on_event("identity", types=[identity_events.USER_UPDATED])
    def follow_rename(self, event, uow):
        if "username" in event.data.get("changed", {}):
            uow.session.execute(sa.update(Membership).where(Membership.user_id == event.resource.id)
                                .values(username=event.data["profile"]["username"]))

    @on_event("identity", types=[identity_events.USER_REMOVED])
    def forget_removed_user(self, event, uow):
        for membership, _ in storage.memberships_of(uow.session, event.resource.id):
            self._leave(uow, membership, event.actor, events.USER_GONE)

    # --- the multi-tenancy switch ------------------------------------------------------

    @rpc
    def status(self):
        with self.db.unit_of_work() as uow:
            return self._status(uow.session)

    @rpc
    def enable(self, actor):
        """Idempotent: enabling again changes nothing and emits nothing. Super admins only."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "multi-tenancy")
        with self.db.unit_of_work() as uow:
            state = uow.session.get(storage.TenancyState, 1, with_for_update=True)
            if not state.enabled:
                self._switch(state, True, actor)
                connections = storage.counts(uow.session, Connection.tenant_id, [DEFAULT_TENANT_ID])
                users = storage.counts(uow.session, Membership.tenant_id, [DEFAULT_TENANT_ID])
                uow.emit(events.multi_tenancy_enabled(actor, connections.get(DEFAULT_TENANT_ID, 0),
                                                      users.get(DEFAULT_TENANT_ID, 0)))
                uow.commit()
            return self._status(uow.session)

    @rpc
    def disable(self, actor):
        """Refused while tenants other than `default` exist; idempotent like enable. Super admins only."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "multi-tenancy")
        with self.db.unit_of_work() as uow:
            state = uow.session.get(storage.TenancyState, 1, with_for_update=True)
            count = storage.tenant_count(uow.session)
            if domain.disable_refusal(count):
                raise Conflict(f"Multi-tenancy cannot be disabled while {count - 1} tenant(s) besides default exist; "
                               "delete them first.", code="tenants_exist", details={"tenants": str(count)})
            if state.enabled:
                self._switch(state, False, actor)
                uow.emit(events.multi_tenancy_disabled(actor))
                uow.commit()
            return self._status(uow.session)

    @rpc
    def adopt_users(self, actor, users):
        """Puts each user ({id, username}) that belongs to no tenant into `default`: users made
        before tenancy followed identity. Returns how many were adopted."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            ids = [user["id"] for user in users]
            known = set(uow.session.scalars(sa.select(Membership.user_id).where(Membership.user_id.in_(ids))))
            adopted = [user for user in users if user["id"] not in known]
            for user in adopted:
                self._join(uow, user["id"], user.get("username"), DEFAULT_TENANT_ID, actor)
            uow.commit()
        return len(adopted)

    @staticmethod
    def _switch(state, enabled, actor):
        state.enabled, state.changed_at = enabled, utc_now()
        state.changed_by, state.changed_by_name = actor.user_id, actor.username

    @staticmethod
    def _status(session) -> dict:
        state = storage.state(session)
        return {"enabled": state.enabled, "tenants": storage.tenant_count(session),
                "changed_at": storage.iso(state.changed_at), "changed_by": state.changed_by_name}

    # --- tenants -----------------------------------------------------------------------------

    @rpc
    def list_tenants(self, tenant_ids=None, limit=50, cursor=None):
        """Tenants, `default` first then by name; only those of `tenant_ids` when given."""
        offset = paging.offset_of(cursor)
        with self.db.unit_of_work() as uow:
            query = sa.select(Tenant)
            if tenant_ids is not None:
                query = query.where(Tenant.id.in_(tenant_ids))
            total = uow.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
            rows = list(uow.session.scalars(query.order_by(Tenant.id != DEFAULT_TENANT_ID, Tenant.name_key)
                                            .offset(offset).limit(_limit(limit))))
            items = self._public_tenants(uow.session, rows)
        return paging.page_answer(items, offset, total)

    @rpc
    def get_tenant(self, tenant_id):
        with self.db.unit_of_work() as uow:
            return self._public_tenants(uow.session, [self._tenant(uow.session, tenant_id)])[0]

    @rpc
    def tenant_exists(self, tenant_id):
        with self.db.unit_of_work() as uow:
            return uow.session.get(Tenant, tenant_id) is not None

    @rpc
    def create_tenant(self, actor, name, description=""):
        actor = Actor.from_dict(actor)
        fields = {"name": name, "description": description or ""}
        if problems := domain.tenant_problems(fields):
            raise ValidationFailed("The tenant has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            if not storage.state(uow.session).enabled:
                raise Conflict("Multi-tenancy is disabled: enable it first (POST /api/v1/tenancy/enable).",
                               code="multi_tenancy_disabled")
            self._refuse_taken_tenant(uow.session, name)
            now = utc_now()
            tenant = Tenant(id=str(uuid.uuid4()), name=name.strip(), name_key=domain.name_key(name),
                            description=fields["description"], created_at=now, updated_at=now, version=1)
            uow.session.add(tenant)
            uow.emit(events.tenant_created(tenant, actor))
            _commit_unique(uow, "A tenant with that name already exists.", "tenant_exists")
            return storage.public_tenant(tenant, 0, 0)

    @rpc
    def update_tenant(self, actor, tenant_id, changes, expected_version=None):
        """changes: name and/or description."""
        actor = Actor.from_dict(actor)
        if unknown := set(changes) - {"name", "description"}:
            raise ValidationFailed("Unknown fields.", details={field: "cannot be changed" for field in unknown})
        if problems := domain.tenant_problems(changes):
            raise ValidationFailed("The tenant has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            tenant = self._tenant(uow.session, tenant_id, for_update=True)
            refuse_stale_edit("tenant", tenant.version, expected_version)
            wanted = {"name": changes["name"].strip()} if changes.get("name") is not None else {}
            if changes.get("description") is not None:
                wanted["description"] = changes["description"]
            diff = {field: {"from": getattr(tenant, field), "to": value} for field, value in wanted.items()
                    if getattr(tenant, field) != value}
            if diff:
                if "name" in diff and domain.name_key(diff["name"]["to"]) != tenant.name_key:
                    self._refuse_taken_tenant(uow.session, diff["name"]["to"])
                for field, change in diff.items():
                    setattr(tenant, field, change["to"])
                tenant.name_key = domain.name_key(tenant.name)
                tenant.version += 1
                tenant.updated_at = utc_now()
                uow.emit(events.tenant_updated(tenant, actor, diff))
                _commit_unique(uow, "A tenant with that name already exists.", "tenant_exists")
            return self._public_tenants(uow.session, [tenant])[0]

    @rpc
    def delete_tenant(self, actor, tenant_id):
        """Refused for `default` and while the tenant owns connections; its memberships end
        (rbac drops its role assignments on the events)."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            tenant = self._tenant(uow.session, tenant_id, for_update=True)
            connections = storage.counts(uow.session, Connection.tenant_id, [tenant.id]).get(tenant.id, 0)
            refusal = domain.tenant_delete_refusal(tenant.id, connections)
            if refusal == "default_tenant_protected":
                raise Conflict("The default tenant cannot be deleted.", code=refusal)
            if refusal:
                raise Conflict(f"The tenant still owns {connections} connection(s); delete or reassign them first.",
                               code=refusal, details={"connections": str(connections)})
            members = storage.members(uow.session, tenant.id)
            for membership in members:
                self._leave(uow, membership, actor, events.TENANT_GONE)
            uow.session.flush()
            uow.session.delete(tenant)
            uow.emit(events.tenant_deleted(tenant, actor, len(members)))
            try:
                uow.commit()
            except IntegrityError:  # a connection or member arrived meanwhile
                raise Conflict("The tenant changed meanwhile; try again.", code="tenant_changed") from None

    @staticmethod
    def _tenant(session, tenant_id, for_update=False) -> Tenant:
        tenant = session.get(Tenant, tenant_id, with_for_update=for_update) if tenant_id else None
        if tenant is None:
            raise NotFound("No such tenant.", code="tenant_not_found", details={"tenant_id": tenant_id})
        return tenant

    @staticmethod
    def _refuse_taken_tenant(session, name):
        if storage.tenant_by_name(session, domain.name_key(name)):
            raise Conflict("A tenant with that name already exists.", code="tenant_exists",
                           details={"name": "already in use"})

    @staticmethod
    def _public_tenants(session, tenants) -> list[dict]:
        ids = [tenant.id for tenant in tenants]
        connections = storage.counts(session, Connection.tenant_id, ids)
        users = storage.counts(session, Membership.tenant_id, ids)
        return [storage.public_tenant(t, connections.get(t.id, 0), users.get(t.id, 0)) for t in tenants]

    # --- connections ------------------------------------------------------------------------

    @rpc
    def list_connections(self, tenant_id=None, limit=50, cursor=None):
        """The connections of one tenant, or of all (None), by name."""
        offset = paging.offset_of(cursor)
        with self.db.unit_of_work() as uow:
            query = sa.select(Connection)
            if tenant_id is not None:
                query = query.where(Connection.tenant_id == tenant_id)
            total = uow.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
            rows = uow.session.scalars(query.order_by(Connection.name_key).offset(offset).limit(_limit(limit)))
            items = [storage.public_connection(row) for row in rows]
        return paging.page_answer(items, offset, total)

    @rpc
    def get_connection(self, connection_id, tenant_id=None):
        with self.db.unit_of_work() as uow:
            return storage.public_connection(self._connection(uow.session, connection_id, tenant_id))

    @rpc
    def create_connection(self, actor, tenant_id, fields):
        """fields: name, url, auth, and optionally verify_tls (true), ca_pem, fingerprint, realm."""
        actor = Actor.from_dict(actor)
        fields = {"verify_tls": True, "realm": domain.DEFAULT_REALM, **fields}
        if unknown := set(fields) - CONNECTION_FIELDS:
            raise ValidationFailed("Unknown fields.", details={field: "is not a connection field" for field in unknown})
        problems = domain.connection_problems(fields, creating=True)
        problems.update(domain.tls_problems(fields["verify_tls"], fields.get("ca_pem"), fields.get("fingerprint")))
        if problems:
            raise ValidationFailed("The connection has invalid fields.", details=problems)
        method = domain.auth_method(fields["auth"])
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
            self._refuse_taken_connection(uow.session, fields["name"])
            now = utc_now()
            connection = Connection(
                id=str(uuid.uuid4()), tenant_id=tenant_id, name=fields["name"].strip(),
                name_key=domain.name_key(fields["name"]), url=domain.normalize_url(fields["url"])[0],
                verify_tls=fields["verify_tls"], ca_pem=fields.get("ca_pem") or None,
                fingerprint=_fingerprint(fields.get("fingerprint")), realm=fields["realm"], auth_method=method,
                login=fields["auth"][domain.LOGIN_FIELD[method]],
                secret_sealed=self._box().seal(fields["auth"][domain.SECRET_FIELD[method]]),
                created_at=now, updated_at=now, version=1)
            uow.session.add(connection)
            uow.emit(events.connection_created(connection, actor))
            _commit_unique(uow, "A connection with that name already exists.", "connection_exists")
            return storage.public_connection(connection)

    @rpc
    def update_connection(self, actor, connection_id, changes, tenant_id=None, expected_version=None):
        """changes: any of name, url, verify_tls, ca_pem, fingerprint (null removes these two),
        realm, auth. An auth without its secret keeps the stored one (same method only)."""
        actor = Actor.from_dict(actor)
        if unknown := set(changes) - CONNECTION_FIELDS:
            raise ValidationFailed("Unknown fields.", details={field: "is not a connection field" for field in unknown})
        if problems := domain.connection_problems(changes, creating=False):
            raise ValidationFailed("The connection has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            connection = self._connection(uow.session, connection_id, tenant_id, for_update=True)
            refuse_stale_edit("connection", connection.version, expected_version)
            wanted = self._wanted_connection(connection, changes)
            problems = domain.tls_problems(wanted["verify_tls"], wanted["ca_pem"], wanted["fingerprint"])
            if problems:
                raise ValidationFailed("The connection has invalid fields.", details=problems)
            new_secret = wanted.pop("secret", None)
            changed = [field for field, value in wanted.items() if getattr(connection, field) != value]
            if new_secret is not None and new_secret != self._box().open(connection.secret_sealed):
                changed.append("auth_secret")
                connection.secret_sealed = self._box().seal(new_secret)
            if changed:
                shown = {field: {"from": getattr(connection, field), "to": wanted[field]}
                         for field in changed if field in SHOWN_CHANGES}
                if "ca_pem" in changed:
                    shown["ca_pinned"] = {"from": bool(connection.ca_pem), "to": bool(wanted["ca_pem"])}
                if "name" in changed and domain.name_key(wanted["name"]) != connection.name_key:
                    self._refuse_taken_connection(uow.session, wanted["name"])
                for field, value in wanted.items():
                    setattr(connection, field, value)
                connection.name_key = domain.name_key(connection.name)
                connection.version += 1
                connection.updated_at = utc_now()
                uow.emit(events.connection_updated(connection, actor, shown, sorted(changed)))
                _commit_unique(uow, "A connection with that name already exists.", "connection_exists")
            return storage.public_connection(connection)

    @rpc
    def reassign_connection(self, actor, connection_id, to_tenant_id, tenant_id=None):
        """Moves the connection to another tenant (to the same: nothing happens)."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            connection = self._connection(uow.session, connection_id, tenant_id, for_update=True)
            self._tenant(uow.session, to_tenant_id)
            if connection.tenant_id != to_tenant_id:
                before = connection.tenant_id
                connection.tenant_id, connection.updated_at = to_tenant_id, utc_now()
                connection.version += 1
                uow.emit(events.connection_reassigned(connection, actor, before, to_tenant_id))
                uow.commit()
            return storage.public_connection(connection)

    @rpc
    def delete_connection(self, actor, connection_id, tenant_id=None):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            connection = self._connection(uow.session, connection_id, tenant_id, for_update=True)
            uow.session.delete(connection)
            uow.emit(events.connection_deleted(connection, actor))
            uow.commit()

    @rpc
    def connection_credentials(self, connection_id):
        """Internal, for proxmox_sync only (the gateway never exposes it): the connection with its secret."""
        with self.db.unit_of_work() as uow:
            connection = self._connection(uow.session, connection_id, None)
            return {**storage.public_connection(connection), "auth_method": connection.auth_method,
                    "login": connection.login, "secret": self._box().open(connection.secret_sealed)}

    def _box(self) -> SecretBox:
        return SecretBox(self.config["GATEHOUSE"].secret_key)

    @staticmethod
    def _connection(session, connection_id, tenant_id, for_update=False) -> Connection:
        connection = session.get(Connection, connection_id, with_for_update=for_update) if connection_id else None
        if connection is None or (tenant_id is not None and connection.tenant_id != tenant_id):
            raise NotFound("No such connection.", code="connection_not_found",
                           details={"connection_id": connection_id})
        return connection

    @staticmethod
    def _refuse_taken_connection(session, name):
        if storage.connection_by_name(session, domain.name_key(name)):
            raise Conflict("A connection with that name already exists.", code="connection_exists",
                           details={"name": "already in use"})

    @staticmethod
    def _wanted_connection(connection, changes) -> dict:
        """The connection's columns after `changes` (and "secret" when a new one is given)."""
        wanted = {"name": connection.name, "url": connection.url, "verify_tls": connection.verify_tls,
                  "ca_pem": connection.ca_pem, "fingerprint": connection.fingerprint, "realm": connection.realm,
                  "auth_method": connection.auth_method, "login": connection.login}
        if changes.get("name") is not None:
            wanted["name"] = changes["name"].strip()
        if changes.get("url") is not None:
            wanted["url"] = domain.normalize_url(changes["url"])[0]
        for field in ("verify_tls", "realm"):
            if changes.get(field) is not None:
                wanted[field] = changes[field]
        if "ca_pem" in changes:
            wanted["ca_pem"] = changes["ca_pem"] or None
        if "fingerprint" in changes:
            wanted["fingerprint"] = _fingerprint(changes["fingerprint"])
        if auth := changes.get("auth"):
            method = domain.auth_method(auth)
            secret = auth.get(domain.SECRET_FIELD[method])
            if secret is None and method != connection.auth_method:
                field = f"auth.{domain.SECRET_FIELD[method]}"
                raise ValidationFailed("The connection has invalid fields.",
                                       details={field: "is required when the authentication method changes"})
            wanted.update(auth_method=method, login=auth[domain.LOGIN_FIELD[method]], secret=secret)
        return wanted

    # --- memberships --------------------------------------------------------------------------

    @rpc
    def memberships_of(self, user_id):
        """The user's tenants, `default` first then by name."""
        with self.db.unit_of_work() as uow:
            rows = storage.memberships_of(uow.session, user_id)
        rows.sort(key=lambda row: domain.membership_order(row[1].id, row[1].name))
        return [{"tenant_id": tenant.id, "tenant_name": tenant.name, "is_default": membership.is_default}
                for membership, tenant in rows]

    @rpc
    def is_member(self, user_id, tenant_id):
        with self.db.unit_of_work() as uow:
            return uow.session.get(Membership, (tenant_id, user_id)) is not None

    @rpc
    def members_among(self, tenant_id, user_ids):
        """Those of `user_ids` that are members of the tenant (rbac's tenant view of platform-wide groups)."""
        user_ids, found = sorted(set(user_ids)), []
        with self.db.unit_of_work() as uow:
            for start in range(0, len(user_ids), MEMBERS_AMONG_CHUNK):
                chunk = user_ids[start:start + MEMBERS_AMONG_CHUNK]
                found += uow.session.scalars(sa.select(Membership.user_id).where(
                    Membership.tenant_id == tenant_id, Membership.user_id.in_(chunk)))
        return sorted(found)

    @rpc
    def get_membership(self, tenant_id, user_id):
        with self.db.unit_of_work() as uow:
            membership = uow.session.get(Membership, (tenant_id, user_id))
            if membership is None:
                raise NotFound("The user is not a member of that tenant.", code="not_a_member",
                               details={"user_id": user_id, "tenant_id": tenant_id})
            return storage.public_membership(membership)

    @rpc
    def list_members(self, tenant_id, limit=50, cursor=None):
        """Members of a tenant by username."""
        offset = paging.offset_of(cursor)
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
            where = Membership.tenant_id == tenant_id
            total = uow.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(where))
            rows = uow.session.scalars(sa.select(Membership).where(where)
                                       .order_by(Membership.username, Membership.user_id)
                                       .offset(offset).limit(_limit(limit)))
            items = [storage.public_membership(row) for row in rows]
        return paging.page_answer(items, offset, total)

    @rpc
    def assign_user(self, actor, tenant_id, user_id, username, role=None, make_default=False):
        """Makes the user a member of the tenant (already one: keeps it) and, with make_default, the
        tenant their sessions start in. rbac gives them `role` there from the event, so the
        membership and its role commit together here and cannot part. Returns (membership, created).
        The actor must have authority over the user in each of their tenants and this one, and may grant `role`."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
        self._refuse_takeover(actor, tenant_id, user_id)  # first: another tenant's user is unknown here
        self._require_authority(actor, user_id, tenant_id)
        if role and not actor.is_operator:
            self.rbac.check_assignable(actor.user_id, role, tenant_id, {})  # a new member is unscoped there
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
            membership, created = self._join(uow, user_id, username, tenant_id, actor, role, make_default,
                                             always_emit=True)
            uow.commit()
            return storage.public_membership(membership), created

    @rpc
    def check_takeover(self, actor, tenant_id, user_id):
        """The gateway asks before anything else about the user (their role, the role given), so that
        a user of tenants the actor does not administer answers exactly as an unknown id there too."""
        self._refuse_takeover(Actor.from_dict(actor), tenant_id, user_id)

    def _refuse_takeover(self, actor, tenant_id, user_id):
        """Only a super admin, or someone administering every tenant the user belongs to, brings
        them into another tenant (domain.membership_change_refusal). A user in no tenant the actor
        administers (another tenant's placeholder or member, a pending user of `default`) is
        answered exactly as identity answers an unknown id."""
        if actor.is_operator:
            return
        with self.db.unit_of_work() as uow:
            user_tenants = {m.tenant_id for m, _ in storage.memberships_of(uow.session, user_id)}
        if tenant_id in user_tenants:
            return
        if self.rbac.authorize(actor.user_id, SUPER_ADMIN_ONLY, tenant_id):
            return
        administered = {t for t in sorted(user_tenants) if self.rbac.authorize(actor.user_id, "admin.users", t)}
        refusal = domain.membership_change_refusal(False, administered, user_tenants, tenant_id)
        if refusal == "not_found":
            raise NotFound("No such user.", details={"user_id": user_id})
        if refusal:
            raise Forbidden("The user also belongs to tenants you do not administer.", code=refusal,
                            details={"user_id": user_id})

    @rpc
    def remove_user(self, actor, tenant_id, user_id):
        """Ends a membership (rbac takes the role there away); never the user's last one. The actor must
        have authority over the user in each of their tenants."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
            if uow.session.get(Membership, (tenant_id, user_id)) is None:  # as before: nothing to authorize
                raise NotFound("The user is not a member of that tenant.", code="not_a_member",
                               details={"user_id": user_id, "tenant_id": tenant_id})
        self._require_authority(actor, user_id, tenant_id)
        with self.db.unit_of_work() as uow:
            self._tenant(uow.session, tenant_id)
            mine = {m.tenant_id: m for m, _ in storage.memberships_of(uow.session, user_id, for_update=True)}
            refusal = domain.removal_refusal(set(mine), tenant_id)
            if refusal == "not_a_member":
                raise NotFound("The user is not a member of that tenant.", code=refusal,
                               details={"user_id": user_id, "tenant_id": tenant_id})
            if refusal:
                raise Conflict("This is the user's only tenant: a user always belongs to one. Assign them "
                               "to another tenant first.", code=refusal, details={"tenant_id": tenant_id})
            self._leave(uow, mine[tenant_id], actor, events.REMOVED)
            uow.commit()

    def _require_authority(self, actor, user_id, tenant_id) -> None:
        """The authority rule (docs/security.md), asked of rbac with every tenant the user belongs to here
        and the one being changed."""
        with self.db.unit_of_work() as uow:
            tenants = {membership.tenant_id for membership, _ in storage.memberships_of(uow.session, user_id)}
        require_authority(self.rbac, actor, user_id, tenants | {tenant_id})

    @staticmethod
    def _join(uow, user_id, username, tenant_id, actor, role=None, make_default=False, always_emit=False):
        """Adds or keeps the membership; returns (membership, created). Emits user_assigned_to_tenant
        when something changed, a role is to be given, or always_emit (an administrator's request)."""
        mine = {m.tenant_id: m for m, _ in storage.memberships_of(uow.session, user_id, for_update=True)}
        membership = mine.get(tenant_id)
        created = membership is None
        if created:
            membership = Membership(tenant_id=tenant_id, user_id=user_id, username=username,
                                    is_default=not mine, created_at=utc_now())
            uow.session.add(membership)
        elif username:
            membership.username = username
        default_changed = make_default and not membership.is_default
        if default_changed:
            for other in mine.values():
                other.is_default = False
            membership.is_default = True
        if created or default_changed or role or always_emit:
            uow.session.flush()
            uow.emit(events.user_assigned_to_tenant(membership, actor, role, not created))
        return membership, created

    @staticmethod
    def _leave(uow, membership, actor, reason):
        """Ends one membership; another tenant of the user becomes their default if this one was."""
        uow.session.delete(membership)
        uow.session.flush()
        rest = storage.memberships_of(uow.session, membership.user_id)
        if membership.is_default and rest:
            successor = domain.next_default([(tenant.id, tenant.name) for _, tenant in rest])
            for other, _ in rest:
                other.is_default = other.tenant_id == successor
        uow.emit(events.user_removed_from_tenant(membership, actor, reason))


CONNECTION_FIELDS = {"name", "url", "verify_tls", "ca_pem", "fingerprint", "realm", "auth"}
# What connection_updated shows of a change, from and to (ca_pem as ca_pinned; the secret never).
SHOWN_CHANGES = ("name", "url", "verify_tls", "fingerprint", "realm", "auth_method", "login")


def _fingerprint(value):
    return domain.normalize_fingerprint(value) if value else None


def _commit_unique(uow, message, code):
    """Commit; a concurrent writer that took the same unique name first makes this a conflict."""
    try:
        uow.commit()
    except IntegrityError:
        raise Conflict(message, code=code, details={"name": "already in use"}) from None


def _limit(limit) -> int:
    return max(1, min(int(limit or 50), MAX_PAGE))
