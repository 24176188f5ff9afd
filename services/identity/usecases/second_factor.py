"""Two-factor authentication (rules in services/identity/twofactor.py). A 2FA change (enroll,
re-enroll, disable, new recovery codes) needs the current password or a current code besides the
session: a stolen session alone cannot plant or replace a factor. A first enrollment needs the password.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

from datetime import timedelta

from kernel import DEFAULT_TENANT_ID
from kernel.authority import require_super_admin
from kernel.crypto import new_token, token_digest
from kernel.db import aware
from kernel.envelope import Actor, utc_now
from kernel.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from services.identity import (
    domain,
    events,
    ratelimit,
    storage,
    storage_sessions,
    twofactor,
    views,
)
from services.identity.models import User
from services.identity.usecases import accounts, signin

ANOTHER_USERS_2FA = "another user's 2FA"  # the 2FA row actions: super admins only, as their routes say


def challenge_second_factor(uow, user, actor, now) -> dict:
    """The password step of a 2FA account: a single-use login ticket instead of a session."""
    if user.second_factor_locked_at:
        _refuse_second_factor(uow, user, actor, twofactor.LOCKED, None, now, count=False)
    ticket = new_token()
    ttl = _login_ticket_ttl(uow)
    storage_sessions.add_login_ticket(uow.session, user.id, token_digest(ticket), now, now + timedelta(seconds=ttl))
    ratelimit.emit_about(uow, user, events.two_factor_challenged(user, actor, twofactor.METHODS))
    uow.commit()
    return {"second_factor_required": True, "login_ticket": ticket, "expires_in": ttl,
            "methods": list(twofactor.METHODS)}


def login_second_factor(uow, actor, login_ticket, code=None, recovery_code=None, user_agent=""):
    """The second sign-in step: the password step's ticket and a TOTP code or a recovery code.
    Returns what login returns for an account without 2FA. A wrong code does not spend the
    ticket but counts toward the lock of the second step."""
    actor = Actor.from_dict(actor)
    method = "recovery_code" if recovery_code is not None else "totp"
    digest, now = token_digest(login_ticket), utc_now()
    with uow:
        ticket = storage_sessions.login_ticket(uow.session, digest)
        user = ticket and uow.session.get(User, ticket.user_id, with_for_update=True)
        if not user or ticket.used_at or not user.totp_enrolled or user.status != domain.ACTIVE:
            _refuse_second_factor(uow, user, actor, twofactor.TICKET_INVALID, method, now, count=False)
        if aware(ticket.expires_at) <= now:
            _refuse_second_factor(uow, user, actor, twofactor.TICKET_INVALID, method, now, count=False,
                                  expired=True)
        if user.second_factor_locked_at:
            _refuse_second_factor(uow, user, actor, twofactor.LOCKED, method, now, count=False)
        if method == "recovery_code":
            normalized = twofactor.normalize_recovery_code(recovery_code)
            spent = normalized and storage_sessions.use_recovery_code(uow.session, user.id,
                                                                      uow.secret_box.keyed_digest(normalized), now)
            refusal = None if spent else twofactor.RECOVERY_CODE_INVALID
        else:
            refusal = _accept_totp(uow, user, code, now)
        if refusal:
            _refuse_second_factor(uow, user, actor, refusal, method, now)
        if not storage_sessions.use_login_ticket(uow.session, digest, now):  # a concurrent second step won
            uow.session.rollback()
            _refuse_second_factor(uow, None, actor, twofactor.TICKET_INVALID, method, now, count=False)
        user.second_factor_failures, user.second_factor_locked_at = 0, None
        user_actor = actor.as_user(user.id, user.username, user.full_name, user.email)
        if method == "recovery_code":
            _report_recovery_use(uow, user, user_actor)
        signed_in = signin.open_session(uow, user, actor, user_agent, now, second_factor=method)
        uow.commit()
        return signed_in


def two_factor_status(uow, session_id):
    """The signed-in user's own 2FA state."""
    with uow:
        now = utc_now()
        user = signin.signed_in_user(uow, session_id, now)
        flags = storage.two_factor_flags(uow.session, [user])[user.id]
        codes_left = storage_sessions.recovery_codes_left(uow.session, user.id) if user.totp_enrolled else 0
        return {"enrolled": user.totp_enrolled, "enrolled_at": storage.iso(user.totp_enrolled_at),
                "required": user.totp_required, "required_by_policy": flags["totp_required_by_policy"],
                "enrollment_required": flags["totp_enrollment_required"],
                "enrollment_pending": not twofactor.enrollment_expired(user.totp_pending_at, now),
                "recovery_codes_left": codes_left,
                "second_factor_locked": user.second_factor_locked_at is not None}


