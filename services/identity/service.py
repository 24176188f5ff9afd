"""Identity's RPC entrypoints: thin, the rules live in domain.py and storage.py."""
from __future__ import annotations

import dataclasses
import logging
import os
from datetime import timedelta

import sqlalchemy as sa
from eventlet import tpool
from nameko.dependency_providers import Config as NamekoConfig
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, paging
from kernel.authority import require_authority, require_super_admin
from kernel.consumer import on_event
from kernel.crypto import SecretBox, new_token, token_digest
from kernel.db import aware
from kernel.envelope import SYSTEM, Actor, Resource, utc_now, utc_now_iso
from kernel.errors import (Conflict, Forbidden, Gone, NotFound, TooManyRequests, Unauthorized, ValidationFailed,
                           refuse_stale_edit)
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, events, limits, mail, ratelimit, resets, sessions, storage, twofactor
from services.identity import invitations as invitation_rules
from services.identity.mailer import Mailer
from services.identity.storage import Invitation, LoginSession, MailJob, Membership, PasswordReset, User, UserRole
from services.rbac import events as rbac_events
from services.tenancy import events as tenancy_events

# argon2 is memory-hard: more hashes at once than cores only thrash the caches (measured:
# 8 threads verify ~35% fewer per second than 2). Hashing is all identity runs in threads.
tpool.set_num_threads(os.cpu_count() or 1)

