"""IDN email domains in ASCII form: addresses stored before normalize_email kept them so

normalize_email (contracts/identity.py) now stores an internationalized domain in its ASCII
(IDNA) form, as the LDAP directory's `mail` (IA5) can hold it: `ada@exämple.com` is
`ada@xn--exmple-cua.com`. Addresses stored before, in Unicode form, take that form here:
users' (with their search text; the version goes up, as for any change of the profile),
invitations' and pending reset requests' (password resets store no address). An address
whose local part is not ASCII stays as it is (the rule refuses it; nothing can hold it in
ASCII), and so does a user's whose converted address another account already holds (logged:
an administrator decides). Plain UPDATEs, the same on SQLite and PostgreSQL: no table is
recreated (no batch mode), so the FTS5 search triggers on identity_users stay and follow.
The downgrade keeps the ASCII forms (both are the same address).

Revision ID: e4b7c2a9d1f3
Revises: d7a1e0c4b9f2
Create Date: 2026-12-07 21:15:00.000000
"""
import logging

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = 'e4b7c2a9d1f3'
down_revision = 'd7a1e0c4b9f2'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def converted_email(stored):
    """The ASCII form of an address whose domain is not ASCII, or None when it stays as it is
    (its domain is ASCII already, its local part is not ASCII, or it is no valid address).
    Frozen here as normalize_email was when this migration was written."""
    if not isinstance(stored, str) or "@" not in stored:
        return None
    local, _, domain = stored.rpartition("@")
    if domain.isascii() or not local.isascii():
        return None
    try:
        valid = validate_email(stored, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    converted = (valid.ascii_email or valid.normalized).lower()
    return converted if converted != stored and converted.isascii() else None


def upgrade():
    conn = op.get_bind()
    users = sa.table('identity_users', sa.column('id', sa.String), sa.column('email', sa.String),
                     sa.column('search_text', sa.String), sa.column('version', sa.Integer))
    taken = set(conn.execute(sa.select(users.c.email)).scalars())
    for user_id, email, search_text, version in conn.execute(
            sa.select(users.c.id, users.c.email, users.c.search_text, users.c.version)).all():
        new = converted_email(email)
        if new is None:
            continue
        if new in taken:
            log.warning("identity: user %s keeps the email %r: its ASCII form %r is another account's",
                        user_id, email, new)
            continue
        taken.add(new)
        conn.execute(users.update().where(users.c.id == user_id).values(
            email=new, search_text=(search_text or "").replace(email.lower(), new), version=(version or 0) + 1))
    for name in ('identity_invitations', 'identity_reset_requests'):
        table = sa.table(name, sa.column('id', sa.String), sa.column('email', sa.String))
        for row_id, email in conn.execute(sa.select(table.c.id, table.c.email)).all():
            if (new := converted_email(email)) is not None:
                conn.execute(table.update().where(table.c.id == row_id).values(email=new))


def downgrade():
    pass  # the ASCII form is the same address; nothing to undo