def start_two_factor_enrollment(uow, actor, session_id, password=None, code=None):
    """A new TOTP secret for the signed-in user, shown once (secret, otpauth URI, QR code); it
    replaces nothing until confirmed with a code of it."""
    actor = Actor.from_dict(actor)
    user = _prove_for_two_factor_change(uow, actor, session_id, password, code)
    secret = twofactor.new_secret()
    with uow:
        user = accounts.load_user(uow, user.id, for_update=True)
        now = utc_now()
        user.totp_pending_secret, user.totp_pending_at = uow.secret_box.seal(secret), now
        ratelimit.emit_about(uow, user, events.two_factor_enrollment_started(user, actor, user.totp_enrolled))
        uow.commit()
    uri = twofactor.provisioning_uri(secret, user.username)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": twofactor.qr_svg(uri),
            "qr_png": twofactor.qr_png_base64(uri), "issuer": twofactor.ISSUER, "account": user.username,
            "algorithm": twofactor.ALGORITHM, "digits": twofactor.DIGITS, "period": twofactor.PERIOD,
            "expires_at": storage.iso(now + twofactor.ENROLLMENT_TTL)}


def confirm_two_factor_enrollment(uow, actor, session_id, code):
    """A code of the secret just started turns 2FA on (or replaces the factor): returns the
    10 recovery codes, shown this once; earlier recovery codes are dead."""
    actor = Actor.from_dict(actor)
    with uow:
        now = utc_now()
        user = signin.signed_in_user(uow, session_id, now)
        uow.session.refresh(user, with_for_update=True)
        if not user.totp_pending_secret or twofactor.enrollment_expired(user.totp_pending_at, now):
            raise Conflict("Start the enrollment first (POST /api/v1/me/2fa/enrollment); a started one "
                           "must be confirmed within 15 minutes.", code="2fa_enrollment_not_started")
        step = twofactor.matching_step(_open_secret(uow, user.totp_pending_secret), code, now.timestamp())
        if step is None:
            raise ValidationFailed("That is not a current code of the new secret; check the authenticator's "
                                   "clock and try the code it shows now.", code="invalid_code",
                                   details={"code": "is not a current code of the new secret"})
        re_enrollment = user.totp_enrolled
        user.totp_secret, user.totp_pending_secret, user.totp_pending_at = user.totp_pending_secret, None, None
        user.totp_enrolled, user.totp_enrolled_at, user.totp_last_step = True, now, step
        recovery_codes = _new_recovery_codes(uow, user, now)
        ratelimit.emit_about(uow, user, events.two_factor_enrolled(user, actor, re_enrollment))
        uow.commit()
    return {"recovery_codes": recovery_codes}


def disable_own_two_factor(uow, actor, session_id, password=None, code=None):
    """The signed-in user turns 2FA off (TOTP and recovery codes go); refused while an
    administrator or the policy requires it."""
    actor = Actor.from_dict(actor)
    with uow:
        _refuse_self_disable(uow, signin.signed_in_user(uow, session_id, utc_now()))
    user = _prove_for_two_factor_change(uow, actor, session_id, password, code)
    with uow:
        user = accounts.load_user(uow, user.id, for_update=True)
        _refuse_self_disable(uow, user)
        storage_sessions.remove_two_factor(uow.session, user)
        ratelimit.emit_about(uow, user, events.two_factor_disabled(user, actor, by="self"))
        uow.commit()


