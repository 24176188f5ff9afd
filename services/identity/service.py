"""Identity's RPC entrypoints: thin, the rules live in domain.py and storage.py."""
from __future__ import annotations

from eventlet import tpool
from nameko.dependency_providers import Config as NamekoConfig
from sqlalchemy.exc import IntegrityError

from kernel.consumer import on_event
from kernel.crypto import new_token, token_digest
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.errors import Conflict, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, events, sessions, storage
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
    config = NamekoConfig()  # config["GATEHOUSE"]: the kernel Config (token lifetimes, throttle limits)

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
    def login(self, actor, login, password, user_agent=""):
        """Check a password; returns the user, a new session id and its first refresh token.

        An unknown user costs one hash verification too, and a locked account is
        answered exactly like a wrong password, so neither timing nor answer tells them apart.
        """
        actor = Actor.from_dict(actor)
        rules, now = self._throttle_rules(), utc_now()
        with self.db.unit_of_work() as uow:
            user = storage.find_by_login(uow.session, login)
            known_hash = user.password_hash if user else None
            account = sessions.account_key(user.id) if user else sessions.unknown_login_key(login)
            ip_wait = sessions.retry_after(self._throttle(uow, sessions.ip_key(actor.ip)), now)
            account_wait = sessions.retry_after(self._throttle(uow, account), now)
            if ip_wait:
                uow.emit(events.login_throttled(user, actor, domain.loggable_login(login), "ip", ip_wait))
                uow.commit()
                raise TooManyRequests("Too many failed sign-ins from this address; try again later.",
                                      code="too_many_attempts", details={"retry_after": ip_wait},
                                      retry_after=ip_wait)
        password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), password or "")
        password_ok = password_ok and known_hash is not None
        refusal = "account_locked" if account_wait else domain.login_refusal(user.status if user else None,
                                                                             password_ok)
        if refusal:
            self._refuse_login(user, actor, login, refusal, password_ok, account, account_wait, rules)
        new_hash = tpool.execute(domain.hash_password, password) if domain.needs_rehash(known_hash) else None
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user.id)
            if user is None or user.status != domain.ACTIVE:  # changed while the hash was checked
                raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
            now = utc_now()
            user.last_login_at = now
            if new_hash:
                user.password_hash = new_hash
            storage.clear_throttle(uow.session, account)  # the address keeps its count
            session = LoginSession(user_id=user.id, created_at=now, last_used_at=now, ip=actor.ip,
                                   user_agent=sessions.user_agent(user_agent),
                                   expires_at=sessions.session_expiry(now, self._refresh_ttl()))
            uow.session.add(session)
            uow.session.flush()
            refresh_token = self._issue_refresh_token(uow, session.id, now)
            uow.emit(events.login_succeeded(user, actor.as_user(user.id, user.username), session.id))
            uow.commit()
        return {"user": storage.public_user(user), "session_id": session.id, "refresh_token": refresh_token}

    def _refuse_login(self, user, actor, login, refusal, password_ok, account, account_wait, rules):
        """Record the refused attempt (audit, throttle counters) and raise its answer."""
        shown = domain.loggable_login(login)
        with self.db.unit_of_work() as uow:
            uow.emit(events.login_failed(user, actor, shown, refusal))
            if account_wait:
                uow.emit(events.login_throttled(user, actor, shown, "account", account_wait))
            if sessions.counts_as_failure(refusal, password_ok):
                self._count_failure(uow, account, rules.max_failures, rules)
                self._count_failure(uow, sessions.ip_key(actor.ip), rules.ip_max_failures, rules)
            uow.commit()
        if refusal.startswith("status_"):
            raise Unauthorized(NOT_ACTIVE[user.status], code="account_not_active")
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")

    @rpc
    def refresh(self, actor, refresh_token):
        """Trade a refresh token for a new one (the old one is spent); returns the user and session id.

        A spent token presented again means two parties hold it: the whole session is revoked.
        """
        actor = Actor.from_dict(actor)
        digest = token_digest(refresh_token)
        with self.db.unit_of_work() as uow:
            now = utc_now()
            token = storage.refresh_token(uow.session, digest)
            session = token and uow.session.get(LoginSession, token.session_id)
            user = session and uow.session.get(User, session.user_id)
            if not token or not user or sessions.session_problem(session.revoked_at, session.expires_at,
                                                                 user.status, now):
                raise Unauthorized("The refresh token is not valid; sign in again.", code="refresh_token_invalid")
            if not storage.use_refresh_token(uow.session, digest, now):
                revoked = storage.revoke([session], now, sessions.SESSION_REUSE)
                uow.emit(events.sessions_revoked(user, actor.as_user(user.id, user.username), revoked,
                                                 sessions.SESSION_REUSE))
                uow.commit()
                raise Unauthorized("The refresh token was already used; the session is closed for safety.",
                                   code="refresh_token_reused")
            session.last_used_at = now
            session.expires_at = sessions.session_expiry(now, self._refresh_ttl())
            new_token = self._issue_refresh_token(uow, session.id, now)
            uow.commit()
        return {"user": storage.public_user(user), "session_id": session.id, "refresh_token": new_token}

    @rpc
    def session_user(self, session_id):
        """The user behind a live session; Unauthorized once it is revoked or expired or the user is not active."""
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            user = session and uow.session.get(User, session.user_id)
            if not user or sessions.session_problem(session.revoked_at, session.expires_at, user.status, utc_now()):
                raise Unauthorized("The session is no longer valid.", code="session_invalid")
            return storage.public_user(user)

    @rpc
    def logout(self, actor, session_id):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            user = session and uow.session.get(User, session.user_id)
            if user and session.revoked_at is None:
                storage.revoke([session], utc_now(), "logout")
                uow.emit(events.logout(user, actor, session.id))
                uow.commit()

    @rpc
    def list_sessions(self, user_id, current_session_id=None, limit=50, cursor=None):
        """A user's live sessions, newest first; `cursor` is the previous page's next_cursor."""
        offset = int(cursor) if cursor and str(cursor).isdigit() else 0
        with self.db.unit_of_work() as uow:
            self._user(uow, user_id)
            rows, total = storage.live_sessions(uow.session, user_id, utc_now(), offset, limit)
        following = offset + len(rows)
        return {"items": [storage.public_session(row, current_session_id) for row in rows],
                "next_cursor": str(following) if following < total else None, "total": total}

    @rpc
    def revoke_session(self, actor, user_id, session_id):
        """Ends one of the user's sessions; NotFound for a session of someone else."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            if session is None or session.user_id != user_id:
                raise NotFound("No such session.", details={"session_id": session_id})
            if session.revoked_at is None:
                user = self._user(uow, user_id)
                revoked = storage.revoke([session], utc_now(), "user_request")
                uow.emit(events.sessions_revoked(user, actor, revoked, "user_request"))
                uow.commit()

    @rpc
    def revoke_sessions(self, actor, user_id, reason, keep_session_id=None):
        """Ends every live session of the user except `keep_session_id`; returns the ids ended."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            revoked = self._revoke_all(uow, user, actor, reason, keep_session_id)
            if not revoked and reason == "admin":  # an administrator's action is recorded all the same
                uow.emit(events.sessions_revoked(user, actor, [], reason))
            uow.commit()
        return revoked

    @rpc
    def change_password(self, actor, session_id, current_password, new_password):
        """The signed-in user's own change: the current password is checked (and throttled
        like a login), then every other session of the user ends."""
        actor = Actor.from_dict(actor)
        rules, now = self._throttle_rules(), utc_now()
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            user = session and uow.session.get(User, session.user_id)
            if not user or sessions.session_problem(session.revoked_at, session.expires_at, user.status, now):
                raise Unauthorized("The session is no longer valid.", code="session_invalid")
            account = sessions.account_key(user.id)
            account_wait = sessions.retry_after(self._throttle(uow, account), now)
            policy = storage.password_policy(uow.session)
            known_hash = user.password_hash
        if problems := domain.password_problems(new_password or "", policy, user.username or ""):
            raise ValidationFailed("The new password is not acceptable.",
                                   details={"new_password": "; ".join(problems)})
        password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), current_password or "")
        password_ok = password_ok and known_hash is not None
        if account_wait or not password_ok:
            refusal = "account_locked" if account_wait else "bad_password"
            with self.db.unit_of_work() as uow:
                uow.emit(events.login_failed(user, actor, user.username or user.email, refusal, via="password_change"))
                if account_wait:
                    uow.emit(events.login_throttled(user, actor, user.username or user.email, "account", account_wait))
                if not password_ok:
                    self._count_failure(uow, account, rules.max_failures, rules)
                uow.commit()
            raise Unauthorized("The current password is not correct.", code="invalid_credentials",
                               details={"current_password": "is not correct"})
        new_hash = tpool.execute(domain.hash_password, new_password)
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user.id)
            if user is None or user.password_hash != known_hash:  # removed, or changed meanwhile
                raise Conflict("The password was changed meanwhile; sign in again.", code="password_changed")
            now = utc_now()
            user.password_hash, user.must_change_password, user.updated_at = new_hash, False, now
            storage.clear_throttle(uow.session, account)
            uow.emit(events.password_changed(user, actor))
            self._revoke_all(uow, user, actor, "password_changed", keep_session_id=session_id)
            uow.commit()

    @rpc
    def unlock_account(self, actor, user_id):
        """Lifts an account's lock after failed sign-ins (the client addresses keep theirs)."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            storage.clear_throttle(uow.session, sessions.account_key(user.id))
            uow.emit(events.account_unlocked(user, actor))
            uow.commit()

    def _revoke_all(self, uow, user, actor, reason, keep_session_id=None) -> list[str]:
        live, _ = storage.live_sessions(uow.session, user.id, utc_now())
        revoked = storage.revoke([s for s in live if s.id != keep_session_id], utc_now(), reason)
        if revoked:
            uow.emit(events.sessions_revoked(user, actor, revoked, reason))
        return revoked

    def _issue_refresh_token(self, uow, session_id, now) -> str:
        token = new_token()
        storage.add_refresh_token(uow.session, session_id, token_digest(token), now)
        return token

    def _throttle(self, uow, key):
        row = storage.throttle(uow.session, key)
        return row and sessions.Throttle(row.failures, row.first_failure_at, row.locked_until)

    def _count_failure(self, uow, key, limit, rules):
        state = sessions.after_failure(self._throttle(uow, key), utc_now(), limit, rules)
        storage.save_throttle(uow.session, key, state)

    def _throttle_rules(self) -> sessions.ThrottleRules:
        return sessions.ThrottleRules.from_config(self.config["GATEHOUSE"])

    def _refresh_ttl(self) -> int:
        return self.config["GATEHOUSE"].integer("GATEHOUSE_REFRESH_TOKEN_TTL")

    @staticmethod
    def _user(uow, user_id) -> User:
        user = uow.session.get(User, user_id)
        if not user:
            raise NotFound("No such user.", details={"user_id": user_id})
        return user

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
