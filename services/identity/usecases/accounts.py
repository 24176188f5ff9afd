"""Accounts and their lifecycle: registration, the first admin, administrators' create / change /
remove, and the user's own names. Rules in domain.py; rbac's part of a create or change in spanning.py.

Use cases take the unit of work first (services/identity/uow.py); service.py calls them."""
from __future__ import annotations

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID

ADMIN_USERS = "admin.users"  # the user routes' permission, asked here whatever the gateway asked
from kernel.authority import require_authority, require_permission
from kernel.envelope import SYSTEM, Actor, utc_now, utc_now_iso
from kernel.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    refuse_stale_edit,
)
from services.identity import domain, events, ratelimit, storage, storage_tenants, views
from services.identity import invitations as invitation_rules
from services.identity.models import Invitation, User
from services.identity.usecases import invites, platform_settings, signin, spanning


def register(uow, actor, username, first_name, last_name, email=None, password=None, invitation_token=None):
    """Self-registration: a pending user that an administrator approves, while the registration
    settings allow it (self_registration on, the email in an allowed domain); through an
    invitation link (invitation_token): the invited account, active at once, whatever they say."""
    if invitation_token:
        return invites.register_invited(uow, actor, invitation_token, username, first_name, last_name, email, password)
    with uow:
        if not storage.registration_settings(uow.session)["self_registration"]:
            raise Forbidden("Self-registration is closed: ask an administrator for an invitation.",
                            code="registration_closed")
        platform_settings.enforce_limits(uow, Actor.from_dict(actor), [("registrations_per_ip", actor.get("ip"), 1)])
        uow.commit()  # every attempt counts, valid or not
    with uow:
        policy = storage.password_policy(uow.session)
        allowed_domains = storage.registration_settings(uow.session)["allowed_email_domains"]
    problems = domain.registration_problems(username, first_name, last_name, email, password, policy)
    if "email" not in problems and not domain.email_domain_allowed(domain.normalize_email(email)[0], allowed_domains):
        # The same answer whoever holds an account: it names the rule, not an account.
        problems["email"] = f"must be an address of {domain.allowed_domains_text(allowed_domains)}"
    if problems:
        raise ValidationFailed("The registration has invalid fields.", details=problems)
    email = domain.normalize_email(email)[0]
    password_hash = tpool.execute(domain.hash_password, password)
    with uow:
        refuse_taken(uow, username, email)
        try:
            user = new_user(uow.session, username, first_name, last_name, email,
                            domain.PENDING, password_hash, tenant_id=DEFAULT_TENANT_ID)
        except IntegrityError:  # a concurrent registration took the name first
            raise Conflict("That username or email is already in use.", code="user_exists") from None
        uow.emit(*events.in_tenants((DEFAULT_TENANT_ID,), events.user_registered(user, Actor.from_dict(actor))))
        uow.commit()
    return views.public_user(user)


def bootstrap_admin(uow, username, password=None):
    """Create the first super admin once; later calls change nothing.

    Returns the generated password when none was given: the only time it is shown.
    """
    generated = None if password else domain.generate_password()
    password = password or generated
    problems = {}
    if problem := domain.username_problem(username):
        problems["username"] = problem
    with uow:
        policy = storage.password_policy(uow.session)
    if found := domain.password_problems(password, policy, username):
        problems["password"] = "; ".join(found)
    if problems:
        raise ValidationFailed("The first administrator's settings are invalid.", details=problems)
    with uow:
        existing = storage.first_admin(uow.session)
        if existing:
            return {"created": False, "user": views.public_user(existing), "password": None}
    password_hash = tpool.execute(domain.hash_password, password)
    with uow:
        if existing := storage.first_admin(uow.session):  # another instance won the race
            return {"created": False, "user": views.public_user(existing), "password": None}
        if taken := storage.conflicts(uow.session, username, f"{username}@localhost"):
            raise Conflict("That username is already in use.", code="user_exists", details=taken)
        user = new_user(uow.session, username, "Super", "Admin", f"{username}@localhost",
                        domain.ACTIVE, password_hash, is_first_admin=True, tenant_id=DEFAULT_TENANT_ID)
        uow.emit(*events.in_tenants((DEFAULT_TENANT_ID,), events.user_created(user, SYSTEM, first_admin=True)))
        uow.commit()
    return {"created": True, "user": views.public_user(user), "password": generated}


