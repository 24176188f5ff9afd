"""Identity's answers: users, invitations and sessions as the RPCs return them (never a secret or hash)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from kernel.db import iso
from services.identity import storage
from services.identity.models import Invitation, LoginSession, User


def public_user(user: User) -> dict:
    return {
        "id": user.id, "username": user.username, "email": user.email,
        "first_name": user.first_name, "last_name": user.last_name, "full_name": user.full_name,
        "company": user.company, "status": user.status, "uid_number": user.uid_number,
        "is_first_admin": user.is_first_admin, "must_change_password": user.must_change_password,
        "totp_enrolled": user.totp_enrolled, "totp_required": user.totp_required,
        "version": user.version, "created_at": iso(user.created_at), "updated_at": iso(user.updated_at),
        "last_login_at": iso(user.last_login_at),
    }


def admin_user(session: Session, user: User, role: str | None) -> dict:
    """A user as administrators see them: with their role in the caller's tenant and the 2FA flags."""
    return admin_users(session, [(user, role)])[0]


def admin_users(session: Session, rows: list[tuple[User, str | None]]) -> list[dict]:
    """admin_user of many users with two queries in all (the user list)."""
    flags = storage.two_factor_flags(session, [user for user, _ in rows])
    return [{**public_user(user), **flags[user.id], "role": role} for user, role in rows]


def signed_in_user(session: Session, user: User) -> dict:
    """The user of a session, as sign-in answers and the gateway's guards read it (with what 2FA owes)."""
    return {**public_user(user), **storage.two_factor_flags(session, [user])[user.id]}


def public_invitation(invitation: Invitation) -> dict:
    """Never the token hash."""
    return {
        "id": invitation.id, "email": invitation.email, "role": invitation.role,
        "tenant_id": invitation.tenant_id, "status": invitation.status, "user_id": invitation.user_id,
        "invited_by": invitation.invited_by, "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at), "sent_at": iso(invitation.sent_at),
        "accepted_at": iso(invitation.accepted_at),
    }


def public_session(login_session: LoginSession, current_session_id: str | None = None) -> dict:
    return {"id": login_session.id, "created_at": iso(login_session.created_at),
            "last_used_at": iso(login_session.last_used_at), "expires_at": iso(login_session.expires_at),
            "ip": login_session.ip, "user_agent": login_session.user_agent,
            "current": login_session.id == current_session_id}
