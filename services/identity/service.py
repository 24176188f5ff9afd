"""Identity's RPC entrypoints: thin, the rules live in domain.py and storage.py."""
from __future__ import annotations

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID

from kernel.consumer import on_event
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unauthorized, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, events, storage
from services.identity.storage import Invitation, LoginSession, User, UserRole
from services.rbac import events as rbac_events

INVALID_CREDENTIALS = "Invalid username or password."
NOT_ACTIVE = {
    domain.PENDING: "This account is waiting for an administrator's approval.",
    domain.INVITED: "This account has not accepted its invitation yet.",
    domain.SUSPENDED: "This account is disabled.",
}
# Computed now, so the first login of an unknown user costs one hash like any other.
domain.dummy_hash()


class IdentityService(ServiceBase):
    name = "identity"
    db = Database(storage.metadata)

    # --- read models fed by other services --------------------------------------

    @on_event("rbac", types=[rbac_events.ROLE_ASSIGNED, rbac_events.ROLE_UNASSIGNED])
    def track_role(self, event, uow):
        """The user list's role column: one query sorts and pages users with their role."""
        data = event.data
        role = None if event.type == rbac_events.ROLE_UNASSIGNED else data["role"]
        row = uow.session.get(UserRole, (data["user_id"], data["tenant_id"]))
        if row is None:
            uow.session.add(UserRole(user_id=data["user_id"], tenant_id=data["tenant_id"], role=role,
                                     as_of=event.occurred_at))
        elif row.as_of <= event.occurred_at:  # events of one user may be handled out of order
            row.role, row.as_of = role, event.occurred_at

    # --- accounts ------------------------------------------------------------------

    @rpc
    def register(self, actor, username, first_name, last_name, email, password):
        """Self-registration: a pending user that an administrator approves."""
        with self.db.unit_of_work() as uow:
            policy = storage.password_policy(uow.session)
        problems = domain.registration_problems(username, first_name, last_name, email, password, policy)
        if problems:
            raise ValidationFailed("The registration has invalid fields.", details=problems)
        email = domain.normalize_email(email)[0]
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            if taken := storage.conflicts(uow.session, username, email):
                raise Conflict("That username or email is already in use.", code="user_exists", details=taken)
            try:
                user = self._new_user(uow.session, username, first_name, last_name, email,
                                      domain.PENDING, password_hash)
            except IntegrityError:  # a concurrent registration took the name first
                raise Conflict("That username or email is already in use.", code="user_exists") from None
            uow.emit(events.user_registered(user, Actor.from_dict(actor)))
            uow.commit()
        return storage.public_user(user)

    @rpc
    def bootstrap_admin(self, username, password=None):
        """Create the first super admin once; later calls change nothing.

        Returns the generated password when none was given: the only time it is shown.
        """
        generated = None if password else domain.generate_password()
        password = password or generated
        problems = {}
        if problem := domain.username_problem(username):
            problems["username"] = problem
        with self.db.unit_of_work() as uow:
            policy = storage.password_policy(uow.session)
        if found := domain.password_problems(password, policy, username):
            problems["password"] = "; ".join(found)
        if problems:
            raise ValidationFailed("The first administrator's settings are invalid.", details=problems)
        with self.db.unit_of_work() as uow:
            existing = storage.first_admin(uow.session)
            if existing:
                return {"created": False, "user": storage.public_user(existing), "password": None}
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            if existing := storage.first_admin(uow.session):  # another instance won the race
                return {"created": False, "user": storage.public_user(existing), "password": None}
            if taken := storage.conflicts(uow.session, username, f"{username}@localhost"):
                raise Conflict("That username is already in use.", code="user_exists", details=taken)
            user = self._new_user(uow.session, username, "Super", "Admin", f"{username}@localhost",
                                  domain.ACTIVE, password_hash, is_first_admin=True)
            uow.emit(events.user_created(user, SYSTEM, first_admin=True))
            uow.commit()
        return {"created": True, "user": storage.public_user(user), "password": generated}

    # --- sessions and login protection ----------------------------------------------

    @rpc
    def login(self, actor, login, password):
        """Check a password; returns the user and a new session id, or raises Unauthorized.

        An unknown user costs one hash verification too, so timing tells nothing.
        """
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            user = storage.find_by_login(uow.session, login)
            known_hash = user.password_hash if user else None
        password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), password or "")
        password_ok = password_ok and known_hash is not None
        refusal = domain.login_refusal(user.status if user else None, password_ok)
        new_hash = None
        if refusal is None and domain.needs_rehash(known_hash):
            new_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            if refusal:
                uow.emit(events.login_failed(user, actor, domain.loggable_login(login), refusal))
                uow.commit()
                if refusal.startswith("status_"):
                    raise Unauthorized(NOT_ACTIVE[user.status], code="account_not_active")
                raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
            user = uow.session.get(User, user.id)
            if user is None or user.status != domain.ACTIVE:  # changed while the hash was checked
                raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
            now = utc_now()
            user.last_login_at = now
            if new_hash:
                user.password_hash = new_hash
            session = LoginSession(user_id=user.id, created_at=now, ip=actor.ip)
            uow.session.add(session)
            uow.session.flush()
            uow.emit(events.login_succeeded(user, actor.as_user(user.id, user.username), session.id))
            uow.commit()
        return {"user": storage.public_user(user), "session_id": session.id}

    @rpc
    def session_user(self, session_id):
        """The user behind a live session; Unauthorized once it is revoked or the user is not active."""
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            user = session and uow.session.get(User, session.user_id)
            if not user or session.revoked_at or user.status != domain.ACTIVE:
                raise Unauthorized("The session is no longer valid.", code="session_invalid")
            return storage.public_user(user)

    # --- invitations, password resets, mail, settings ----------------------------------

    # --- user administration -----------------------------------------------------

    @rpc
    def get_user(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            return storage.admin_user(user, storage.role_of(uow.session, user_id, tenant_id))

    @rpc
    def list_users(self, tenant_id=DEFAULT_TENANT_ID, q=None, status=None, role=None, sort="created_at",
                   order="desc", limit=50, cursor=None):
        problems = {}
        if status is not None and status not in domain.STATUSES:
            problems["status"] = f"must be one of {', '.join(domain.STATUSES)}"
        if sort not in domain.USER_SORTS:
            problems["sort"] = f"must be one of {', '.join(domain.USER_SORTS)}"
        if order not in domain.ORDERS:
            problems["order"] = "must be asc or desc"
        if not (isinstance(limit, int) and 1 <= limit <= 200):
            problems["limit"] = "must be between 1 and 200"
        offset = domain.decode_cursor(cursor)
        if offset is None:
            problems["cursor"] = "is not a cursor of this list"
        if problems:
            raise ValidationFailed("The user list query has invalid parameters.", details=problems)
        with self.db.unit_of_work() as uow:
            rows, total = storage.list_users(uow.session, tenant_id, q=q, status=status, role=role, sort=sort,
                                             order=order, limit=limit, offset=offset)
            items = [storage.admin_user(user, user_role) for user, user_role in rows]
        more = offset + len(items) < total
        return {"items": items, "next_cursor": domain.encode_cursor(offset + len(items)) if more else None,
                "total": total}

    @rpc
    def create_user(self, actor, username, email, first_name, last_name, company=""):
        """An active account made by an administrator, with a generated password shown once
        (returned here, never stored in clear, never in an event) that must be changed."""
        fields = {"username": username, "email": email, "first_name": first_name, "last_name": last_name,
                  "company": company or ""}
        if problems := domain.profile_problems(fields):
            raise ValidationFailed("The user has invalid fields.", details=problems)
        fields = domain.clean_profile(fields)
        with self.db.unit_of_work() as uow:  # fail fast, before paying for a hash
            self._refuse_taken(uow, fields["username"], fields["email"])
        password = domain.generate_password()
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            self._refuse_taken(uow, fields["username"], fields["email"])
            try:
                user = self._new_user(uow.session, fields["username"], fields["first_name"], fields["last_name"],
                                      fields["email"], domain.ACTIVE, password_hash, company=fields["company"])
            except IntegrityError:  # a concurrent request took the name first
                raise Conflict("That username or email is already in use.", code="user_exists") from None
            user.must_change_password = True
            uow.emit(events.user_created(user, Actor.from_dict(actor)))
            uow.commit()
        return {"user": storage.admin_user(user, None), "password": password}

    @rpc
    def update_user(self, actor, user_id, changes, expected_version=None, role=None, tenant_id=DEFAULT_TENANT_ID):
        """Partial update of profile fields and status. `role` is the role the caller is about
        to assign through rbac: checked here (first admin) before anything changes."""
        actor = Actor.from_dict(actor)
        changes = dict(changes)
        status = changes.pop("status", None)
        if unknown := set(changes) - set(domain.PROFILE_FIELDS):
            raise ValidationFailed("Unknown fields.", details={field: "cannot be changed here" for field in unknown})
        if problems := domain.profile_problems(changes):
            raise ValidationFailed("The user has invalid fields.", details=problems)
        if status is not None and status not in domain.STATUSES:
            raise ValidationFailed("Unknown status.", details={"status": f"must be one of {', '.join(domain.STATUSES)}"})
        changes = domain.clean_profile(changes)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            if expected_version is not None and expected_version != user.version:
                raise PreconditionFailed("The user changed since you read it; reload and retry.",
                                         details={"version": user.version})
            current_role = storage.role_of(uow.session, user_id, tenant_id)
            if role is not None and role != current_role:
                self._refuse_protected(domain.CHANGE_ROLE, actor, user)
            before = user.status
            if status is not None and status != before:
                if problem := domain.status_change_problem(before, status):
                    raise Conflict(f"The status cannot change from {before} to {status}.",
                                   code="invalid_status_change", details={"from": before, "to": status,
                                                                          "status": problem})
                if status == domain.SUSPENDED:
                    self._refuse_protected(domain.SUSPEND, actor, user)
            changed = {field: {"from": getattr(user, field), "to": value}
                       for field, value in changes.items() if getattr(user, field) != value}
            taken = storage.conflicts(uow.session, changed.get("username", {}).get("to"),
                                      changed.get("email", {}).get("to"), excluding=user.id)
            if taken:
                raise Conflict("That username or email is already in use.", code="user_exists", details=taken)
            if not changed and (status is None or status == before):
                return storage.admin_user(user, current_role)
            for field, change in changed.items():
                setattr(user, field, change["to"])
            if status is not None:
                user.status = status
            user.refresh_search_text()
            user.version += 1
            user.updated_at = utc_now()
            try:
                uow.session.flush()
            except IntegrityError:  # a concurrent request took the name first
                raise Conflict("That username or email is already in use.", code="user_exists") from None
            if changed:
                uow.emit(events.user_updated(user, actor, changed))
            if user.status != before:
                uow.emit(events.user_status_changed(user, actor, before, user.status))
            uow.commit()
            return storage.admin_user(user, current_role)

    @rpc
    def remove_user(self, actor, user_id):
        """Deletes the account (its sessions go with it); audit keeps what it did, by name."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            self._refuse_protected(domain.DELETE, actor, user)
            if user.status == domain.INVITED:
                pending = uow.session.scalars(sa.select(Invitation).where(
                    Invitation.user_id == user.id, Invitation.status == "pending"))
                for invitation in pending:
                    invitation.status = "revoked"
                    uow.emit(events.invitation_revoked(invitation, actor))
            uow.emit(events.user_removed(user, actor))
            uow.session.execute(sa.delete(User).where(User.id == user.id))
            uow.commit()

    @staticmethod
    def _user(uow, user_id, for_update=False) -> User:
        user = uow.session.get(User, user_id, with_for_update=for_update)
        if not user:
            raise NotFound("No such user.", details={"user_id": user_id})
        return user

    @staticmethod
    def _refuse_taken(uow, username, email):
        if taken := storage.conflicts(uow.session, username, email):
            raise Conflict("That username or email is already in use.", code="user_exists", details=taken)

    @staticmethod
    def _refuse_protected(action, actor, user):
        problem = domain.protection_problem(action, actor.user_id, user.id, user.is_first_admin)
        if problem == domain.OWN_ACCOUNT:
            raise Forbidden(f"You cannot {action} your own account.", code=problem, details={"user_id": user.id})
        if problem == domain.FIRST_ADMIN_PROTECTED:
            what = "role changed" if action == domain.CHANGE_ROLE else f"{action}d"
            raise Forbidden(f"The first administrator cannot be {what}.", code=problem,
                            details={"user_id": user.id})

    @staticmethod
    def _new_user(session, username, first_name, last_name, email, status, password_hash, is_first_admin=False,
                  company=""):
        user = User(username=username, first_name=first_name.strip(), last_name=last_name.strip(),
                    email=email, company=company, status=status, password_hash=password_hash,
                    uid_number=storage.allocate_uid_number(session), is_first_admin=is_first_admin,
                    created_at=utc_now())
        user.refresh_search_text()
        session.add(user)
        session.flush()
        return user
