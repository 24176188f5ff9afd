"""Identity's RPC entrypoints: thin, the rules live in domain.py and storage.py."""
from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID

from kernel.consumer import on_event
from kernel.envelope import SYSTEM, Actor, utc_now
from kernel.crypto import token_digest
from kernel.errors import Conflict, Gone, NotFound, Unauthorized, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.identity import domain, events, mail, storage
from services.identity import invitations as invitation_rules
from services.identity.mailer import Mailer
from services.identity.storage import Invitation, LoginSession, MailJob, PasswordReset, User, UserRole
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
    mailer = Mailer()

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
    def register(self, actor, username, first_name, last_name, email=None, password=None, invitation_token=None):
        """Self-registration: a pending user that an administrator approves; through an
        invitation link (invitation_token): the invited account, active at once."""
        if invitation_token:
            return self._register_invited(actor, invitation_token, username, first_name, last_name, email, password)
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

    @rpc
    def create_invitations(self, actor, emails, role, tenant_id=DEFAULT_TENANT_ID):
        """All or nothing: per address a placeholder user (`invited`), an invitation and a mail.
        The gateway has asked rbac whether the actor may hand out `role`."""
        actor = Actor.from_dict(actor)
        addresses, problems = invitation_rules.parse_emails(emails)
        if problems:
            raise ValidationFailed("Some addresses are not valid.", code="invalid_emails", details=problems)
        now = utc_now()
        with self.db.unit_of_work() as uow:
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
    def list_invitations(self, status=None, limit=50, cursor=None):
        with self.db.unit_of_work() as uow:
            rows, next_cursor, total = storage.list_invitations(uow.session, status, limit, cursor)
            return {"items": [storage.public_invitation(row) for row in rows], "next_cursor": next_cursor,
                    "total": total}

    @rpc
    def get_invitation(self, invitation_id):
        with self.db.unit_of_work() as uow:
            return storage.public_invitation(self._invitation(uow.session, invitation_id))

    @rpc
    def resend_invitation(self, actor, invitation_id):
        """A new expiry and a new mail; the previous link stops working at once."""
        actor = Actor.from_dict(actor)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            invitation = self._pending_invitation(uow.session, invitation_id, now)
            self._require_smtp(uow.session)
            invitation.token_hash, invitation.expires_at = None, now + self.mailer.invitation_ttl
            storage.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "superseded by a resend", now)
            self._queue_mail(uow.session, mail.INVITATION, invitation.id, invitation.email, now)
            uow.emit(events.invitation_sent(invitation, actor, resent=True))
            uow.commit()
        self.mailer.wake()
        return storage.public_invitation(invitation)

    @rpc
    def revoke_invitation(self, actor, invitation_id):
        actor = Actor.from_dict(actor)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            invitation = self._pending_invitation(uow.session, invitation_id, now)
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
                                          domain.ACTIVE, password_hash)
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
            user_actor = actor.as_user(user.id, user.username)
            uow.emit(events.user_registered(user, user_actor, invitation_id=invitation.id),
                     events.invitation_accepted(invitation, user, user_actor))
            uow.commit()
        return storage.public_user(user)

    @rpc
    def request_password_reset(self, actor, email):
        """Self-service: mails a reset link to an active account. Says nothing either way."""
        actor = Actor.from_dict(actor)
        address = domain.normalize_email(email)[0]
        if not address:
            return
        now = utc_now()
        with self.db.unit_of_work() as uow:
            user = uow.session.scalars(sa.select(User).where(User.email == address)).first()
            if not user or user.status != domain.ACTIVE:
                return
            if not mail.reset_mail_allowed(storage.last_reset_requested_at(uow.session, user.id), now):
                return
            self._queue_reset(uow, user, actor, now, by_admin=False)
            uow.commit()
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
            user_actor = actor.as_user(user.id, user.username)
            self._set_password(uow, user, password_hash, False, user_actor, "password_reset", now)
            uow.emit(events.password_reset_completed(user, user_actor))
            uow.commit()

    @rpc
    def admin_reset_password(self, actor, user_id, method):
        """method email: a reset link is mailed (None); random: a generated password, returned
        once, that must be changed at the next sign-in. Admins never choose a password."""
        actor = Actor.from_dict(actor)
        now = utc_now()
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user_id)
            if not user:
                raise NotFound("No such user.", details={"user_id": user_id})
            if user.status == domain.INVITED:
                raise Conflict("This user has not accepted the invitation yet; resend the invitation instead.",
                               code="user_invited")
            if method == "email":
                self._require_smtp(uow.session)
                self._queue_reset(uow, user, actor, now, by_admin=True)
                uow.commit()
                self.mailer.wake()
                return None
        if method != "random":
            raise ValidationFailed("Unknown reset method.", details={"method": "must be email or random"})
        password = domain.generate_password()
        password_hash = tpool.execute(domain.hash_password, password)
        with self.db.unit_of_work() as uow:
            user = uow.session.get(User, user_id)
            if not user:
                raise NotFound("No such user.", details={"user_id": user_id})
            self._set_password(uow, user, password_hash, True, actor, "password_reset_by_admin", utc_now())
            uow.emit(events.password_changed(user, actor, by_admin=True))
            uow.commit()
        return {"password": password}

    @rpc
    def get_smtp_settings(self):
        with self.db.unit_of_work() as uow:
            return self._public_smtp(storage.read_setting(uow.session, "smtp"))

    @rpc
    def put_smtp_settings(self, actor, settings):
        """Replaces the SMTP settings; a missing password keeps the stored one, "" removes it."""
        actor = Actor.from_dict(actor)
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
        """Replaces the policy; missing fields take the defaults."""
        actor = Actor.from_dict(actor)
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
        reset = PasswordReset(user_id=user.id, requested_by=actor.user_id, created_at=now,
                              expires_at=now + self.mailer.reset_ttl)
        uow.session.add(reset)
        uow.session.flush()
        self._queue_mail(uow.session, mail.PASSWORD_RESET, reset.id, user.email, now)
        uow.emit(events.password_reset_requested(user, actor, by_admin=by_admin))

    @staticmethod
    def _invitation(session, invitation_id):
        invitation = session.get(Invitation, invitation_id)
        if not invitation:
            raise NotFound("No such invitation.", code="invitation_not_found",
                           details={"invitation_id": invitation_id})
        return invitation

    def _pending_invitation(self, session, invitation_id, now):
        invitation = self._invitation(session, invitation_id)
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
        if mail.aware(reset.expires_at) <= now:
            return Gone("This password reset link has expired; ask for a new one.", code="reset_expired")
        return None

    @staticmethod
    def _set_password(uow, user, password_hash, must_change, actor, reason, now):
        """New password: earlier reset links and every session of the user end."""
        user.password_hash, user.must_change_password, user.updated_at = password_hash, must_change, now
        storage.close_open_resets(uow.session, user.id, now)
        if revoked := storage.revoke_sessions(uow.session, user.id, reason, now):
            uow.emit(events.sessions_revoked(user, actor, revoked, reason))

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