def require_authority_over(uow, actor, user_id, also=()) -> None:
    """The authority rule (docs/security.md), asked of rbac before anything changes: the actor's
    rights cover the user's in every tenant the user belongs to (this read model's, `also`, and
    those of the user's roles). NotFound first for no such user."""
    with uow:
        load_user(uow, user_id)
        tenants = {*storage.tenants_of(uow.session, user_id), *also}
    require_authority(uow.rbac, actor, user_id, tenants)


def create_user(uow, actor, username, email, first_name, last_name, company="", tenant_id=DEFAULT_TENANT_ID,
                super_admin=False, role=None, groups=None, with_access=False):
    """An active account made by an administrator in their active tenant, with a generated password
    shown once (returned here, never stored in clear, never in an event) that must be changed.
    super_admin (the operator CLI only; the gateway never passes it): rbac makes the user a super admin.

    role, groups: rbac's part of the same write (docs/architecture.md, "Writes that span services"):
    asked of rbac before anything changes (check_assignable, unknown_groups), applied after the account
    commits (assign_role, add_to_groups). Compensation: when rbac refuses or fails then, the account
    is removed again (user_removed: tenancy, rbac, audit and sync forget it) and rbac's error is raised.
    with_access: the answer's user carries rbac's role in the tenant and groups (as the gateway shows it)."""
    require_permission(uow.rbac, actor, ADMIN_USERS, tenant_id, tenant_required=True)
    if role is not None or groups:
        spanning.check_access(uow, Actor.from_dict(actor), role, groups, tenant_id, scope={})
    if super_admin and not Actor.from_dict(actor).is_operator:
        raise Forbidden("Only the operator CLI creates super admins this way.", code="super_admin_only",
                        details={"super_admin": "the operator CLI only"})
    fields = {"username": username, "email": email, "first_name": first_name, "last_name": last_name,
              "company": company or ""}
    if problems := domain.profile_problems(fields):
        raise ValidationFailed("The user has invalid fields.", details=problems)
    fields = domain.clean_profile(fields)
    with uow:  # fail fast, before paying for a hash
        refuse_taken(uow, fields["username"], fields["email"])
    password = domain.generate_password()
    password_hash = tpool.execute(domain.hash_password, password)
    with uow:
        refuse_taken(uow, fields["username"], fields["email"])
        try:
            user = new_user(uow.session, fields["username"], fields["first_name"], fields["last_name"],
                            fields["email"], domain.ACTIVE, password_hash, company=fields["company"],
                            tenant_id=tenant_id)
        except IntegrityError:  # a concurrent request took the name first
            raise Conflict("That username or email is already in use.", code="user_exists") from None
        user.must_change_password = True
        # Tenancy makes the user a member of the event's first tenant: the creator's active one.
        uow.emit(*events.in_tenants((tenant_id,), events.user_created(user, Actor.from_dict(actor),
                                                                      super_admin=bool(super_admin))))
        uow.commit()
        answer = views.admin_user(uow.session, user, None)
    try:
        access = spanning.complete_access(uow, actor, answer, role, groups, tenant_id, with_access)
    except Exception:
        spanning.undo_creation(uow, Actor.from_dict(actor), user.id)
        raise
    return {"user": spanning.with_access(answer, access, tenant_id), "password": password}


