"""How tenancy follows identity: the bodies of its event handlers.

Each takes the event and the unit of work the consumer opened for it (already entered, the event
claimed in the inbox; the consumer commits it after), as kernel/consumer.py runs handlers.
Which events they follow is said in service.py (which alone imports identity's event types).
"""
from __future__ import annotations

import sqlalchemy as sa

from contracts.events import payload_of
from kernel import DEFAULT_TENANT_ID
from services.tenancy import events, storage
from services.tenancy.memberships import join, leave
from services.tenancy.storage import Membership, Tenant


def enrol_new_user(uow, event, invitation_accepted: bool):
    """A new user joins the tenant their event names first (an invitation's tenant), else `default`.
    An invitee joins the inviting tenant only: when it was deleted meanwhile, no tenant (as its
    members were left), never `default`, where its administrators would see them.
    invitation_accepted: the event is identity's invitation_accepted (else user_created or user_registered)."""
    new = payload_of(event)  # InvitationAccepted, UserCreated or UserRegistered
    if invitation_accepted:
        user_id, username, wanted = new.user_id, new.username, new.tenant_id
        if not (wanted and uow.session.get(Tenant, wanted)):
            return
    elif getattr(new, "invitation_id", None):
        return  # registered through an invitation: invitation_accepted, of the same commit, names the tenant
    else:
        user_id, username = event.resource.id, new.username
        wanted = event.tenant_ids[0] if event.tenant_ids else None
    tenant_id = wanted if wanted and uow.session.get(Tenant, wanted) else DEFAULT_TENANT_ID
    join(uow, user_id, username, tenant_id, event.actor)


def enrol_invited(uow, event):
    """An invitation's placeholder belongs to the inviting tenant from the invitation on (no
    username yet): other tenants treat it as any user of a tenant they do not administer."""
    sent = payload_of(event)  # InvitationSent
    user_id, tenant_id = sent.user_id, event.tenant_ids[0] if event.tenant_ids else None
    if user_id and tenant_id and not sent.resent and uow.session.get(Tenant, tenant_id):
        join(uow, user_id, None, tenant_id, event.actor)


def forget_revoked_placeholder(uow, event):
    """A revoked invitation's placeholder is gone (identity deleted it): so are its memberships."""
    if user_id := payload_of(event).user_id:  # InvitationRevoked
        for membership, _ in storage.memberships_of(uow.session, user_id):
            leave(uow, membership, event.actor, events.USER_GONE)


def follow_rename(uow, event):
    updated = payload_of(event)  # UserUpdated
    if "username" in updated.changed:
        uow.session.execute(sa.update(Membership).where(Membership.user_id == event.resource.id)
                            .values(username=updated.profile.username))


def forget_removed_user(uow, event):
    for membership, _ in storage.memberships_of(uow.session, event.resource.id):
        leave(uow, membership, event.actor, events.USER_GONE)
