"""Queries of the tenants of users: identity's read model of tenancy's memberships (with the
provisional membership identity writes when it makes a user), and the session's starting tenant."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.identity.models import Invitation, Membership, UserRole


def memberships_of(session: Session, user_id: str) -> list[Membership]:
    """The user's tenants (read model), `default` first then by id."""
    rows = session.scalars(sa.select(Membership).where(Membership.user_id == user_id, Membership.member.is_(True)))
    return sorted(rows, key=_membership_order)


def membership(session: Session, user_id: str, tenant_id: str) -> Membership | None:
    row = session.get(Membership, (user_id, tenant_id))
    return row if row is not None and row.member else None


def join_tenant(session: Session, user_id: str, tenant_id: str, as_of: str, *, is_default: bool | None = None,
                confirmed: bool = False) -> Membership:
    """Adds (or revives) the membership; is_default None keeps the flag (a new one: default when the
    user's first). A default membership makes the user's others not default."""
    row = session.get(Membership, (user_id, tenant_id))
    if row is None:
        row = Membership(user_id=user_id, tenant_id=tenant_id, member=False, is_default=False, confirmed=False,
                         as_of=as_of)
        session.add(row)
    if is_default is None and not row.member:
        is_default = not memberships_of(session, user_id)
    row.confirmed = confirmed or (row.member and row.confirmed)
    row.member, row.as_of = True, as_of
    if is_default is not None:
        row.is_default = is_default
    if row.is_default:
        _only_default(session, user_id, tenant_id)
    session.flush()
    return row


def leave_tenant(session: Session, row: Membership, as_of: str) -> None:
    """Ends the membership (a tombstone stays); another tenant becomes the default if this one was."""
    was_default = row.is_default
    row.member, row.is_default, row.confirmed, row.as_of = False, False, True, as_of
    session.flush()
    rest = memberships_of(session, row.user_id)
    if was_default and rest:
        rest[0].is_default = True


def _only_default(session: Session, user_id: str, tenant_id: str) -> None:
    session.execute(sa.update(Membership).where(Membership.user_id == user_id, Membership.tenant_id != tenant_id)
                    .values(is_default=False))


def _starting_tenant(memberships) -> str:
    """Where a new session starts, among the user's memberships sorted as memberships_of sorts them:
    their default tenant, else their only or first one; `default` for a user of no tenant (super
    admins; anyone else is refused there by the gateway)."""
    chosen = next((row for row in memberships if row.is_default), memberships[0] if memberships else None)
    return chosen.tenant_id if chosen else "default"


def _membership_order(row) -> tuple[bool, str]:
    return row.tenant_id != "default", row.tenant_id


_SIGN_IN_TENANTS = sa.union_all(
    sa.select(Membership.tenant_id, Membership.is_default, sa.true().label("is_membership"))
    .where(Membership.user_id == sa.bindparam("user_id"), Membership.member.is_(True)),
    sa.select(UserRole.tenant_id, sa.false().label("is_default"), sa.false().label("is_membership"))
    .where(UserRole.user_id == sa.bindparam("user_id"), UserRole.role.is_not(None)))


def sign_in_tenants(session: Session, user_id: str) -> tuple[str, tuple[str, ...]]:
    """Where a new session of the user starts, and tenants_of the user (which the sign-in event
    carries): one query for both, sign-in is the hot path."""
    rows = session.execute(_SIGN_IN_TENANTS, {"user_id": user_id}).all()
    joined = sorted((row for row in rows if row.is_membership), key=_membership_order)
    return _starting_tenant(joined), tuple(sorted({row.tenant_id for row in rows}))


def tenant_assignments(session: Session, user_ids: list[str]) -> dict[str, list[dict]]:
    """Per user: each tenant they belong to, with their role there and whether it is their default."""
    if not user_ids:
        return {}
    roles = {(row.user_id, row.tenant_id): row.role for row in session.scalars(
        sa.select(UserRole).where(UserRole.user_id.in_(user_ids)))}
    found: dict[str, list[dict]] = {user_id: [] for user_id in user_ids}
    rows = session.scalars(sa.select(Membership).where(Membership.user_id.in_(user_ids), Membership.member.is_(True))
                           .order_by(Membership.tenant_id != "default", Membership.tenant_id))
    for row in rows:
        found[row.user_id].append({"tenant_id": row.tenant_id, "role": roles.get((row.user_id, row.tenant_id)),
                                   "is_default": row.is_default})
    return found


def invitation_states(session: Session, user_ids: list[str]) -> dict[str, str]:
    """Per user made by an invitation: the state of their latest invitation."""
    if not user_ids:
        return {}
    rows = session.execute(sa.select(Invitation.user_id, Invitation.status).where(Invitation.user_id.in_(user_ids))
                           .order_by(Invitation.created_at))
    return {user_id: status for user_id, status in rows}