def regenerate_recovery_codes(uow, actor, session_id, password=None, code=None):
    """10 new recovery codes, shown this once; the earlier ones are dead."""
    actor = Actor.from_dict(actor)
    with uow:
        if not signin.signed_in_user(uow, session_id, utc_now()).totp_enrolled:
            _refuse_two_factor_change(twofactor.NOT_ENROLLED)
    user = _prove_for_two_factor_change(uow, actor, session_id, password, code)
    with uow:
        user = accounts.load_user(uow, user.id, for_update=True)
        if not user.totp_enrolled:
            _refuse_two_factor_change(twofactor.NOT_ENROLLED)
        recovery_codes = _new_recovery_codes(uow, user, utc_now())
        ratelimit.emit_about(uow, user, events.two_factor_recovery_regenerated(user, actor, len(recovery_codes)))
        uow.commit()
    return {"recovery_codes": recovery_codes}


def require_two_factor(uow, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
    """The user must enroll before doing anything else (at once, and at every sign-in until enrolled);
    the requirement stands after enrollment (the user cannot turn 2FA off) until it is cancelled."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, ANOTHER_USERS_2FA)  # the routes' x-permission, before any lookup
    accounts.require_authority_over(uow, actor, user_id, also=(tenant_id,))
    with uow:
        user = accounts.load_user(uow, user_id, for_update=True)
        _refuse_two_factor_change(twofactor.require_problem(user.totp_enrolled, user.totp_required))
        user.totp_required = True
        ratelimit.emit_about(uow, user, events.two_factor_required_for_user(user, actor), also=(tenant_id,))
        uow.commit()
        return views.admin_user(uow.session, user, storage.role_of(uow.session, user_id, tenant_id))


def cancel_two_factor_requirement(uow, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, ANOTHER_USERS_2FA)  # the routes' x-permission, before any lookup
    accounts.require_authority_over(uow, actor, user_id, also=(tenant_id,))
    with uow:
        user = accounts.load_user(uow, user_id, for_update=True)
        _refuse_two_factor_change(twofactor.cancel_problem(user.totp_required))
        user.totp_required = False
        ratelimit.emit_about(uow, user, events.two_factor_requirement_cleared(user, actor), also=(tenant_id,))
        uow.commit()


def admin_disable_two_factor(uow, actor, user_id, tenant_id=DEFAULT_TENANT_ID):
    """Removes the user's TOTP and every recovery code (a user who lost both): never on one's
    own account, never on a super admin while the policy requires 2FA of super admins."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, ANOTHER_USERS_2FA)  # the routes' x-permission, before any lookup
    accounts.require_authority_over(uow, actor, user_id, also=(tenant_id,))
    with uow:
        user = accounts.load_user(uow, user_id, for_update=True)
        _refuse_two_factor_change(twofactor.admin_disable_problem(
            actor.user_id, user.id, user.totp_enrolled, storage.two_factor_policy_on(uow.session),
            storage.is_super_admin(uow.session, user.id)))
        storage_sessions.remove_two_factor(uow.session, user)
        ratelimit.emit_about(uow, user, events.two_factor_disabled(user, actor, by="admin"), also=(tenant_id,))
        uow.commit()


def get_two_factor_policy(uow):
    with uow:
        return {"require_for_super_admin": storage.two_factor_policy_on(uow.session)}


def put_two_factor_policy(uow, actor, require_for_super_admin):
    """When on, super admins without TOTP must enroll before anything else (at their next request)."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the 2FA policy")
    if not isinstance(require_for_super_admin, bool):
        raise ValidationFailed("The 2FA policy has invalid fields.",
                               details={"require_for_super_admin": "must be true or false"})
    with uow:
        before = storage.two_factor_policy_on(uow.session)
        storage.write_setting(uow.session, storage.TWO_FACTOR_POLICY,
                              {"require_for_super_admin": require_for_super_admin}, actor.user_id)
        if before != require_for_super_admin:
            uow.emit(events.two_factor_policy_changed(actor, require_for_super_admin))
        uow.commit()
    return {"require_for_super_admin": require_for_super_admin}


def _prove_for_two_factor_change(uow, actor, session_id, password, code) -> User:
    """The signed-in user, once they gave the proof a 2FA change needs (twofactor.proof_problem):
    a wrong password counts like a failed sign-in, a wrong code like a failed second step."""
    now = utc_now()
    with uow:
        user = signin.signed_in_user(uow, session_id, now)
        if problems := twofactor.proof_problem(user.totp_enrolled, password, code):
            raise ValidationFailed("Confirm this change with your password or a current code.",
                                   code="proof_required", details=problems)
        if not password:  # a code of the enrolled factor
            uow.session.refresh(user, with_for_update=True)
            if user.second_factor_locked_at:
                _refuse_second_factor(uow, user, actor, twofactor.LOCKED, "totp", now, count=False,
                                      via="change")
            if refusal := _accept_totp(uow, user, code, now):
                _refuse_second_factor(uow, user, actor, refusal, "totp", now, via="change")
            user.second_factor_failures = 0
            uow.commit()
            return user
    signin.check_current_password(uow, actor, user, password, "password", via="2fa_change")
    return user


def _accept_totp(uow, user, code, now) -> str | None:
    """Accepts a fresh code of the user's factor (its step is remembered: it never works again);
    else the reason it is refused."""
    step, refusal = twofactor.check_code(_open_secret(uow, user.totp_secret), code, now.timestamp(),
                                         user.totp_last_step)
    if step is not None and not storage_sessions.remember_step(uow.session, user.id, step):
        return twofactor.CODE_REUSED  # a concurrent use of the same code won
    return refusal


def _refuse_second_factor(uow, user, actor, reason, method, now, count=True, via="login", expired=False):
    """Records a refused second factor (a wrong one counts toward the lock), commits, raises its answer."""
    failures, locked = None, bool(user and user.second_factor_locked_at)
    if count:
        state = twofactor.after_failure(
            twofactor.SecondFactorState(user.second_factor_failures or 0, user.second_factor_locked_at), now)
        user.second_factor_failures, user.second_factor_locked_at = state.failures, state.locked_at
        failures, locked = state.failures, state.locked
    ratelimit.emit_about(uow, user, events.two_factor_login_failed(user, actor, reason, method, failures, locked, via))
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


def _report_recovery_use(uow, user, actor) -> None:
    remaining = storage_sessions.recovery_codes_left(uow.session, user.id)
    used = [events.two_factor_recovery_used(user, actor, remaining)]
    if twofactor.recovery_codes_low(remaining):
        used.append(events.two_factor_recovery_low(user, actor, remaining))
    ratelimit.emit_about(uow, user, *used)


def _new_recovery_codes(uow, user, now) -> list[str]:
    codes = twofactor.new_recovery_codes()
    digests = [uow.secret_box.keyed_digest(twofactor.normalize_recovery_code(code)) for code in codes]
    storage_sessions.replace_recovery_codes(uow.session, user.id, digests, now)
    return codes


def _refuse_self_disable(uow, user) -> None:
    _refuse_two_factor_change(twofactor.self_disable_problem(
        user.totp_enrolled, user.totp_required, storage.two_factor_policy_on(uow.session),
        storage.is_super_admin(uow.session, user.id)))


def _refuse_two_factor_change(problem: str | None) -> None:
    if problem:
        raise Conflict(twofactor.REFUSALS[problem], code=problem)


def _open_secret(uow, sealed: str) -> str:
    return uow.secret_box.open(sealed)


def _login_ticket_ttl(uow) -> int:
    return min(uow.config["GATEHOUSE"].integer("GATEHOUSE_LOGIN_TICKET_TTL"), twofactor.MAX_LOGIN_TICKET_TTL)
