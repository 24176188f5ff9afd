"""Invitations: placeholder accounts, invitation mails, and registration through an invitation link
(rules in services/identity/invitations.py).

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, paging
from kernel.authority import require_permission
from kernel.crypto import token_digest
from kernel.envelope import Actor, Resource, utc_now, utc_now_iso
from kernel.errors import Conflict, Gone, NotFound, ValidationFailed
from services.identity import (
    domain,
    events,
    limits,
    mail,
    storage,
    storage_mail,
    storage_tenants,
    views,
)
from services.identity import invitations as invitation_rules
from services.identity.models import Invitation, MailJob, User
from services.identity.usecases import accounts, platform_settings


def create_invitations(uow, actor, emails, role, tenant_id=DEFAULT_TENANT_ID):
    """All or nothing: per address a placeholder user (`invited`), an invitation and a mail.
    The actor must be allowed to hand out `role` (unscoped) in the tenant: rbac says, as it did for the gateway."""
    actor = Actor.from_dict(actor)
    require_permission(uow.rbac, actor, accounts.ADMIN_USERS, tenant_id, tenant_required=True)
    if not actor.is_operator:
        uow.rbac.check_assignable(actor.user_id, role, tenant_id, {})
    addresses, problems = invitation_rules.parse_emails(emails)
    if problems:
        raise ValidationFailed("Some addresses are not valid.", code="invalid_emails", details=problems)
    per_admin = limits.limits_from_config(uow.config["GATEHOUSE"])["invitations_per_admin"]
    if limits.never_allows(len(addresses), per_admin):
        raise ValidationFailed(f"At most {per_admin.max} invitations per {per_admin.window_seconds} s; "
                               "send fewer addresses at once.", code="invalid_emails",
                               details={"emails": f"at most {per_admin.max} addresses"})
    now = utc_now()
    with uow:
        platform_settings.enforce_limits(uow, actor, [("invitations_per_admin", actor.user_id, len(addresses))],
                                         resource=Resource("user", actor.user_id, actor.username),
                                         tenant_ids=(tenant_id,))
        platform_settings.require_smtp(uow.session)
        if taken := storage_mail.email_conflicts(uow.session, addresses):
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
                storage_tenants.join_tenant(uow.session, placeholder.id, tenant_id, utc_now_iso())
                invitation = Invitation(email=address, user_id=placeholder.id, role=role, tenant_id=tenant_id,
                                        status=invitation_rules.PENDING, invited_by=actor.user_id,
                                        created_at=now, expires_at=now + uow.mailer.invitation_ttl)
                uow.session.add(invitation)
                uow.session.flush()
                queue_mail(uow.session, mail.INVITATION, invitation.id, address, now)
                uow.emit(events.invitation_sent(invitation, actor))
                created.append(invitation)
        except IntegrityError:  # a concurrent invitation or registration took an address
            raise Conflict("Some addresses already have an account or a pending invitation.",
                           code="email_taken") from None
        uow.commit()
    uow.mailer.wake()
    return [views.public_invitation(invitation) for invitation in created]


def list_invitations(uow, status=None, limit=50, cursor=None, tenant_id=DEFAULT_TENANT_ID):
    with uow:
        rows, next_cursor, total = storage_mail.list_invitations(uow.session, tenant_id, status, limit, cursor)
        return paging.list_answer([views.public_invitation(row) for row in rows], next_cursor, total)


def get_invitation(uow, invitation_id, tenant_id=DEFAULT_TENANT_ID):
    with uow:
        return views.public_invitation(_invitation(uow.session, invitation_id, tenant_id))


def resend_invitation(uow, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
    """A new expiry and a new mail; the previous link stops working at once."""
    actor = Actor.from_dict(actor)
    _require_reach(uow, actor, invitation_id, tenant_id)
    now = utc_now()
    with uow:
        invitation = _pending_invitation(uow.session, invitation_id, tenant_id, now)
        platform_settings.require_smtp(uow.session)
        platform_settings.enforce_limits(uow, actor, [("invitations_per_admin", actor.user_id, 1),
                                                      ("invitation_resends_per_address", invitation.email, 1)],
                                         resource=Resource("invitation", invitation.id, invitation.email),
                                         tenant_ids=(tenant_id,))
        invitation.token_hash, invitation.expires_at = None, now + uow.mailer.invitation_ttl
        storage_mail.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "superseded by a resend", now)
        queue_mail(uow.session, mail.INVITATION, invitation.id, invitation.email, now)
        uow.emit(events.invitation_sent(invitation, actor, resent=True))
        uow.commit()
    uow.mailer.wake()
    return views.public_invitation(invitation)


def revoke_invitation(uow, actor, invitation_id, tenant_id=DEFAULT_TENANT_ID):
    actor = Actor.from_dict(actor)
    _require_reach(uow, actor, invitation_id, tenant_id)
    now = utc_now()
    with uow:
        invitation = _pending_invitation(uow.session, invitation_id, tenant_id, now)
        invitation.status = invitation_rules.REVOKED
        storage_mail.delete_placeholder(uow.session, invitation.user_id)
        storage_mail.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "invitation revoked", now)
        uow.emit(events.invitation_revoked(invitation, actor))
        uow.commit()


def _require_reach(uow, actor, invitation_id, tenant_id):
    """Resending or revoking an invitation needs what sending it needed: the right to hand out its
    role (a tenant admin neither revokes nor re-mails a super admin's invitation of a super admin)."""
    require_permission(uow.rbac, actor, accounts.ADMIN_USERS, tenant_id, tenant_required=True)
    if actor.is_operator:
        return
    with uow:
        role = _invitation(uow.session, invitation_id, tenant_id).role
    uow.rbac.check_assignable(actor.user_id, role, tenant_id, {})


def invitation_for_token(uow, token):
    """What the registration page shows of an invitation link (anonymous)."""
    with uow:
        invitation = _usable_invitation(uow.session, token, utc_now())
        return {"email": invitation.email, "expires_at": storage.iso(invitation.expires_at),
                "role": invitation.role}


def register_invited(uow, actor, invitation_token, username, first_name, last_name, email, password):
    """Registration through an invitation link: the placeholder becomes an active account."""
    actor = Actor.from_dict(actor)
    with uow:
        invitation = _usable_invitation(uow.session, invitation_token, utc_now())
        invitation_id, invited_email = invitation.id, invitation.email
        policy = storage.password_policy(uow.session)
    if email and invited_email not in domain.email_lookup_forms(email):
        raise ValidationFailed("The registration has invalid fields.",
                               details={"email": "must be the invited address"})
    problems = domain.registration_problems(username, first_name, last_name, invited_email, password, policy)
    if problems:
        raise ValidationFailed("The registration has invalid fields.", details=problems)
    password_hash = tpool.execute(domain.hash_password, password)
    now = utc_now()
    with uow:
        if uow.session.scalar(sa.select(User.id).where(User.username == username)):
            raise Conflict("That username is already in use.", code="user_exists",
                           details={"username": "is already taken"})
        if not storage_mail.consume_invitation(uow.session, invitation_id, token_digest(invitation_token), now):
            raise _invitation_refusal(uow.session, invitation_id, now)
        invitation = uow.session.get(Invitation, invitation_id)
        user = uow.session.get(User, invitation.user_id) if invitation.user_id else None
        try:
            if user is None:  # placeholder gone (should not happen): make the account anew
                user = accounts.new_user(uow.session, username, first_name, last_name, invited_email,
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
    return views.public_user(user)


def queue_mail(session, kind, ref_id, recipient, now):
    session.add(MailJob(kind=kind, ref_id=ref_id, recipient=recipient, attempts=0, next_attempt_at=now,
                        created_at=now))


def _invitation(session, invitation_id, tenant_id):
    """An invitation of the tenant; another tenant's is not found (ids cannot be probed)."""
    invitation = session.get(Invitation, invitation_id)
    if not invitation or invitation.tenant_id != tenant_id:
        raise NotFound("No such invitation.", code="invitation_not_found",
                       details={"invitation_id": invitation_id})
    return invitation


def _pending_invitation(session, invitation_id, tenant_id, now):
    invitation = _invitation(session, invitation_id, tenant_id)
    if invitation_rules.token_refusal(invitation.status, invitation.expires_at, now):
        raise Conflict(f"The invitation is {invitation.status}; only pending invitations can change.",
                       code="invitation_not_pending", details={"status": invitation.status})
    return invitation


def _usable_invitation(session, token, now):
    invitation = storage_mail.invitation_by_token(session, token_digest(token)) if token else None
    if not invitation:
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    if refusal := _invitation_refusal(session, invitation.id, now):
        raise refusal
    return invitation


def _invitation_refusal(session, invitation_id, now):
    invitation = session.get(Invitation, invitation_id)
    refusal = invitation_rules.token_refusal(invitation.status, invitation.expires_at, now)
    if refusal == "invitation_expired":
        return Gone("This invitation has expired; ask for a new one.", code=refusal)
    if refusal:
        return Gone("This invitation was already used or withdrawn.", code=refusal)
    return None
