"""Platform settings kept by identity (SMTP and its test mail, password policy, self-registration;
rules in mail.py) and the mail and sign-up rate limits (rules in limits.py, counting in ratelimit.py).

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

import dataclasses

from kernel.authority import require_super_admin
from kernel.envelope import Actor, utc_now
from kernel.errors import Conflict, TooManyRequests, ValidationFailed
from services.identity import domain, events, limits, mail, mailer, ratelimit, storage, storage_mail


def get_smtp_settings(uow):
    with uow:
        return _public_smtp(storage.read_setting(uow.session, "smtp"))


def put_smtp_settings(uow, actor, settings):
    """Replaces the SMTP settings; a missing password keeps the stored one, "" removes it.
    The platform's one mail sender: super admins only (tenants have none of their own)."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the SMTP settings")
    settings = {**settings, "host": (settings.get("host") or "").strip(),
                "username": settings.get("username") or None}
    if problems := mail.smtp_problems(settings):
        raise ValidationFailed("The SMTP settings have invalid fields.", details=problems)
    new_password = settings.get("password")  # None: keep the stored one
    with uow:
        before = storage.read_setting(uow.session, "smtp") or {}
        after = {field: settings.get(field) for field in mail.SMTP_FIELDS}
        after["password_sealed"] = before.get("password_sealed")
        changed = mail.changed_fields(before, after, mail.SMTP_FIELDS)
        if new_password is not None and new_password != _stored_smtp_password(uow, before):
            after["password_sealed"] = uow.mailer.box.seal(new_password) if new_password else None
            changed.append("password")
        storage.write_setting(uow.session, "smtp", after, actor.user_id)
        if changed:
            uow.emit(events.settings_changed("smtp", actor, changed))
        storage_mail.retry_waiting_mail_now(uow.session, utc_now())
        uow.commit()
    uow.mailer.wake()
    return _public_smtp(after)


def delete_smtp_settings(uow, actor):
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the SMTP settings")
    with uow:
        before = storage.read_setting(uow.session, "smtp")
        if storage.delete_setting(uow.session, "smtp"):
            fields = [f for f in mail.SMTP_FIELDS if before.get(f) is not None]
            fields += ["password"] if before.get("password_sealed") else []
            uow.emit(events.settings_changed("smtp", actor, fields))
            uow.commit()


def get_password_policy(uow):
    with uow:
        return dataclasses.asdict(storage.password_policy(uow.session))


def put_password_policy(uow, actor, values):
    """Replaces the policy (platform-wide, for every tenant: super admins only); missing fields take
    the defaults."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the password policy")
    policy = dataclasses.asdict(mail.password_policy(values))
    if problems := mail.password_policy_problems(policy):
        raise ValidationFailed("The password policy has invalid fields.", details=problems)
    with uow:
        before = dataclasses.asdict(storage.password_policy(uow.session))
        storage.write_setting(uow.session, "password_policy", policy, actor.user_id)
        if changed := mail.changed_fields(before, policy, mail.POLICY_FIELDS):
            uow.emit(events.settings_changed("password_policy", actor, changed))
        uow.commit()
    return policy


def send_test_mail(uow, actor, to):
    """Sends a test message with the stored SMTP settings to `to`, now (not through the mail
    queue), and answers what happened: {"sent": true} or {"sent": false, "error": the SMTP
    error in words, with no secret}; audited either way (smtp_test_sent). Super admins only;
    counts against smtp_tests_per_admin."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the SMTP settings")
    recipient, problem = domain.normalize_email(to or "")
    if problem:
        raise ValidationFailed("The test mail needs a valid address.", details={"to": problem})
    with uow:
        require_smtp(uow.session)
        enforce_limits(uow, actor, [("smtp_tests_per_admin", actor.user_id, 1)])
        uow.commit()
    error = None
    with uow:
        try:
            settings = mailer.smtp_settings(uow.session, uow.mailer.box)
        except mailer.SmtpUnusable as problem:
            error = str(problem)
    if error is None:
        message = mail.build_test_message(settings["from_address"], recipient)
        try:
            mailer.send(settings, message, timeout=mailer.SMTP_TEST_TIMEOUT, deadline=mailer.SMTP_TEST_DEADLINE)
        except Exception as failure:  # any failure is the test's answer, in words
            error = mail.describe_failure(failure, settings.get("password") or "", username=settings.get("username"))
    with uow:
        uow.emit(events.smtp_test_sent(actor, recipient, error))
        uow.commit()
    return {"sent": error is None, "to": recipient, "error": error}


def get_registration_settings(uow):
    with uow:
        return storage.registration_settings(uow.session)


def put_registration_settings(uow, actor, values):
    """Replaces the self-registration settings (platform-wide: super admins only); a missing
    allowed_email_domains means any domain. Domains are kept in the ASCII form addresses are."""
    actor = Actor.from_dict(actor)
    require_super_admin(uow.rbac, actor, "the registration settings")
    values = {"allowed_email_domains": [], **values}
    if problems := mail.registration_settings_problems(values):
        raise ValidationFailed("The registration settings have invalid fields.", details=problems)
    after = {"self_registration": values["self_registration"],
             "allowed_email_domains": list(dict.fromkeys(
                 mail.normalize_email_domain(domain)[0] for domain in values["allowed_email_domains"]))}
    with uow:
        before = storage.registration_settings(uow.session)
        storage.write_setting(uow.session, storage.REGISTRATION, after, actor.user_id)
        if changed := mail.changed_fields(before, after, mail.REGISTRATION_FIELDS):
            uow.emit(events.settings_changed(storage.REGISTRATION, actor, changed))
        uow.commit()
    return after


def require_smtp(session):
    if not storage.read_setting(session, "smtp"):
        raise Conflict("SMTP is not configured: configure it in the settings (PUT /api/v1/settings/smtp) "
                       "before sending mail.", code="smtp_not_configured")


def _stored_smtp_password(uow, stored):
    """"" when none is stored or it cannot be opened any more (GATEHOUSE_SECRET_KEY changed)."""
    try:
        return uow.mailer.box.open(stored["password_sealed"]) if stored.get("password_sealed") else ""
    except ValueError:
        return ""


def _public_smtp(stored):
    stored = stored or {}
    return {"configured": bool(stored), **{field: stored.get(field) for field in mail.SMTP_FIELDS},
            "password_set": bool(stored.get("password_sealed"))}


def over_limit(uow, actor, checks, user=None, resource=None, tenant_ids=()) -> tuple[str, int] | None:
    """ratelimit.over_limit with this service's limits."""
    return ratelimit.over_limit(uow, limits.limits_from_config(uow.config["GATEHOUSE"]), actor, checks,
                                user, resource, tenant_ids)


def enforce_limits(uow, actor, checks, **about) -> None:
    """_over_limit, answering a refusal with 429 rate_limited and Retry-After."""
    if refused := over_limit(uow, actor, checks, **about):
        name, wait = refused
        raise TooManyRequests(limits.refusal_message(name), code="rate_limited",
                              details={"limit": name, "retry_after": wait}, retry_after=wait)
