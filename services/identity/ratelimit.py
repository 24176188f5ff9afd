"""Counting the mail and sign-up limits (rules in limits.py) in identity's database, shared by the
service's RPCs and the mailer's handling of reset requests (resets.py)."""
from __future__ import annotations

from kernel.envelope import utc_now
from services.identity import events, limits, storage


def emit_about(uow, user, *about_user, also=()):
    """Emits events about `user` (None: unknown) that each of the user's tenants, and the
    tenants in `also` (where it happened), see in their audit views."""
    tenant_ids = (*also, *(storage.tenants_of(uow.session, user.id) if user else ()))
    uow.emit(*events.in_tenants(tenant_ids, *about_user))


def over_limit(uow, rules, actor, checks, user=None, resource=None, tenant_ids=()) -> tuple[str, int] | None:
    """Count each (limit name, subject, units) in this unit of work, which must hold no write yet.

    All within their limits: None; the caller goes on, and what it commits counts. Else the unit
    of work is rolled back (nothing counted), the window's first refusal for that subject is
    audited (about `user`, or `resource`; later ones only logged, so a flood of refused requests
    cannot flood the audit trail) and committed, and (limit name, seconds to wait) returned.
    """
    now = utc_now()
    for name, subject, units in checks:
        limit = rules[name]
        if not limit.enabled:
            continue
        start, end = limits.window_bounds(now, limit.window_seconds)
        key = limit.key(subject)
        if storage.take_rate(uow.session, key, start, end, units, lambda count: limits.allows(count, limit)):
            continue
        wait = limits.retry_after(now, limit)
        uow.session.rollback()
        if storage.first_refusal(uow.session, key, start, end):
            emit_about(uow, user, events.rate_limited(actor, name, limits.refusal_message(name), wait,
                                                      resource, user, tenant_ids))
        # later refusals: the call's own log line says rate_limited (kernel/calllog.py)
        uow.commit()
        return name, wait
    return None