INVALID_CREDENTIALS = "Invalid username or password."
NOT_ACTIVE = {
    domain.PENDING: "This account is waiting for an administrator's approval.",
    domain.INVITED: "This account has not accepted its invitation yet.",
    domain.SUSPENDED: "This account is disabled.",
}
# Computed now, so the first login of an unknown user costs one hash like any other.
domain.dummy_hash()
log = logging.getLogger(__name__)


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
    rbac = RpcProxy("rbac")  # the authority checks (kernel/authority.py); rbac never calls identity back for them

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

    @on_event("tenancy", types=[tenancy_events.USER_ASSIGNED_TO_TENANT, tenancy_events.USER_REMOVED_FROM_TENANT])
    def track_membership(self, event, uow):
        """Which tenants a user belongs to: the user list shows a tenant's members, sign-in
        starts a session in one of the user's tenants."""
        data = event.data
        row = uow.session.get(Membership, (data["user_id"], data["tenant_id"]))
        if row is not None and row.as_of > event.occurred_at:  # a later change was applied already
            return
        if event.type == tenancy_events.USER_ASSIGNED_TO_TENANT:
            storage.join_tenant(uow.session, data["user_id"], data["tenant_id"], event.occurred_at,
                                is_default=bool(data.get("is_default")), confirmed=True)
        elif row is not None:
            storage.leave_tenant(uow.session, row, event.occurred_at)
        else:  # removed before identity heard of it: remember, so the late assignment changes nothing
            uow.session.add(Membership(user_id=data["user_id"], tenant_id=data["tenant_id"], member=False,
                                       is_default=False, confirmed=True, as_of=event.occurred_at))

    # --- accounts ------------------------------------------------------------------

    @rpc
    def register(self, actor, username, first_name, last_name, email=None, password=None, invitation_token=None):
        """Self-registration: a pending user that an administrator approves; through an
        invitation link (invitation_token): the invited account, active at once."""
        if invitation_token:
            return self._register_invited(actor, invitation_token, username, first_name, last_name, email, password)
        with self.db.unit_of_work() as uow:
            self._enforce_limits(uow, Actor.from_dict(actor), [("registrations_per_ip", actor.get("ip"), 1)])
            uow.commit()  # every attempt counts, valid or not
        with self.db.unit_of_work() as uow:
            policy = storage.password_policy(uow.session)
        problems = domain.registration_problems(username, first_name, last_name, email, password, policy)
        if problems:
            raise ValidationFailed("The registration has invalid fields.", details=problems)
        email = domain.normalize_email(email)[0]
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            self._refuse_taken(uow, username, email)
            try:
                user = self._new_user(uow.session, username, first_name, last_name, email,
                                      domain.PENDING, password_hash, tenant_id=DEFAULT_TENANT_ID)
            except IntegrityError:  # a concurrent registration took the name first
                raise Conflict("That username or email is already in use.", code="user_exists") from None
            uow.emit(*events.in_tenants((DEFAULT_TENANT_ID,), events.user_registered(user, Actor.from_dict(actor))))
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
                                  domain.ACTIVE, password_hash, is_first_admin=True, tenant_id=DEFAULT_TENANT_ID)
            uow.emit(*events.in_tenants((DEFAULT_TENANT_ID,), events.user_created(user, SYSTEM, first_admin=True)))
            uow.commit()
        return {"created": True, "user": storage.public_user(user), "password": generated}

    # --- sessions and login protection ----------------------------------------------

    @rpc
    def login(self, actor, login, password, user_agent=""):
        """Check a password; returns the user, a new session id and its first refresh token,
        or, for an account with 2FA, only a login ticket for the second step (login_second_factor).

        An unknown user costs one hash verification too, and a locked account is
        answered exactly like a wrong password, so neither timing nor answer tells them apart.
        """
        actor = Actor.from_dict(actor)
        rules, now = self._throttle_rules(), utc_now()
        with self.db.unit_of_work() as uow:
            user = storage.find_by_login(uow.session, login)
            known_hash = user.password_hash if user else None
            account = sessions.account_key(user.id) if user else sessions.unknown_login_key(login)
            address = sessions.ip_key(actor.ip)
            throttled = self._throttles(uow, address, account)
            ip_wait = sessions.retry_after(throttled.get(address), now)
            account_wait = sessions.retry_after(throttled.get(account), now)
            if ip_wait:
                self._emit_about(uow, user, events.login_throttled(user, actor, domain.loggable_login(login), "ip",
                                                                   ip_wait))
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
            if new_hash:
                user.password_hash = new_hash
            storage.clear_throttle(uow.session, account)  # the address keeps its count
            if user.totp_enrolled:
                return self._challenge_second_factor(uow, user, actor, now)
            signed_in = self._open_session(uow, user, actor, user_agent, now)
            uow.commit()
            return signed_in

    def _open_session(self, uow, user, actor, user_agent, now, second_factor=None) -> dict:
        """A new session of a user who passed every step of sign-in; the caller commits."""
        user.last_login_at = now
        # Sign-in is the hot path: the session's tenant and the event's tenants come from one query,
        # the session and its token are Core inserts (no ORM objects to flush).
        tenant_id, user_tenant_ids = storage.sign_in_tenants(uow.session, user.id)
        session_id = storage.add_login_session(uow.session, user.id, now, actor.ip, sessions.user_agent(user_agent),
                                               sessions.session_expiry(now, self._refresh_ttl()), tenant_id)
        refresh_token = self._issue_refresh_token(uow, session_id, now)
        uow.emit(*events.in_tenants(user_tenant_ids, events.login_succeeded(
            user, actor.as_user(user.id, user.username, user.full_name, user.email), session_id, second_factor)))
        return {"user": storage.signed_in_user(uow.session, user), "session_id": session_id,
                "refresh_token": refresh_token, "tenant_id": tenant_id}

    def _refuse_login(self, user, actor, login, refusal, password_ok, account, account_wait, rules):
        """Record the refused attempt (audit, throttle counters) and raise its answer."""
        shown = domain.loggable_login(login)
        with self.db.unit_of_work() as uow:
            refused = [events.login_failed(user, actor, shown, refusal)]
            if account_wait:
                refused.append(events.login_throttled(user, actor, shown, "account", account_wait))
            self._emit_about(uow, user, *refused)
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
            session, user = self._live_session(uow, token and token.session_id, now)
            if not user:
                raise Unauthorized("The refresh token is not valid; sign in again.", code="refresh_token_invalid")
            if not storage.use_refresh_token(uow.session, digest, now):
                revoked = storage.revoke([session], now, sessions.SESSION_REUSE)
                self._emit_about(uow, user, events.sessions_revoked(
                    user, actor.as_user(user.id, user.username, user.full_name, user.email), revoked,
                    sessions.SESSION_REUSE))
                uow.commit()
                raise Unauthorized("The refresh token was already used; the session is closed for safety.",
                                   code="refresh_token_reused")
            session.last_used_at = now
            session.expires_at = sessions.session_expiry(now, self._refresh_ttl())
            new_token = self._issue_refresh_token(uow, session.id, now)
            uow.commit()
            return {"user": storage.signed_in_user(uow.session, user), "session_id": session.id,
                    "refresh_token": new_token}

    @rpc
    def session_user(self, session_id):
        """The user behind a live session (with what 2FA owes: totp_enrollment_required); Unauthorized once
        it is revoked or expired or the user is not active."""
        with self.db.unit_of_work() as uow:
            session, user = self._live_session(uow, session_id, utc_now())
            if not user:
                raise Unauthorized("The session is no longer valid.", code="session_invalid")
            return self._session_user(uow, session, user)

    @staticmethod
    def _session_user(uow, session, user) -> dict:
        """The user with the session's tenant (`session_tenant_id`) and their membership there:
        `tenant_membership` "confirmed" (tenancy told), "provisional" (identity made the user there
        moments ago) or None (not a member: the gateway refuses unless a super admin)."""
        row = storage.membership(uow.session, user.id, session.tenant_id)
        state = None if row is None else ("confirmed" if row.confirmed else "provisional")
        return {**storage.signed_in_user(uow.session, user), "session_tenant_id": session.tenant_id,
                "tenant_membership": state}

    @rpc
    def switch_tenant(self, actor, session_id, tenant_id):
        """This session (only) works in `tenant_id` from now on; the gateway checked the user may.
        Returns what session_user answers."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            session, user = self._live_session(uow, session_id, utc_now())
            if not user:
                raise Unauthorized("The session is no longer valid.", code="session_invalid")
            before = session.tenant_id
            if before != tenant_id:
                session.tenant_id = tenant_id
                uow.emit(events.tenant_switched(user, actor, session.id, before, tenant_id))
                uow.commit()
            return self._session_user(uow, session, user)

    @rpc
    def user_tenants(self, user_id):
        """The tenants a user belongs to (identity's read model), `default` first; NotFound for no such user."""
        with self.db.unit_of_work() as uow:
            self._user(uow, user_id)
            return [row.tenant_id for row in storage.memberships_of(uow.session, user_id)]

    @rpc
    def logout(self, actor, session_id):
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            user = session and uow.session.get(User, session.user_id)
            if user and session.revoked_at is None:
                storage.revoke([session], utc_now(), "logout")
                self._emit_about(uow, user, events.logout(user, actor, session.id))
                uow.commit()

    @rpc
    def list_sessions(self, user_id, current_session_id=None, limit=50, cursor=None):
        """A user's live sessions, newest first; `cursor` is the previous page's next_cursor."""
        offset = paging.offset_of(cursor)
        with self.db.unit_of_work() as uow:
            self._user(uow, user_id)
            rows, total = storage.live_sessions(uow.session, user_id, utc_now(), offset, limit)
        return paging.page_answer([storage.public_session(row, current_session_id) for row in rows], offset, total)

    @rpc
    def revoke_session(self, actor, user_id, session_id):
        """Ends one of the user's sessions; NotFound for a session of someone else."""
        actor = Actor.from_dict(actor)
        if actor.user_id != user_id:
            self._require_authority(actor, user_id)
        with self.db.unit_of_work() as uow:
            session = uow.session.get(LoginSession, session_id)
            if session is None or session.user_id != user_id:
                raise NotFound("No such session.", details={"session_id": session_id})
            if session.revoked_at is None:
                user = self._user(uow, user_id)
                revoked = storage.revoke([session], utc_now(), "user_request")
                self._emit_about(uow, user, events.sessions_revoked(user, actor, revoked, "user_request"))
                uow.commit()

    @rpc
    def revoke_sessions(self, actor, user_id, reason, keep_session_id=None):
        """Ends every live session of the user except `keep_session_id`; returns the ids ended."""
        actor = Actor.from_dict(actor)
        if actor.user_id != user_id:
            self._require_authority(actor, user_id)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            revoked = self._revoke_all(uow, user, actor, reason, keep_session_id)
            if not revoked and reason == "admin":  # an administrator's action is recorded all the same
                self._emit_about(uow, user, events.sessions_revoked(user, actor, [], reason))
            uow.commit()
        return revoked

    @rpc
    def change_password(self, actor, session_id, current_password, new_password):
        """The signed-in user's own change: the current password is checked (and throttled
        like a login), then every other session of the user ends."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            user = self._signed_in_user(uow, session_id, utc_now())
            policy = storage.password_policy(uow.session)
            known_hash = user.password_hash
        if problems := domain.password_problems(new_password or "", policy, user.username or ""):
            raise ValidationFailed("The new password is not acceptable.",
                                   details={"new_password": "; ".join(problems)})
        self._check_current_password(actor, user, current_password, "current_password", via="password_change")
        new_hash = tpool.execute(domain.hash_password, new_password)
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user.id)
            if user is None or user.password_hash != known_hash:  # removed, or changed meanwhile
                raise Conflict("The password was changed meanwhile; sign in again.", code="password_changed")
            storage.clear_throttle(uow.session, sessions.account_key(user.id))
            self._emit_about(uow, user, events.password_changed(user, actor))
            self._set_password(uow, user, new_hash, False, actor, "password_changed", utc_now(),
                               keep_session_id=session_id)
            uow.commit()

    def _check_current_password(self, actor, user, password, field, via):
        """The signed-in user's own password, checked like a sign-in: a wrong one counts toward
        the account's lock, and a locked account is refused. Raises Unauthorized naming `field`."""
        rules, now = self._throttle_rules(), utc_now()
        account = sessions.account_key(user.id)
        with self.db.unit_of_work() as uow:
            account_wait = sessions.retry_after(self._throttle(uow, account), now)
        known_hash = user.password_hash
        password_ok = tpool.execute(domain.verify_password, known_hash or domain.dummy_hash(), password or "")
        password_ok = password_ok and known_hash is not None
        if account_wait or not password_ok:
            refusal = "account_locked" if account_wait else "bad_password"
            login = user.username or user.email
            with self.db.unit_of_work() as uow:
                refused = [events.login_failed(user, actor, login, refusal, via=via)]
                if account_wait:
                    refused.append(events.login_throttled(user, actor, login, "account", account_wait))
                self._emit_about(uow, user, *refused)
                if not password_ok:
                    self._count_failure(uow, account, rules.max_failures, rules)
                uow.commit()
            raise Unauthorized("The current password is not correct.", code="invalid_credentials",
                               details={field: "is not correct"})

    @rpc
    def unlock_account(self, actor, user_id):
        """Lifts an account's lock after failed sign-ins (the client addresses keep theirs),
        and the lock of its second sign-in step after wrong 2FA codes."""
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            storage.clear_throttle(uow.session, sessions.account_key(user.id))
            user.second_factor_failures, user.second_factor_locked_at = 0, None
            self._emit_about(uow, user, events.account_unlocked(user, actor))
            uow.commit()

    @staticmethod
    def _live_session(uow, session_id, now) -> tuple[LoginSession | None, User | None]:
        """The session and its user while both may act (not revoked or expired, user active); else (None, None)."""
        session = session_id and uow.session.get(LoginSession, session_id)
        user = session and uow.session.get(User, session.user_id)
        if not user or sessions.session_problem(session.revoked_at, session.expires_at, user.status, now):
            return None, None
        return session, user

    def _signed_in_user(self, uow, session_id, now) -> User:
        _, user = self._live_session(uow, session_id, now)
        if not user:
            raise Unauthorized("The session is no longer valid.", code="session_invalid")
        return user

    def _require_authority(self, actor, user_id, also=()) -> None:
        """The authority rule (docs/security.md), asked of rbac before anything changes: the actor's
        rights cover the user's in every tenant the user belongs to (this read model's, `also`, and
        those of the user's roles). NotFound first for no such user."""
        with self.db.unit_of_work() as uow:
            self._user(uow, user_id)
            tenants = {*storage.tenants_of(uow.session, user_id), *also}
        require_authority(self.rbac, actor, user_id, tenants)

    @staticmethod
    def _emit_about(uow, user, *about_user, also=()):
        ratelimit.emit_about(uow, user, *about_user, also=also)

    def _revoke_all(self, uow, user, actor, reason, keep_session_id=None) -> list[str]:
        live, _ = storage.live_sessions(uow.session, user.id, utc_now())
        revoked = storage.revoke([s for s in live if s.id != keep_session_id], utc_now(), reason)
        if revoked:
            self._emit_about(uow, user, events.sessions_revoked(user, actor, revoked, reason))
        return revoked

    def _issue_refresh_token(self, uow, session_id, now) -> str:
        token = new_token()
        storage.add_refresh_token(uow.session, session_id, token_digest(token), now)
        return token

    def _throttle(self, uow, key):
        row = storage.throttle(uow.session, key)
        return row and self._throttle_state(row)

    def _throttles(self, uow, *keys) -> dict[str, sessions.Throttle]:
        """The state of each of the keys that has failures on record (one query)."""
        return {key: self._throttle_state(row) for key, row in storage.throttles(uow.session, list(keys)).items()}

    @staticmethod
    def _throttle_state(row) -> sessions.Throttle:
        return sessions.Throttle(row.failures, row.first_failure_at, row.locked_until)

    def _count_failure(self, uow, key, limit, rules):
        state = sessions.after_failure(self._throttle(uow, key), utc_now(), limit, rules)
        storage.save_throttle(uow.session, key, state)

    def _throttle_rules(self) -> sessions.ThrottleRules:
        return sessions.ThrottleRules.from_config(self.config["GATEHOUSE"])

    def _refresh_ttl(self) -> int:
        return self.config["GATEHOUSE"].integer("GATEHOUSE_REFRESH_TOKEN_TTL")

    # --- invitations, password resets, mail, settings ----------------------------------

    @rpc
    def create_invitations(self, actor, emails, role, tenant_id=DEFAULT_TENANT_ID):
        """All or nothing: per address a placeholder user (`invited`), an invitation and a mail.
        The actor must be allowed to hand out `role` (unscoped) in the tenant: rbac says, as it did for the gateway."""
        actor = Actor.from_dict(actor)
        if not actor.is_operator:
            self.rbac.check_assignable(actor.user_id, role, tenant_id, {})
        addresses, problems = invitation_rules.parse_emails(emails)
        if problems:
            raise ValidationFailed("Some addresses are not valid.", code="invalid_emails", details=problems)
        per_admin = limits.limits_from_config(self.config["GATEHOUSE"])["invitations_per_admin"]
        if limits.never_allows(len(addresses), per_admin):
            raise ValidationFailed(f"At most {per_admin.max} invitations per {per_admin.window_seconds} s; "
                                   "send fewer addresses at once.", code="invalid_emails",
                                   details={"emails": f"at most {per_admin.max} addresses"})
        now = utc_now()
        with self.db.unit_of_work() as uow:
            self._enforce_limits(uow, actor, [("invitations_per_admin", actor.user_id, len(addresses))],
                                 resource=Resource("user", actor.user_id, actor.username), tenant_ids=(tenant_id,))
            self._require_smtp(uow.session)
            if taken := storage.email_conflicts(uow.session, addresses):
                raise Conflict("Some addresses already have an account or a pending invitation.",
                               code="email_taken", details=taken)
            created = []
            try:
                for address in addresses:
                    placeholder = User(email=address, first_name="", last_name="", company="",
                                       status=domain.INVITED, created_at=now)
                    placeholder.refresh_search_text()
                    uow.session.add(placeholder)
                    uow.session.flush()
                    storage.join_tenant(uow.session, placeholder.id, tenant_id, utc_now_iso())
                    invitation = Invitation(email=address, user_id=placeholder.id, role=role, tenant_id=tenant_id,
                                            status=invitation_rules.PENDING, invited_by=actor.user_id,
                                            created_at=now, expires_at=now + self.mailer.invitation_ttl)
                    uow.session.add(invitation)
                    uow.session.flush()
                    self._queue_mail(uow.session, mail.INVITATION, invitation.id, address, now)
                    uow.emit(events.invitation_sent(invitation, actor))
                    created.append(invitation)
            except IntegrityError:  # a concurrent invitation or registration took an address
                raise Conflict("Some addresses already have an account or a pending invitation.",
                               code="email_taken") from None
            uow.commit()
        self.mailer.wake()
        return [storage.public_invitation(invitation) for invitation in created]

    @rpc
    def list_invitations(self, status=None, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            rows, next_cursor, total = storage.list_invitations(uow.session, tenant_id, status, limit, cursor)
            return paging.list_answer([storage.public_invitation(row) for row in rows], next_cursor, total)

    @rpc
    def get_invitation(self, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            return storage.public_invitation(self._invitation(uow.session, invitation_id, tenant_id))

    @rpc
    def resend_invitation(self, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        """A new expiry and a new mail; the previous link stops working at once."""
        actor = Actor.from_dict(actor)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            invitation = self._pending_invitation(uow.session, invitation_id, tenant_id, now)
            self._require_smtp(uow.session)
            self._enforce_limits(uow, actor, [("invitations_per_admin", actor.user_id, 1),
                                              ("invitation_resends_per_address", invitation.email, 1)],
                                 resource=Resource("invitation", invitation.id, invitation.email),
                                 tenant_ids=(tenant_id,))
            invitation.token_hash, invitation.expires_at = None, now + self.mailer.invitation_ttl
            storage.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "superseded by a resend", now)
            self._queue_mail(uow.session, mail.INVITATION, invitation.id, invitation.email, now)
            uow.emit(events.invitation_sent(invitation, actor, resent=True))
            uow.commit()
        self.mailer.wake()
        return storage.public_invitation(invitation)

    @rpc
    def revoke_invitation(self, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
        actor = Actor.from_dict(actor)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            invitation = self._pending_invitation(uow.session, invitation_id, tenant_id, now)
            invitation.status = invitation_rules.REVOKED
            storage.delete_placeholder(uow.session, invitation.user_id)
            storage.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "invitation revoked", now)
            uow.emit(events.invitation_revoked(invitation, actor))
            uow.commit()

    @rpc
    def invitation_for_token(self, token):
        """What the registration page shows of an invitation link (anonymous)."""
        with self.db.unit_of_work() as uow:
            invitation = self._usable_invitation(uow.session, token, utc_now())
            return {"email": invitation.email, "expires_at": storage.iso(invitation.expires_at),
                    "role": invitation.role}

    def _register_invited(self, actor, invitation_token, username, first_name, last_name, email, password):
        """Registration through an invitation link: the placeholder becomes an active account."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            invitation = self._usable_invitation(uow.session, invitation_token, utc_now())
            invitation_id, invited_email = invitation.id, invitation.email
            policy = storage.password_policy(uow.session)
        if email and domain.normalize_email(email)[0] != invited_email:
            raise ValidationFailed("The registration has invalid fields.",
                                   details={"email": "must be the invited address"})
        problems = domain.registration_problems(username, first_name, last_name, invited_email, password, policy)
        if problems:
            raise ValidationFailed("The registration has invalid fields.", details=problems)
        password_hash = tpool.execute(domain.hash_password, password)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            if uow.session.scalar(sa.select(User.id).where(User.username == username)):
                raise Conflict("That username is already in use.", code="user_exists",
                               details={"username": "is already taken"})
            if not storage.consume_invitation(uow.session, invitation_id, token_digest(invitation_token), now):
                raise self._invitation_refusal(uow.session, invitation_id, now)
            invitation = uow.session.get(Invitation, invitation_id)
            user = uow.session.get(User, invitation.user_id) if invitation.user_id else None
            try:
                if user is None:  # placeholder gone (should not happen): make the account anew
                    user = self._new_user(uow.session, username, first_name, last_name, invited_email,
                                          domain.ACTIVE, password_hash, tenant_id=invitation.tenant_id)
                else:
                    user.username, user.first_name, user.last_name = username, first_name.strip(), last_name.strip()
                    user.status, user.password_hash, user.updated_at = domain.ACTIVE, password_hash, now
                    user.uid_number = storage.allocate_uid_number(uow.session)
                    user.version = (user.version or 1) + 1
                    user.refresh_search_text()
                    uow.session.flush()
            except IntegrityError:  # a concurrent registration took the username
                raise Conflict("That username is already in use.", code="user_exists") from None
            invitation.user_id = user.id
            user_actor = actor.as_user(user.id, user.username, user.full_name, user.email)
            uow.emit(*events.in_tenants((invitation.tenant_id,),
                                        events.user_registered(user, user_actor, invitation_id=invitation.id),
                                        events.invitation_accepted(invitation, user, user_actor)))
            uow.commit()
        return storage.public_user(user)

    @rpc
    def request_password_reset(self, actor, email):
        """Self-service: mails a reset link to an active account. Says nothing either way, and
        takes the same path for any address: it stores the request (resets.py) and answers;
        the mailer looks the account up afterwards."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            self._enforce_limits(uow, actor, [("reset_requests_per_ip", actor.ip, 1)])
            resets.accept(uow.session, email, actor, utc_now())
            uow.commit()  # every request counts, whatever the address
        self.mailer.wake()

    @rpc
    def confirm_password_reset(self, actor, token, password):
        """Sets the password of a reset link's account once; every session of it ends."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            reset = self._usable_reset(uow.session, token, utc_now())
            reset_id, user = reset.id, uow.session.get(User, reset.user_id)
            policy = storage.password_policy(uow.session)
        if problems := domain.password_problems(password or "", policy, user.username or ""):
            raise ValidationFailed("The password does not meet the policy.", code="password_policy",
                                   details={"password": "; ".join(problems)})
        password_hash = tpool.execute(domain.hash_password, password)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            if not storage.consume_reset(uow.session, reset_id, token_digest(token), now):
                raise self._reset_refusal(uow.session.get(PasswordReset, reset_id), now)
            user = uow.session.get(User, user.id)
            user_actor = actor.as_user(user.id, user.username, user.full_name, user.email)
            self._set_password(uow, user, password_hash, False, user_actor, "password_reset", now)
            self._emit_about(uow, user, events.password_reset_completed(user, user_actor))
            uow.commit()

    @rpc
    def admin_reset_password(self, actor, user_id, method):
        """method email: a reset link is mailed (None); random: a generated password, returned
        once, that must be changed at the next sign-in. Admins never choose a password."""
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            if user.status == domain.INVITED:
                raise Conflict("This user has not accepted the invitation yet; resend the invitation instead.",
                               code="user_invited")
            if method == "email":
                self._require_smtp(uow.session)
                self._enforce_limits(uow, actor, [("admin_resets_per_user", user.id, 1),
                                                  ("admin_resets_per_admin", actor.user_id, 1)], user=user)
                self._queue_reset(uow, user, actor, now, by_admin=True)
                uow.commit()
                self.mailer.wake()
                return None
        if method != "random":
            raise ValidationFailed("Unknown reset method.", details={"method": "must be email or random"})
        password = domain.generate_password()
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            self._set_password(uow, user, password_hash, True, actor, "password_reset_by_admin", utc_now())
            self._emit_about(uow, user, events.password_changed(user, actor, by_admin=True))
            uow.commit()
        return {"password": password}

    @rpc
    def get_smtp_settings(self):
        with self.db.unit_of_work() as uow:
            return self._public_smtp(storage.read_setting(uow.session, "smtp"))

    @rpc
    def put_smtp_settings(self, actor, settings):
        """Replaces the SMTP settings; a missing password keeps the stored one, "" removes it.
        The platform's one mail sender: super admins only (tenants have none of their own)."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "the SMTP settings")
        settings = {**settings, "host": (settings.get("host") or "").strip(),
                    "username": settings.get("username") or None}
        if problems := mail.smtp_problems(settings):
            raise ValidationFailed("The SMTP settings have invalid fields.", details=problems)
        new_password = settings.get("password")  # None: keep the stored one
        with self.db.unit_of_work() as uow:
            before = storage.read_setting(uow.session, "smtp") or {}
            after = {field: settings.get(field) for field in mail.SMTP_FIELDS}
            after["password_sealed"] = before.get("password_sealed")
            changed = mail.changed_fields(before, after, mail.SMTP_FIELDS)
            if new_password is not None and new_password != self._stored_smtp_password(before):
                after["password_sealed"] = self.mailer.box.seal(new_password) if new_password else None
                changed.append("password")
            storage.write_setting(uow.session, "smtp", after, actor.user_id)
            if changed:
                uow.emit(events.settings_changed("smtp", actor, changed))
            storage.retry_waiting_mail_now(uow.session, utc_now())
            uow.commit()
        self.mailer.wake()
        return self._public_smtp(after)

    @rpc
    def delete_smtp_settings(self, actor):
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "the SMTP settings")
        with self.db.unit_of_work() as uow:
            before = storage.read_setting(uow.session, "smtp")
            if storage.delete_setting(uow.session, "smtp"):
                fields = [f for f in mail.SMTP_FIELDS if before.get(f) is not None]
                fields += ["password"] if before.get("password_sealed") else []
                uow.emit(events.settings_changed("smtp", actor, fields))
                uow.commit()

    @rpc
    def get_password_policy(self):
        with self.db.unit_of_work() as uow:
            return dataclasses.asdict(storage.password_policy(uow.session))

    @rpc
    def put_password_policy(self, actor, values):
        """Replaces the policy (platform-wide, for every tenant: super admins only); missing fields take
        the defaults."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "the password policy")
        policy = dataclasses.asdict(mail.password_policy(values))
        if problems := mail.password_policy_problems(policy):
            raise ValidationFailed("The password policy has invalid fields.", details=problems)
        with self.db.unit_of_work() as uow:
            before = dataclasses.asdict(storage.password_policy(uow.session))
            storage.write_setting(uow.session, "password_policy", policy, actor.user_id)
            if changed := mail.changed_fields(before, policy, mail.POLICY_FIELDS):
                uow.emit(events.settings_changed("password_policy", actor, changed))
            uow.commit()
        return policy

    # helpers of this section (inside a unit of work)

    @staticmethod
    def _require_smtp(session):
        if not storage.read_setting(session, "smtp"):
            raise Conflict("SMTP is not configured: configure it in the settings (PUT /api/v1/settings/smtp) "
                           "before sending mail.", code="smtp_not_configured")

    def _stored_smtp_password(self, stored):
        """"" when none is stored or it cannot be opened any more (GATEHOUSE_SECRET_KEY changed)."""
        try:
            return self.mailer.box.open(stored["password_sealed"]) if stored.get("password_sealed") else ""
        except ValueError:
            return ""

    @staticmethod
    def _public_smtp(stored):
        stored = stored or {}
        return {"configured": bool(stored), **{field: stored.get(field) for field in mail.SMTP_FIELDS},
                "password_set": bool(stored.get("password_sealed"))}

    @staticmethod
    def _queue_mail(session, kind, ref_id, recipient, now):
        session.add(MailJob(kind=kind, ref_id=ref_id, recipient=recipient, attempts=0, next_attempt_at=now,
                            created_at=now))

    def _queue_reset(self, uow, user, actor, now, by_admin):
        resets.queue_reset(uow, user, actor, now, self.mailer.reset_ttl, by_admin)

    @staticmethod
    def _invitation(session, invitation_id, tenant_id):
        """An invitation of the tenant; another tenant's is not found (ids cannot be probed)."""
        invitation = session.get(Invitation, invitation_id)
        if not invitation or invitation.tenant_id != tenant_id:
            raise NotFound("No such invitation.", code="invitation_not_found",
                           details={"invitation_id": invitation_id})
        return invitation

    def _pending_invitation(self, session, invitation_id, tenant_id, now):
        invitation = self._invitation(session, invitation_id, tenant_id)
        if invitation_rules.token_refusal(invitation.status, invitation.expires_at, now):
            raise Conflict(f"The invitation is {invitation.status}; only pending invitations can change.",
                           code="invitation_not_pending", details={"status": invitation.status})
        return invitation

    def _usable_invitation(self, session, token, now):
        invitation = storage.invitation_by_token(session, token_digest(token)) if token else None
        if not invitation:
            raise NotFound("This invitation link is not valid.", code="invitation_not_found")
        if refusal := self._invitation_refusal(session, invitation.id, now):
            raise refusal
        return invitation

    @staticmethod
    def _invitation_refusal(session, invitation_id, now):
        invitation = session.get(Invitation, invitation_id)
        refusal = invitation_rules.token_refusal(invitation.status, invitation.expires_at, now)
        if refusal == "invitation_expired":
            return Gone("This invitation has expired; ask for a new one.", code=refusal)
        if refusal:
            return Gone("This invitation was already used or withdrawn.", code=refusal)
        return None

    def _usable_reset(self, session, token, now):
        reset = storage.reset_by_token(session, token_digest(token)) if token else None
        if not reset:
            raise NotFound("This password reset link is not valid.", code="reset_not_found")
        if refusal := self._reset_refusal(reset, now):
            raise refusal
        return reset

    @staticmethod
    def _reset_refusal(reset, now):
        if reset.used_at is not None:
            return Gone("This password reset link was already used.", code="reset_used")
        if aware(reset.expires_at) <= now:
            return Gone("This password reset link has expired; ask for a new one.", code="reset_expired")
        return None

    def _set_password(self, uow, user, password_hash, must_change, actor, reason, now, keep_session_id=None):
        """New password: earlier reset links and every session of the user (but the one kept) end."""
        user.password_hash, user.must_change_password, user.updated_at = password_hash, must_change, now
        storage.close_open_resets(uow.session, user.id, now)
        self._revoke_all(uow, user, actor, reason, keep_session_id)

    # --- rate limits of mail and sign-up (rules in limits.py) ----------------------------------

    def _over_limit(self, uow, actor, checks, user=None, resource=None, tenant_ids=()) -> tuple[str, int] | None:
        """ratelimit.over_limit with this service's limits."""
        return ratelimit.over_limit(uow, limits.limits_from_config(self.config["GATEHOUSE"]), actor, checks,
                                    user, resource, tenant_ids)

    def _enforce_limits(self, uow, actor, checks, **about) -> None:
        """_over_limit, answering a refusal with 429 rate_limited and Retry-After."""
        if refused := self._over_limit(uow, actor, checks, **about):
            name, wait = refused
            raise TooManyRequests(limits.refusal_message(name), code="rate_limited",
                                  details={"limit": name, "retry_after": wait}, retry_after=wait)

    # --- user administration -----------------------------------------------------

    @rpc
    def get_user(self, user_id, tenant_id=DEFAULT_TENANT_ID):
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id)
            return storage.admin_user(uow.session, user, storage.role_of(uow.session, user_id, tenant_id))

    @rpc
    def list_users(self, tenant_id=DEFAULT_TENANT_ID, q=None, status=None, role=None, sort="created_at",
                   order="desc", limit=50, cursor=None, with_tenants=False):
        """The members of `tenant_id` (None: every user) with their role there. with_tenants (the
        cross-tenant view) adds each user's tenants with their role in each, and invitation_status."""
        problems = {}
        if status is not None and status not in domain.STATUSES:
            problems["status"] = f"must be one of {', '.join(domain.STATUSES)}"
        if sort not in domain.USER_SORTS:
            problems["sort"] = f"must be one of {', '.join(domain.USER_SORTS)}"
        if order not in domain.ORDERS:
            problems["order"] = "must be asc or desc"
        if not (isinstance(limit, int) and 1 <= limit <= 200):
            problems["limit"] = "must be between 1 and 200"
        if problems:
            raise ValidationFailed("The user list query has invalid parameters.", details=problems)
        with self.db.unit_of_work() as uow:  # a cursor not of this list is refused in there
            found = storage.list_users(uow.session, tenant_id, q=q, status=status, role=role, sort=sort,
                                       order=order, limit=limit, cursor=cursor)
            items = storage.admin_users(uow.session, found.rows)
            if with_tenants:
                ids = [item["id"] for item in items]
                tenants = storage.tenant_assignments(uow.session, ids)
                invited = storage.invitation_states(uow.session, ids)
                items = [{**item, "tenants": tenants[item["id"]], "invitation_status": invited.get(item["id"])}
                         for item in items]
        return paging.list_answer(items, found.next_cursor, found.total, found.total_exact)

    @rpc
    def directory_entries(self, user_ids=None, tenant_id=None, after=None, limit=2000):
        """INTERNAL, for proxmox_sync only (the gateway never routes here): users with a username, by id,
        with their argon2id hash for LDAP's userPassword. `user_ids` and/or `tenant_id` (members) narrow
        it; page with `after` = the answer's `next`."""
        limit = max(1, min(int(limit), 5000))
        with self.db.unit_of_work() as uow:
            items = storage.directory_people(uow.session, user_ids=user_ids, tenant_id=tenant_id, after=after,
                                             limit=limit)
        return {"items": items, "next": items[-1]["user_id"] if len(items) == limit else None}

    @rpc
    def create_user(self, actor, username, email, first_name, last_name, company="", tenant_id=DEFAULT_TENANT_ID,
                    super_admin=False, role=None, groups=None, with_access=False):
        """An active account made by an administrator in their active tenant, with a generated password
        shown once (returned here, never stored in clear, never in an event) that must be changed.
        super_admin (the operator CLI only; the gateway never passes it): rbac makes the user a super admin.

        role, groups: rbac's part of the same write (docs/architecture.md, "Writes that span services"):
        asked of rbac before anything changes (check_assignable, unknown_groups), applied after the account
        commits (assign_role, add_to_groups). Compensation: when rbac refuses or fails then, the account
        is removed again (user_removed: tenancy, rbac, audit and sync forget it) and rbac's error is raised.
        with_access: the answer's user carries rbac's role in the tenant and groups (as the gateway shows it)."""
        if role is not None or groups:
            self._check_access(Actor.from_dict(actor), role, groups, tenant_id, scope={})
        if super_admin and not Actor.from_dict(actor).is_operator:
            raise Forbidden("Only the operator CLI creates super admins this way.", code="super_admin_only",
                            details={"super_admin": "the operator CLI only"})
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
                                      fields["email"], domain.ACTIVE, password_hash, company=fields["company"],
                                      tenant_id=tenant_id)
            except IntegrityError:  # a concurrent request took the name first
                raise Conflict("That username or email is already in use.", code="user_exists") from None
            user.must_change_password = True
            # Tenancy makes the user a member of the event's first tenant: the creator's active one.
            uow.emit(*events.in_tenants((tenant_id,), events.user_created(user, Actor.from_dict(actor),
                                                                          super_admin=bool(super_admin))))
            uow.commit()
            answer = storage.admin_user(uow.session, user, None)
        try:
            access = self._complete_access(actor, answer, role, groups, tenant_id, with_access)
        except Exception:
            self._undo_creation(Actor.from_dict(actor), user.id)
            raise
        return {"user": self._with_access(answer, access, tenant_id), "password": password}

    @rpc
    def update_user(self, actor, user_id, changes, expected_version=None, role=None, tenant_id=DEFAULT_TENANT_ID,
                    groups=None, with_access=False, in_tenant=False):
        """Partial update of profile fields and status, and the user's role in the tenant and groups to join.

        role, groups: rbac's part of the same write (docs/architecture.md, "Writes that span services"):
        asked of rbac before anything changes (check_assignable, unknown_groups; the first admin's role is
        refused here), applied after identity's change commits (assign_role, add_to_groups). Compensation:
        when rbac refuses or fails then, identity's change is undone in a new transaction (the fields and
        the status take their previous values again, with user_updated / user_status_changed events so
        audit and sync follow; sessions a suspension ended stay ended), a role already replaced gets its
        previous one back, and rbac's error is raised.
        in_tenant: NotFound unless the user is a member of `tenant_id` (identity's read model; the gateway's
        404 for a user outside the active tenant, asked first). with_access: the answer carries rbac's role
        in the tenant and groups."""
        actor = Actor.from_dict(actor)
        if in_tenant:
            self._require_member(user_id, tenant_id)
        if role is not None or groups:
            self._check_access(actor, role, groups, tenant_id)
        changes = dict(changes)
        status = changes.pop("status", None)
        if unknown := set(changes) - set(domain.PROFILE_FIELDS):
            raise ValidationFailed("Unknown fields.", details={field: "cannot be changed here" for field in unknown})
        if problems := domain.profile_problems(changes):
            raise ValidationFailed("The user has invalid fields.", details=problems)
        if status is not None and status not in domain.STATUSES:
            raise ValidationFailed("Unknown status.", details={"status": f"must be one of {', '.join(domain.STATUSES)}"})
        changes = domain.clean_profile(changes)
        self._require_authority(actor, user_id, also=(tenant_id,))
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            refuse_stale_edit("user", user.version, expected_version)
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
                    # for good: reactivation does not bring the sessions or their refresh tokens back
                    self._revoke_all(uow, user, actor, "suspended")
            changed = {field: {"from": getattr(user, field), "to": value}
                       for field, value in changes.items() if getattr(user, field) != value}
            self._refuse_taken(uow, changed.get("username", {}).get("to"), changed.get("email", {}).get("to"),
                               excluding=user.id)
            wrote = bool(changed) or (status is not None and status != before)
            if wrote:
                answer = self._apply_update(uow, actor, user, changed, before, status, current_role)
            else:
                answer = storage.admin_user(uow.session, user, current_role)
        try:
            access = self._complete_access(actor.__dict__, answer, role, groups, tenant_id, with_access,
                                           previous_role=current_role)
        except Exception:
            if wrote:
                self._undo_update(actor, user.id, changed, before, status)
            raise
        return self._with_access(answer, access, tenant_id)

    def _apply_update(self, uow, actor, user, changed, before, status, current_role) -> dict:
        """update_user's change of the account, committed; the user as the answer shows it."""
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
            self._emit_about(uow, user, events.user_updated(user, actor, changed))
        if user.status != before:
            self._emit_about(uow, user, events.user_status_changed(user, actor, before, user.status))
        uow.commit()
        return storage.admin_user(uow.session, user, current_role)

    @rpc
    def update_own_names(self, actor, session_id, names):
        """The signed-in user's own first and last name; everything else about an account is its
        administrators' (update_user, under the authority rule)."""
        actor = Actor.from_dict(actor)
        names = {field: value for field, value in dict(names).items() if value is not None}
        if unknown := set(names) - set(domain.OWN_PROFILE_FIELDS):
            raise ValidationFailed("Unknown fields.", details={field: "cannot be changed here" for field in unknown})
        if problems := domain.profile_problems(names):
            raise ValidationFailed("The names are invalid.", details=problems)
        names = domain.clean_profile(names)
        with self.db.unit_of_work() as uow:
            user = self._signed_in_user(uow, session_id, utc_now())
            changed = {field: {"from": getattr(user, field), "to": value}
                       for field, value in names.items() if getattr(user, field) != value}
            if changed:
                for field, change in changed.items():
                    setattr(user, field, change["to"])
                user.refresh_search_text()
                user.version += 1
                user.updated_at = utc_now()
                self._emit_about(uow, user, events.user_updated(user, actor, changed))
                uow.commit()
            return storage.admin_user(uow.session, user, None)

    @rpc
    def remove_user(self, actor, user_id):
        """Deletes the account (its sessions go with it); audit keeps what it did, by name."""
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            self._refuse_protected(domain.DELETE, actor, user)
            if user.status == domain.INVITED:
                pending = uow.session.scalars(sa.select(Invitation).where(
                    Invitation.user_id == user.id, Invitation.status == invitation_rules.PENDING))
                for invitation in pending:
                    invitation.status = invitation_rules.REVOKED
                    uow.emit(events.invitation_revoked(invitation, actor))
            self._emit_about(uow, user, events.user_removed(user, actor))
            uow.session.execute(sa.delete(User).where(User.id == user.id))
            uow.commit()

    # writes that span services: rbac's part of create_user / update_user (docs/architecture.md)

    def _check_access(self, actor, role, groups, tenant_id, scope=None) -> None:
        """Everything rbac could refuse, asked before any change so that a refusal changes nothing.
        scope: the assignment's scope once given ({} for a new user, unscoped; None: the user keeps theirs)."""
        if role is not None and not actor.is_operator:
            self.rbac.check_assignable(actor.user_id, role, tenant_id, scope)
        if groups and (unknown := self.rbac.unknown_groups(groups, tenant_id)):
            raise ValidationFailed("Unknown groups.", code="unknown_group",
                                   details={"groups": f"no such group: {', '.join(unknown)}"})

    def _require_member(self, user_id, tenant_id) -> None:
        with self.db.unit_of_work() as uow:
            if tenant_id not in {row.tenant_id for row in storage.memberships_of(uow.session, user_id)}:
                raise NotFound("No such user.", details={"user_id": user_id})

    def _complete_access(self, actor, user, role, groups, tenant_id, with_access, previous_role=None) -> dict | None:
        """rbac's part, after identity's committed: the role, then the groups. A role replaced before the
        groups were refused gets `previous_role` back (None: unassigned) before the error goes on.
        Returns rbac's user_access when with_access (the groups' answer serves when there were groups)."""
        if role is not None:
            self.rbac.assign_role(actor, user["id"], role, tenant_id, username=user["username"])
        try:
            if groups:
                access = self.rbac.add_to_groups(actor, user["id"], groups, username=user["username"],
                                                 tenant_id=tenant_id)
                return access if with_access else None
        except Exception:
            if role is not None and role != previous_role:
                self._restore_role(actor, user, previous_role, tenant_id)
            raise
        return self.rbac.user_access(user["id"], tenant_id) if with_access else None

    def _restore_role(self, actor, user, previous_role, tenant_id) -> None:
        try:
            if previous_role is None:
                self.rbac.unassign_role(actor, user["id"], tenant_id, username=user["username"])
            else:
                self.rbac.assign_role(actor, user["id"], previous_role, tenant_id, username=user["username"])
        except Exception:  # the error that made us undo is the one the caller must see
            log.exception("compensation: the previous role of user %s could not be restored", user["id"])

    @staticmethod
    def _with_access(user, access, tenant_id) -> dict:
        if access is None:
            return user
        roles = {entry["tenant_id"]: entry["role"] for entry in access["roles"]}
        return {**user, "role": roles.get(tenant_id), "groups": access["groups"]}

    def _undo_creation(self, actor, user_id) -> None:
        """Compensation of create_user: the account goes again, as remove_user would take it."""
        try:
            with self.db.unit_of_work() as uow:
                user = uow.session.get(User, user_id, with_for_update=True)
                if user is None:
                    return
                self._emit_about(uow, user, events.user_removed(user, actor))
                uow.session.execute(sa.delete(User).where(User.id == user.id))
                uow.commit()
        except Exception:
            log.exception("compensation: the account %s could not be removed again", user_id)

    def _undo_update(self, actor, user_id, changed, status_before, status) -> None:
        """Compensation of update_user: each field still holding the value this update wrote, and the
        status, take their previous values again (a later writer's values stay)."""
        try:
            with self.db.unit_of_work() as uow:
                user = uow.session.get(User, user_id, with_for_update=True)
                if user is None:
                    return
                restored = {field: {"from": change["to"], "to": change["from"]} for field, change in changed.items()
                            if getattr(user, field) == change["to"]}
                status_now = user.status
                restore_status = status is not None and status != status_before and status_now == status
                if not restored and not restore_status:
                    return
                for field, change in restored.items():
                    setattr(user, field, change["to"])
                if restore_status:
                    user.status = status_before
                user.refresh_search_text()
                user.version += 1
                user.updated_at = utc_now()
                uow.session.flush()
                if restored:
                    self._emit_about(uow, user, events.user_updated(user, actor, restored))
                if restore_status:
                    self._emit_about(uow, user, events.user_status_changed(user, actor, status_now, status_before))
                uow.commit()
        except Exception:
            log.exception("compensation: the change of user %s could not be undone", user_id)

    @staticmethod
    def _user(uow, user_id, for_update=False) -> User:
        user = uow.session.get(User, user_id, with_for_update=for_update)
        if not user:
            raise NotFound("No such user.", details={"user_id": user_id})
        return user

    @staticmethod
    def _refuse_taken(uow, username, email, excluding=None):
        if taken := storage.conflicts(uow.session, username, email, excluding=excluding):
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
                  company="", tenant_id=DEFAULT_TENANT_ID):
        """The account and, at once, its membership of `tenant_id` (tenancy's event confirms it later)."""
        user = User(username=username, first_name=first_name.strip(), last_name=last_name.strip(),
                    email=email, company=company, status=status, password_hash=password_hash,
                    uid_number=storage.allocate_uid_number(session), is_first_admin=is_first_admin,
                    created_at=utc_now())
        user.refresh_search_text()
        session.add(user)
        session.flush()
        storage.join_tenant(session, user.id, tenant_id, utc_now_iso())
        return user

    # --- two-factor authentication ----------------------------------------------------
    # Rules in twofactor.py. A 2FA change (enroll, re-enroll, disable, new recovery codes) needs
    # the current password or a current code besides the session: a stolen session alone cannot
    # plant or replace a factor. A first enrollment needs the password.

    def _challenge_second_factor(self, uow, user, actor, now) -> dict:
        """The password step of a 2FA account: a single-use login ticket instead of a session."""
        if user.second_factor_locked_at:
            self._refuse_second_factor(uow, user, actor, twofactor.LOCKED, None, now, count=False)
        ticket = new_token()
        ttl = self._login_ticket_ttl()
        storage.add_login_ticket(uow.session, user.id, token_digest(ticket), now, now + timedelta(seconds=ttl))
        self._emit_about(uow, user, events.two_factor_challenged(user, actor, twofactor.METHODS))
        uow.commit()
        return {"second_factor_required": True, "login_ticket": ticket, "expires_in": ttl,
                "methods": list(twofactor.METHODS)}

    @rpc
    def login_second_factor(self, actor, login_ticket, code=None, recovery_code=None, user_agent=""):
        """The second sign-in step: the password step's ticket and a TOTP code or a recovery code.
        Returns what login returns for an account without 2FA. A wrong code does not spend the
        ticket but counts toward the lock of the second step."""
        actor = Actor.from_dict(actor)
        method = "recovery_code" if recovery_code is not None else "totp"
        digest, now = token_digest(login_ticket), utc_now()
        with self.db.unit_of_work() as uow:
            ticket = storage.login_ticket(uow.session, digest)
            user = ticket and uow.session.get(User, ticket.user_id, with_for_update=True)
            if not user or ticket.used_at or not user.totp_enrolled or user.status != domain.ACTIVE:
                self._refuse_second_factor(uow, user, actor, twofactor.TICKET_INVALID, method, now, count=False)
            if aware(ticket.expires_at) <= now:
                self._refuse_second_factor(uow, user, actor, twofactor.TICKET_INVALID, method, now, count=False,
                                           expired=True)
            if user.second_factor_locked_at:
                self._refuse_second_factor(uow, user, actor, twofactor.LOCKED, method, now, count=False)
            if method == "recovery_code":
                normalized = twofactor.normalize_recovery_code(recovery_code)
                spent = normalized and storage.use_recovery_code(uow.session, user.id,
                                                                 self.secret_box.keyed_digest(normalized), now)
                refusal = None if spent else twofactor.RECOVERY_CODE_INVALID
            else:
                refusal = self._accept_totp(uow, user, code, now)
            if refusal:
                self._refuse_second_factor(uow, user, actor, refusal, method, now)
            if not storage.use_login_ticket(uow.session, digest, now):  # a concurrent second step won
                uow.session.rollback()
                self._refuse_second_factor(uow, None, actor, twofactor.TICKET_INVALID, method, now, count=False)
            user.second_factor_failures, user.second_factor_locked_at = 0, None
            user_actor = actor.as_user(user.id, user.username, user.full_name, user.email)
            if method == "recovery_code":
                self._report_recovery_use(uow, user, user_actor)
            signed_in = self._open_session(uow, user, actor, user_agent, now, second_factor=method)
            uow.commit()
            return signed_in

    @rpc
    def two_factor_status(self, session_id):
        """The signed-in user's own 2FA state."""
        with self.db.unit_of_work() as uow:
            now = utc_now()
            user = self._signed_in_user(uow, session_id, now)
            flags = storage.two_factor_flags(uow.session, [user])[user.id]
            codes_left = storage.recovery_codes_left(uow.session, user.id) if user.totp_enrolled else 0
            return {"enrolled": user.totp_enrolled, "enrolled_at": storage.iso(user.totp_enrolled_at),
                    "required": user.totp_required, "required_by_policy": flags["totp_required_by_policy"],
                    "enrollment_required": flags["totp_enrollment_required"],
                    "enrollment_pending": not twofactor.enrollment_expired(user.totp_pending_at, now),
                    "recovery_codes_left": codes_left,
                    "second_factor_locked": user.second_factor_locked_at is not None}

    @rpc
    def start_two_factor_enrollment(self, actor, session_id, password=None, code=None):
        """A new TOTP secret for the signed-in user, shown once (secret, otpauth URI, QR code); it
        replaces nothing until confirmed with a code of it."""
        actor = Actor.from_dict(actor)
        user = self._prove_for_two_factor_change(actor, session_id, password, code)
        secret = twofactor.new_secret()
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user.id, for_update=True)
            now = utc_now()
            user.totp_pending_secret, user.totp_pending_at = self.secret_box.seal(secret), now
            self._emit_about(uow, user, events.two_factor_enrollment_started(user, actor, user.totp_enrolled))
            uow.commit()
        uri = twofactor.provisioning_uri(secret, user.username)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": twofactor.qr_svg(uri),
                "qr_png": twofactor.qr_png_base64(uri), "issuer": twofactor.ISSUER, "account": user.username,
                "algorithm": twofactor.ALGORITHM, "digits": twofactor.DIGITS, "period": twofactor.PERIOD,
                "expires_at": storage.iso(now + twofactor.ENROLLMENT_TTL)}

    @rpc
    def confirm_two_factor_enrollment(self, actor, session_id, code):
        """A code of the secret just started turns 2FA on (or replaces the factor): returns the
        10 recovery codes, shown this once; earlier recovery codes are dead."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            now = utc_now()
            user = self._signed_in_user(uow, session_id, now)
            uow.session.refresh(user, with_for_update=True)
            if not user.totp_pending_secret or twofactor.enrollment_expired(user.totp_pending_at, now):
                raise Conflict("Start the enrollment first (POST /api/v1/me/2fa/enrollment); a started one "
                               "must be confirmed within 15 minutes.", code="2fa_enrollment_not_started")
            step = twofactor.matching_step(self._open_secret(user.totp_pending_secret), code, now.timestamp())
            if step is None:
                raise ValidationFailed("That is not a current code of the new secret; check the authenticator's "
                                       "clock and try the code it shows now.", code="invalid_code",
                                       details={"code": "is not a current code of the new secret"})
            re_enrollment = user.totp_enrolled
            user.totp_secret, user.totp_pending_secret, user.totp_pending_at = user.totp_pending_secret, None, None
            user.totp_enrolled, user.totp_enrolled_at, user.totp_last_step = True, now, step
            recovery_codes = self._new_recovery_codes(uow, user, now)
            self._emit_about(uow, user, events.two_factor_enrolled(user, actor, re_enrollment))
            uow.commit()
        return {"recovery_codes": recovery_codes}

    @rpc
    def disable_own_two_factor(self, actor, session_id, password=None, code=None):
        """The signed-in user turns 2FA off (TOTP and recovery codes go); refused while an
        administrator or the policy requires it."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            self._refuse_self_disable(uow, self._signed_in_user(uow, session_id, utc_now()))
        user = self._prove_for_two_factor_change(actor, session_id, password, code)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user.id, for_update=True)
            self._refuse_self_disable(uow, user)
            storage.remove_two_factor(uow.session, user)
            self._emit_about(uow, user, events.two_factor_disabled(user, actor, by="self"))
            uow.commit()

    @rpc
    def regenerate_recovery_codes(self, actor, session_id, password=None, code=None):
        """10 new recovery codes, shown this once; the earlier ones are dead."""
        actor = Actor.from_dict(actor)
        with self.db.unit_of_work() as uow:
            if not self._signed_in_user(uow, session_id, utc_now()).totp_enrolled:
                self._refuse_two_factor_change(twofactor.NOT_ENROLLED)
        user = self._prove_for_two_factor_change(actor, session_id, password, code)
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user.id, for_update=True)
            if not user.totp_enrolled:
                self._refuse_two_factor_change(twofactor.NOT_ENROLLED)
            recovery_codes = self._new_recovery_codes(uow, user, utc_now())
            self._emit_about(uow, user, events.two_factor_recovery_regenerated(user, actor, len(recovery_codes)))
            uow.commit()
        return {"recovery_codes": recovery_codes}

    # super admins' row actions on the user list (the gateway lets only super admins call them)

    @rpc
    def require_two_factor(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        """The user must enroll before doing anything else (at once, and at every sign-in until enrolled);
        the requirement stands after enrollment (the user cannot turn 2FA off) until it is cancelled."""
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id, also=(tenant_id,))
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            self._refuse_two_factor_change(twofactor.require_problem(user.totp_enrolled, user.totp_required))
            user.totp_required = True
            self._emit_about(uow, user, events.two_factor_required_for_user(user, actor), also=(tenant_id,))
            uow.commit()
            return storage.admin_user(uow.session, user, storage.role_of(uow.session, user_id, tenant_id))

    @rpc
    def cancel_two_factor_requirement(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id, also=(tenant_id,))
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            self._refuse_two_factor_change(twofactor.cancel_problem(user.totp_required))
            user.totp_required = False
            self._emit_about(uow, user, events.two_factor_requirement_cleared(user, actor), also=(tenant_id,))
            uow.commit()

    @rpc
    def admin_disable_two_factor(self, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
        """Removes the user's TOTP and every recovery code (a user who lost both): never on one's
        own account, never on a super admin while the policy requires 2FA of super admins."""
        actor = Actor.from_dict(actor)
        self._require_authority(actor, user_id, also=(tenant_id,))
        with self.db.unit_of_work() as uow:
            user = self._user(uow, user_id, for_update=True)
            self._refuse_two_factor_change(twofactor.admin_disable_problem(
                actor.user_id, user.id, user.totp_enrolled, storage.two_factor_policy_on(uow.session),
                storage.is_super_admin(uow.session, user.id)))
            storage.remove_two_factor(uow.session, user)
            self._emit_about(uow, user, events.two_factor_disabled(user, actor, by="admin"), also=(tenant_id,))
            uow.commit()

    @rpc
    def get_two_factor_policy(self):
        with self.db.unit_of_work() as uow:
            return {"require_for_super_admin": storage.two_factor_policy_on(uow.session)}

    @rpc
    def put_two_factor_policy(self, actor, require_for_super_admin):
        """When on, super admins without TOTP must enroll before anything else (at their next request)."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "the 2FA policy")
        if not isinstance(require_for_super_admin, bool):
            raise ValidationFailed("The 2FA policy has invalid fields.",
                                   details={"require_for_super_admin": "must be true or false"})
        with self.db.unit_of_work() as uow:
            before = storage.two_factor_policy_on(uow.session)
            storage.write_setting(uow.session, storage.TWO_FACTOR_POLICY,
                                  {"require_for_super_admin": require_for_super_admin}, actor.user_id)
            if before != require_for_super_admin:
                uow.emit(events.two_factor_policy_changed(actor, require_for_super_admin))
            uow.commit()
        return {"require_for_super_admin": require_for_super_admin}

    # helpers of this section

    def _prove_for_two_factor_change(self, actor, session_id, password, code) -> User:
        """The signed-in user, once they gave the proof a 2FA change needs (twofactor.proof_problem):
        a wrong password counts like a failed sign-in, a wrong code like a failed second step."""
        now = utc_now()
        with self.db.unit_of_work() as uow:
            user = self._signed_in_user(uow, session_id, now)
            if problems := twofactor.proof_problem(user.totp_enrolled, password, code):
                raise ValidationFailed("Confirm this change with your password or a current code.",
                                       code="proof_required", details=problems)
            if not password:  # a code of the enrolled factor
                uow.session.refresh(user, with_for_update=True)
                if user.second_factor_locked_at:
                    self._refuse_second_factor(uow, user, actor, twofactor.LOCKED, "totp", now, count=False,
                                               via="change")
                if refusal := self._accept_totp(uow, user, code, now):
                    self._refuse_second_factor(uow, user, actor, refusal, "totp", now, via="change")
                user.second_factor_failures = 0
                uow.commit()
                return user
        self._check_current_password(actor, user, password, "password", via="2fa_change")
        return user

    def _accept_totp(self, uow, user, code, now) -> str | None:
        """Accepts a fresh code of the user's factor (its step is remembered: it never works again);
        else the reason it is refused."""
        step, refusal = twofactor.check_code(self._open_secret(user.totp_secret), code, now.timestamp(),
                                             user.totp_last_step)
        if step is not None and not storage.remember_step(uow.session, user.id, step):
            return twofactor.CODE_REUSED  # a concurrent use of the same code won
        return refusal

    def _refuse_second_factor(self, uow, user, actor, reason, method, now, count=True, via="login", expired=False):
        """Records a refused second factor (a wrong one counts toward the lock), commits, raises its answer."""
        failures, locked = None, bool(user and user.second_factor_locked_at)
        if count:
            state = twofactor.after_failure(
                twofactor.SecondFactorState(user.second_factor_failures or 0, user.second_factor_locked_at), now)
            user.second_factor_failures, user.second_factor_locked_at = state.failures, state.locked_at
            failures, locked = state.failures, state.locked
        self._emit_about(uow, user, events.two_factor_login_failed(user, actor, reason, method, failures, locked, via))
        uow.commit()
        if reason == twofactor.LOCKED or (count and locked):
            raise Forbidden("Too many wrong codes: the second sign-in step is locked until an administrator "
                            "unlocks the account (POST /api/v1/users/{id}/unlock).", code="second_factor_locked")
        if reason == twofactor.TICKET_INVALID:
            if expired:
                raise Unauthorized("The sign-in ticket has expired; sign in with your password again.",
                                   code="login_ticket_expired")
            raise Unauthorized("The sign-in ticket is not valid or was already used; sign in with your password "
                               "again.", code="login_ticket_invalid")
        messages = {twofactor.INVALID_CODE: "The code is not correct.",
                    twofactor.CODE_REUSED: "This code was already used; wait for the next one.",
                    twofactor.RECOVERY_CODE_INVALID: "The recovery code is not valid or was already used."}
        raise Unauthorized(messages[reason], code=reason)

    def _report_recovery_use(self, uow, user, actor) -> None:
        remaining = storage.recovery_codes_left(uow.session, user.id)
        used = [events.two_factor_recovery_used(user, actor, remaining)]
        if twofactor.recovery_codes_low(remaining):
            used.append(events.two_factor_recovery_low(user, actor, remaining))
        self._emit_about(uow, user, *used)

    def _new_recovery_codes(self, uow, user, now) -> list[str]:
        codes = twofactor.new_recovery_codes()
        digests = [self.secret_box.keyed_digest(twofactor.normalize_recovery_code(code)) for code in codes]
        storage.replace_recovery_codes(uow.session, user.id, digests, now)
        return codes

    def _refuse_self_disable(self, uow, user) -> None:
        self._refuse_two_factor_change(twofactor.self_disable_problem(
            user.totp_enrolled, user.totp_required, storage.two_factor_policy_on(uow.session),
            storage.is_super_admin(uow.session, user.id)))

    @staticmethod
    def _refuse_two_factor_change(problem: str | None) -> None:
        if problem:
            raise Conflict(twofactor.REFUSALS[problem], code=problem)

    def _open_secret(self, sealed: str) -> str:
        return self.secret_box.open(sealed)

    def _login_ticket_ttl(self) -> int:
        return min(self.config["GATEHOUSE"].integer("GATEHOUSE_LOGIN_TICKET_TTL"), twofactor.MAX_LOGIN_TICKET_TTL)
