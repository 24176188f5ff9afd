"""Identity's RPC entrypoints: thin, the rules live in domain.py and storage.py."""
from __future__ import annotations

from eventlet import tpool
from sqlalchemy.exc import IntegrityError

from kernel.consumer import on_event
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, events, storage
from services.identity.storage import LoginSession, User, UserRole
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
    def get_user(self, user_id):
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user_id)
            if not user:
                raise NotFound("No such user.", details={"user_id": user_id})
            return storage.public_user(user)

    @staticmethod
    def _new_user(session, username, first_name, last_name, email, status, password_hash, is_first_admin=False):
        user = User(username=username, first_name=first_name.strip(), last_name=last_name.strip(),
                    email=email, company="", status=status, password_hash=password_hash,
                    uid_number=storage.allocate_uid_number(session), is_first_admin=is_first_admin,
                    created_at=utc_now())
        user.refresh_search_text()
        session.add(user)
        session.flush()
        return user