def update_user(uow, actor, user_id, changes, expected_version=None, role=None, tenant_id=DEFAULT_TENANT_ID,
                groups=None, with_access=False, in_tenant=False):
    """Partial update of profile fields and status, and the user's role in the tenant and groups to join.

    role, groups: rbac's part of the same write (docs/architecture.md, "Writes that span services"):
    asked of rbac before anything changes (check_assignable, unknown_groups; the first admin's role is
    refused here), applied after identity's change commits (assign_role, add_to_groups). Compensation:
    when rbac refuses or fails then, identity's change is undone in a new transaction (the fields and
    the status take their previous values again, with user_updated / user_status_changed events so
    audit and sync follow; sessions a suspension ended stay ended), a role already replaced gets its
    previous one back, and rbac's error is raised.
    in_tenant: NotFound unless the user is a member of `tenant_id` (identity's read model; the gateway's
    404 for a user outside the active tenant, asked first). with_access: the answer carries rbac's role
    in the tenant and groups."""
    actor = Actor.from_dict(actor)
    if in_tenant:
        spanning.require_member(uow, user_id, tenant_id)
    if role is not None or groups:
        spanning.check_access(uow, actor, role, groups, tenant_id)
    changes = dict(changes)
    status = changes.pop("status", None)
    if unknown := set(changes) - set(domain.PROFILE_FIELDS):
        raise ValidationFailed("Unknown fields.", details={field: "cannot be changed here" for field in unknown})
    if "email" in changes and unchanged_email(uow, user_id, changes["email"]):
        del changes["email"]  # sent back as stored: not checked against today's rule (it may predate it)
    if problems := domain.profile_problems(changes):
        raise ValidationFailed("The user has invalid fields.", details=problems)
    if status is not None and status not in domain.STATUSES:
        raise ValidationFailed("Unknown status.", details={"status": f"must be one of {', '.join(domain.STATUSES)}"})
    changes = domain.clean_profile(changes)
    require_authority_over(uow, actor, user_id, also=(tenant_id,))
    with uow:
        user = load_user(uow, user_id, for_update=True)
        refuse_stale_edit("user", user.version, expected_version)
        current_role = storage.role_of(uow.session, user_id, tenant_id)
        if role is not None and role != current_role:
            refuse_protected(domain.CHANGE_ROLE, actor, user)
        before = user.status
        if status is not None and status != before:
            if problem := domain.status_change_problem(before, status):
                raise Conflict(f"The status cannot change from {before} to {status}.",
                               code="invalid_status_change", details={"from": before, "to": status,
                                                                      "status": problem})
            if status == domain.SUSPENDED:
                refuse_protected(domain.SUSPEND, actor, user)
                # for good: reactivation does not bring the sessions or their refresh tokens back
                signin.revoke_all(uow, user, actor, "suspended")
        changed = {field: {"from": getattr(user, field), "to": value}
                   for field, value in changes.items() if getattr(user, field) != value}
        refuse_taken(uow, changed.get("username", {}).get("to"), changed.get("email", {}).get("to"),
                     excluding=user.id)
        wrote = bool(changed) or (status is not None and status != before)
        if wrote:
            answer = apply_update(uow, actor, user, changed, before, status, current_role)
        else:
            answer = views.admin_user(uow.session, user, current_role)
    try:
        access = spanning.complete_access(uow, actor.__dict__, answer, role, groups, tenant_id, with_access,
                                          previous_role=current_role)
    except Exception:
        if wrote:
            spanning.undo_update(uow, actor, user.id, changed, before, status, answer["version"])
        raise
    return spanning.with_access(answer, access, tenant_id)


def unchanged_email(uow, user_id, email) -> bool:
    """Whether `email` is the user's stored address (trimmed, in any case): a form that sends the
    whole profile back does not change it, even when the rule for new addresses would refuse it."""
    if not isinstance(email, str):
        return False
    with uow:
        stored = uow.session.scalar(sa.select(User.email).where(User.id == user_id))
    return stored is not None and email.strip().lower() == stored.lower()


def apply_update(uow, actor, user, changed, before, status, current_role) -> dict:
    """update_user's change of the account, committed; the user as the answer shows it."""
    for field, change in changed.items():
        setattr(user, field, change["to"])
    if status is not None:
        user.status = status
    user.refresh_search_text()
    user.version += 1
    user.updated_at = utc_now()
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent request took the name first
        raise Conflict("That username or email is already in use.", code="user_exists") from None
    if changed:
        ratelimit.emit_about(uow, user, events.user_updated(user, actor, changed))
    if user.status != before:
        ratelimit.emit_about(uow, user, events.user_status_changed(user, actor, before, user.status))
    uow.commit()
    return views.admin_user(uow.session, user, current_role)


