"""Identity's tables (SQLAlchemy models): what storage*.py query and the use cases change."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import service_base

Base = service_base("identity")
metadata = Base.metadata


class User(Base):
    """An account. Invited users exist before they choose a username (status `invited`)."""

    __tablename__ = "identity_users"
    # The user list walks these in its sort's order from where the last page ended (key, id);
    # the id also spares sorting runs of equal keys (a status, a name shared by many).
    __table_args__ = (
        sa.Index("ix_identity_users_sort_name", "first_name", "last_name", "id"),
        sa.Index("ix_identity_users_sort_status", "status", "id"),
        sa.Index("ix_identity_users_sort_totp", "totp_enrolled", "id"),
        sa.Index("ix_identity_users_sort_created_at", "created_at", "id"),
        sa.Index("ix_identity_users_sort_last_login_at", "last_login_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    username: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(64), default="")
    last_name: Mapped[str] = mapped_column(sa.String(64), default="")
    company: Mapped[str] = mapped_column(sa.String(128), default="")
    status: Mapped[str] = mapped_column(sa.String(16))
    # Allocated when the account becomes real (registration, creation, acceptance).
    uid_number: Mapped[int | None] = mapped_column(sa.Integer, unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    must_change_password: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_first_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # 2FA. totp_required: an administrator requires it (it stands after enrollment, until cancelled).
    totp_enrolled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    totp_required: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(sa.Text)  # sealed (kernel.crypto.SecretBox)
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.Text)  # sealed; enrollment started, not confirmed
    totp_pending_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # RFC 6238 time step of the last accepted code: a code of this step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(sa.Integer)
    second_factor_failures: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    second_factor_locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Lowercased "username first last email": one LIKE serves the user list's search.
    search_text: Mapped[str] = mapped_column(sa.String(512), default="")
    # Bumped on every change of the profile or status: the ETag of If-Match updates.
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def refresh_search_text(self) -> None:
        self.search_text = " ".join(
            part for part in (self.username, self.first_name, self.last_name, self.email) if part).lower()


class UserRole(Base):
    """Read model of rbac's assignments (fed by rbac events): the user list sorts and
    filters by role in the same query as everything else."""

    __tablename__ = "identity_user_roles"
    __table_args__ = (sa.Index("ix_identity_user_roles_tenant_role", "tenant_id", "role", "user_id"),)

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    role: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # occurred_at of the rbac event applied last: a late, older event changes nothing.
    as_of: Mapped[str] = mapped_column(sa.String(32))


class Membership(Base):
    """Read model of tenancy's memberships (fed by its events): the user list joins it to show a
    tenant's members only, and sign-in picks the session's tenant from it.

    Identity writes a new user's first membership itself in the creating transaction
    (`confirmed` false) so the user shows at once; tenancy's event confirms it. A row whose
    membership ended stays as a tombstone (`member` false) so a late, older event changes nothing.
    """

    __tablename__ = "identity_memberships"
    __table_args__ = (sa.Index("ix_identity_memberships_tenant_user", "tenant_id", "member", "user_id"),)

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    member: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    confirmed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # occurred_at of the event applied last (or the creation's time): older events change nothing.
    as_of: Mapped[str] = mapped_column(sa.String(32))


class RecoveryCode(Base):
    """A 2FA recovery code, by keyed digest only; works once (used_at)."""

    __tablename__ = "identity_recovery_codes"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginTicket(Base):
    """What the password step of a 2FA account answers instead of a session: single use,
    short-lived, stored by digest; the second step trades it (and a code) for a session."""

    __tablename__ = "identity_login_tickets"

    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginSession(Base):
    """A signed-in device: access tokens name it, refresh tokens renew it."""

    __tablename__ = "identity_sessions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(256), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(64))
    # The session's active tenant: every request of it is confined there (chosen at sign-in, switched).
    tenant_id: Mapped[str] = mapped_column(sa.String(36), default="default", server_default="default")


class RefreshToken(Base):
    """Every refresh token a session was given, by hash: a used one presented again
    means it was stolen, and the whole session is revoked."""

    __tablename__ = "identity_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_sessions.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed password attempts per key (`account:<id>`, `login:<name>`, `ip:<addr>`)."""

    __tablename__ = "identity_login_throttle"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class RateCounter(Base):
    """How many units (requests, mails) one key used in one fixed window (limits.py)."""

    __tablename__ = "identity_rate_counters"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    count: Mapped[int] = mapped_column(sa.Integer, default=0)


class Invitation(Base):
    __tablename__ = "identity_invitations"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    # The placeholder user (status `invited`) that shows in the user list until acceptance.
    user_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    role: Mapped[str] = mapped_column(sa.String(64))
    tenant_id: Mapped[str] = mapped_column(sa.String(36))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # pending accepted revoked expired
    # sha256 of the single-use token; minted when the mail is handed to SMTP, never stored in clear.
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PasswordReset(Base):
    __tablename__ = "identity_password_resets"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("identity_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    requested_by: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class ResetRequest(Base):
    """A self-service password reset request, as accepted: the address and who asked. The request
    answers once this row is committed, the same for any address; the mailer looks the account up
    afterwards (services/identity/resets.py), so no answer's timing tells whether it exists."""

    __tablename__ = "identity_reset_requests"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(sa.String(254))
    actor: Mapped[str] = mapped_column(sa.Text)  # JSON of kernel.envelope.Actor (IP, request id) for the audit
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


class MailJob(Base):
    """A mail to deliver, retried until SMTP takes it; survives restarts because it is a row.

    It holds no secret: the link's token is minted at delivery time (see mailer.py).
    """

    __tablename__ = "identity_mail_jobs"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(sa.String(32))  # invitation, password_reset
    ref_id: Mapped[str] = mapped_column(sa.String(36))  # the invitation or password reset
    recipient: Mapped[str] = mapped_column(sa.String(254))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    gave_up_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Setting(Base):
    """Admin-editable settings (smtp, password_policy) as JSON; secrets inside are encrypted."""

    __tablename__ = "identity_settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(sa.String(36))


class UidCounter(Base):
    """Next Unix uidNumber; a counter, not max()+1, so a number is never handed out twice."""

    __tablename__ = "identity_uid_counter"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    next_uid: Mapped[int] = mapped_column(sa.Integer)