def update_own_names(uow, actor, session_id, names):
    """The signed-in user's own first and last name; everything else about an account is its
    administrators' (update_user, under the authority rule)."""
    actor = Actor.from_dict(actor)
    names = {field: value for field, value in dict(names).items() if value is not None}
    if unknown := set(names) - set(domain.OWN_PROFILE_FIELDS):
        raise ValidationFailed("Unknown fields.", details={field: "cannot be changed here" for field in unknown})
    if problems := domain.profile_problems(names):
        raise ValidationFailed("The names are invalid.", details=problems)
    names = domain.clean_profile(names)
    with uow:
        user = signin.signed_in_user(uow, session_id, utc_now())
        changed = {field: {"from": getattr(user, field), "to": value}
                   for field, value in names.items() if getattr(user, field) != value}
        if changed:
            for field, change in changed.items():
                setattr(user, field, change["to"])
            user.refresh_search_text()
            user.version += 1
            user.updated_at = utc_now()
            ratelimit.emit_about(uow, user, events.user_updated(user, actor, changed))
            uow.commit()
        return views.admin_user(uow.session, user, None)


def remove_user(uow, actor, user_id, tenant_id=None):
    """Deletes the account (its sessions go with it); audit keeps what it did, by name.
    tenant_id: NotFound unless the user is a member of it (the gateway's 404 outside the active tenant)."""
    actor = Actor.from_dict(actor)
    if tenant_id is not None:
        spanning.require_member(uow, user_id, tenant_id)
    require_authority_over(uow, actor, user_id)
    with uow:
        user = load_user(uow, user_id, for_update=True)
        refuse_protected(domain.DELETE, actor, user)
        if user.status == domain.INVITED:
            pending = uow.session.scalars(sa.select(Invitation).where(
                Invitation.user_id == user.id, Invitation.status == invitation_rules.PENDING))
            for invitation in pending:
                invitation.status = invitation_rules.REVOKED
                uow.emit(events.invitation_revoked(invitation, actor))
        ratelimit.emit_about(uow, user, events.user_removed(user, actor))
        uow.session.execute(sa.delete(User).where(User.id == user.id))
        uow.commit()


def load_user(uow, user_id, for_update=False) -> User:
    user = uow.session.get(User, user_id, with_for_update=for_update)
    if not user:
        raise NotFound("No such user.", details={"user_id": user_id})
    return user


def refuse_taken(uow, username, email, excluding=None):
    if taken := storage.conflicts(uow.session, username, email, excluding=excluding):
        raise Conflict("That username or email is already in use.", code="user_exists", details=taken)


def refuse_protected(action, actor, user):
    problem = domain.protection_problem(action, actor.user_id, user.id, user.is_first_admin)
    if problem == domain.OWN_ACCOUNT:
        raise Forbidden(f"You cannot {action} your own account.", code=problem, details={"user_id": user.id})
    if problem == domain.FIRST_ADMIN_PROTECTED:
        what = "role changed" if action == domain.CHANGE_ROLE else f"{action}d"
        raise Forbidden(f"The first administrator cannot be {what}.", code=problem,
                        details={"user_id": user.id})


def new_user(session, username, first_name, last_name, email, status, password_hash, is_first_admin=False,
             company="", tenant_id=DEFAULT_TENANT_ID):
    """The account and, at once, its membership of `tenant_id` (tenancy's event confirms it later)."""
    user = User(username=username, first_name=first_name.strip(), last_name=last_name.strip(),
                email=email, company=company, status=status, password_hash=password_hash,
                uid_number=storage.allocate_uid_number(session), is_first_admin=is_first_admin,
                created_at=utc_now())
    user.refresh_search_text()
    session.add(user)
    session.flush()
    storage_tenants.join_tenant(session, user.id, tenant_id, utc_now_iso())
    return user
