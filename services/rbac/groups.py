"""LDAP groups and their members.

A group belongs to a tenant, or is platform-wide (tenant_id NULL: the built-in ones and
those a super admin creates so). Every call names the caller's active tenant: it sees that
tenant's groups and the platform-wide ones; another tenant's group answers exactly like an
unknown id. Platform-wide groups change (fields and members) by super admins only, and
their members are shown as far as they belong to the tenant.

Who belongs to a tenant is asked over RPC (`memberships`, access.Memberships), never inside a
unit of work (SQLite: a green thread must not yield holding a transaction): before it, or after it
with what it read. Use cases take a unit of work not yet entered and enter it themselves.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kernel import DEFAULT_TENANT_ID, paging
from kernel.envelope import utc_now
from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.rbac import access, assignments, domain, events, storage, views
from services.rbac.storage import Group, GroupMember

MAX_PAGE = 200
GROUP_FIELDS = ("cn", "gid_number", "description", "is_admin")  # what update_group may change


def list_groups(uow, memberships, limit, cursor, tenant_id) -> dict:
    with uow:
        groups = storage.visible_groups(uow.session, tenant_id)
        items = [views.group_out(g) for g in groups]
        counted = member_rows(uow.session, groups)
    counts = counts_seen(memberships, counted, tenant_id)
    items = [{**item, "member_count": counts.get(item["id"], 0)} for item in items]
    return paging.page(items, _limit(limit), cursor)


def get_group(uow, memberships, group_id, tenant_id) -> dict:
    with uow:
        group = visible_group(uow.session, group_id, tenant_id)
        out, counted = views.group_out(group), member_rows(uow.session, [group])
    return {**out, "member_count": counts_seen(memberships, counted, tenant_id).get(group_id, 0)}


def create_group(uow, actor, cn, gid_number, description, is_admin, tenant_id, platform, gid_range) -> dict:
    """A group of the tenant, or (platform, super admins only) a platform-wide one. cn and GID
    are unique across the directory: one taken by any group is refused without naming it.
    gid_range: the configured (lowest, highest) GID."""
    problems = domain.group_problems(cn, description)
    if gid_number is not None and (problem := domain.gid_problem(gid_number, *gid_range)):
        problems["gid_number"] = problem
    if problems:
        raise ValidationFailed("The group has invalid fields.", details=problems)
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        if platform:
            access.require_super_admin(uow.session, actor, "Only a super admin can create a platform-wide group.")
        if is_admin:
            access.require_super_admin(uow.session, actor, "Only a super admin can create an administrator group.")
        refuse_taken(uow.session, cn=cn, gid_number=gid_number, tenant_id=tenant_id)
        if gid_number is None:
            gid_number = domain.free_gid(uow.session.scalars(sa.select(Group.gid_number)), *gid_range)
            if gid_number is None:
                raise Conflict("Every GID of the configured range is taken.", code="gid_range_exhausted")
        group = Group(id=str(uuid.uuid4()), tenant_id=None if platform else tenant_id, cn=cn,
                      gid_number=gid_number, description=description or "", is_admin=bool(is_admin),
                      builtin=False, created_at=utc_now())
        uow.session.add(group)
        uow.emit(events.group_created(group, actor))
        _commit_unique(uow)
    return views.group_out(group, 0)


def next_gid(uow, actor, tenant_id, gid_range) -> dict:
    """The GID a new group would get without one: the lowest free one of the configured range
    (skipping every tenant's, as creation does), or None when the range is full. The actor needs
    admin.rbac in the tenant, as to create a group (it tells which GIDs are taken)."""
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        gid = domain.free_gid(uow.session.scalars(sa.select(Group.gid_number)), *gid_range)
    lowest, highest = gid_range
    return {"gid_number": gid, "gid_min": lowest, "gid_max": min(highest, domain.FIRST_UID_NUMBER - 1)}


def update_group(uow, memberships, actor, group_id, changes, tenant_id, gid_range) -> dict:
    """changes: any of cn, gid_number, description, is_admin. Built-in groups keep cn, GID and flag."""
    problems = domain.group_problems(changes.get("cn"), changes.get("description"))
    if changes.get("gid_number") is not None and (problem := domain.gid_problem(changes["gid_number"], *gid_range)):
        problems["gid_number"] = problem
    if problems:
        raise ValidationFailed("The group has invalid fields.", details=problems)
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        group = visible_group(uow.session, group_id, tenant_id)
        check_platform_group(uow.session, actor, group)
        diff = {field: {"from": getattr(group, field), "to": value} for field, value in changes.items()
                if field in GROUP_FIELDS and value is not None and value != getattr(group, field)}
        if group.builtin and set(diff) - {"description"}:
            raise Forbidden("A built-in group keeps its cn, GID and administrator flag.",
                            code="builtin_group_protected", details={f: "cannot change" for f in diff})
        if group.is_admin or diff.get("is_admin"):
            access.require_super_admin(uow.session, actor, "Only a super admin can change an administrator group.")
        refuse_taken(uow.session, cn=diff.get("cn", {}).get("to"), gid_number=diff.get("gid_number", {}).get("to"),
                     tenant_id=tenant_id)
        if diff:
            for field, change in diff.items():
                setattr(group, field, change["to"])
            uow.emit(events.group_updated(group, actor, diff))
            _commit_unique(uow)
        out, counted = views.group_out(group), member_rows(uow.session, [group])
    return {**out, "member_count": counts_seen(memberships, counted, tenant_id).get(group_id, 0)}


def delete_group(uow, actor, group_id, tenant_id) -> None:
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        group = visible_group(uow.session, group_id, tenant_id)
        if group.builtin:
            raise Forbidden(f"The built-in group {group.cn!r} cannot be deleted.", code="builtin_group_protected")
        check_platform_group(uow.session, actor, group)
        if group.is_admin:
            access.require_super_admin(uow.session, actor, "Only a super admin can delete an administrator group.")
        members = storage.member_counts(uow.session).get(group.id, 0)
        uow.session.execute(sa.delete(GroupMember).where(GroupMember.group_id == group.id))
        uow.session.delete(group)
        uow.emit(events.group_deleted(group, actor, members))
        uow.commit()


def list_members(uow, memberships, group_id, limit, cursor, tenant_id) -> dict:
    limit = _limit(limit)
    offset = paging.offset_of(cursor)
    with uow:
        group = visible_group(uow.session, group_id, tenant_id)
        platform = group.tenant_id is None
        where = GroupMember.group_id == group.id
        ordered = sa.select(GroupMember).where(where).order_by(GroupMember.username, GroupMember.user_id)
        if platform:  # platform-wide: the members of the tenant only, sorted out below
            items = [views.member_out(m) for m in uow.session.scalars(ordered)]
        else:
            total = uow.session.scalar(sa.select(sa.func.count()).select_from(GroupMember).where(where))
            items = [views.member_out(m) for m in uow.session.scalars(ordered.offset(offset).limit(limit))]
    if platform:
        shown = memberships.tenant_members(tenant_id, [item["user_id"] for item in items])
        items = [item for item in items if item["user_id"] in shown]
        total, items = len(items), items[offset:offset + limit]
    return paging.page_answer(items, offset, total)


def get_member(uow, memberships, group_id, user_id, tenant_id) -> dict:
    seen = memberships.in_tenant(user_id, tenant_id)
    with uow:
        group = visible_group(uow.session, group_id, tenant_id)
        return views.member_out(member_seen(uow.session, group, user_id, seen))


def add_member(uow, memberships, actor, group_id, user_id, username, tenant_id) -> tuple[dict, bool]:
    """Returns (membership, added): adding an existing member changes nothing. The user must be a
    member of the tenant (else 404 as for an unknown user)."""
    seen = memberships.in_tenant(user_id, tenant_id)
    # Unknown (or another tenant's) group and user first, then authority: no RPC inside a unit of work.
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        check_membership_change(uow.session, actor, visible_group(uow.session, group_id, tenant_id))
        if not seen:
            raise no_such_user(user_id)
    access.require_authority_over(uow, memberships, actor, user_id, (tenant_id,))
    with uow:
        group = visible_group(uow.session, group_id, tenant_id)
        check_membership_change(uow.session, actor, group)
        added = add(uow, group, user_id, username, actor)
        uow.commit()
        return views.member_out(uow.session.get(GroupMember, (group.id, user_id))), added


def remove_member(uow, memberships, actor, group_id, user_id, username, tenant_id) -> None:
    seen = memberships.in_tenant(user_id, tenant_id)
    with uow:  # unknown group or member first, then authority (as add_member)
        access.require_rbac_admin(uow.session, actor, tenant_id)
        group = visible_group(uow.session, group_id, tenant_id)
        member_seen(uow.session, group, user_id, seen)
        check_membership_change(uow.session, actor, group)
    access.require_authority_over(uow, memberships, actor, user_id, (tenant_id,))
    with uow:
        group = visible_group(uow.session, group_id, tenant_id)
        member = member_seen(uow.session, group, user_id, seen)
        check_membership_change(uow.session, actor, group)
        uow.session.delete(member)
        uow.emit(events.member_removed(group, user_id, username or member.username, actor))
        uow.commit()


def user_groups(uow, user_id, tenant_id=None) -> list[dict]:
    """The user's groups: every one (tenant_id None), or those seen from the tenant."""
    with uow:
        return [views.group_out(g) for g in storage.memberships_of(uow.session, user_id, tenant_id)]


def add_to_groups(uow, memberships, actor, user_id, groups, username, tenant_id) -> dict:
    """Adds the user to each group named by cn as seen from the tenant (its own and the
    platform-wide ones; already a member: unchanged). Another tenant's cn is unknown here.
    Answers the user's access as seen from the tenant."""
    if not groups:
        return assignments.user_access(uow, user_id, tenant_id)
    if not memberships.in_tenant(user_id, tenant_id):  # another tenant's user is unknown here, whatever the groups
        raise no_such_user(user_id)
    access.require_authority_over(uow, memberships, actor, user_id, (tenant_id,))
    with uow:
        found = {cn: storage.visible_group_by_cn(uow.session, cn, tenant_id) for cn in groups}
        if missing := [cn for cn, group in found.items() if group is None]:
            raise ValidationFailed("Unknown groups.", code="unknown_group",
                                   details={cn: "no such group" for cn in missing})
        joining = [group for group in found.values() if uow.session.get(GroupMember, (group.id, user_id)) is None]
        for group in joining:
            check_membership_change(uow.session, actor, group)
        for group in joining:
            add(uow, group, user_id, username, actor)
        uow.commit()
    return assignments.user_access(uow, user_id, tenant_id)


def unknown_groups(uow, cns, tenant_id) -> list[str]:
    """The names among `cns` that are no group seen from the tenant: checked before a user is
    created or approved (another tenant's group is unknown here)."""
    with uow:
        return [cn for cn in cns if storage.visible_group_by_cn(uow.session, cn, tenant_id) is None]


def directory_groups(uow, user_ids=None, tenant_id=None) -> list[dict]:
    """Groups with their members' ids (only those among `user_ids` when given): every group
    (LDAP's posixGroups; tenant_id None) or those a tenant's Proxmox VE mirrors (its own and
    the platform-wide ones; pass the tenant's members as user_ids). `tenant_id` of each group
    is None for a platform-wide one."""
    with uow:
        return [views.directory_group_out(group, members)
                for group, members in storage.groups_with_members(uow.session, user_ids, tenant_id)]


# --- helpers (inside a unit of work, unless they say otherwise) ----------------------------------

def check_membership_change(session, actor, group):
    """Membership of an administrator group is full administration: only super admins hand it out.
    A platform-wide group's members change by super admins only."""
    if group.is_admin:
        access.require_super_admin(session, actor, f"Only a super admin can change who is in {group.cn!r}.")
    check_platform_group(session, actor, group)


def check_platform_group(session, actor, group):
    if group.tenant_id is None and not access.grant(session, actor.user_id, DEFAULT_TENANT_ID).super_admin:
        raise Forbidden(f"The group {group.cn!r} is platform-wide: only a super admin can change it or its "
                        "members.", code="platform_group_protected")


def member_rows(session, groups) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """What member counts are made of: each group's count, and the (group, user) rows of the
    platform-wide ones among `groups` (counted as seen from a tenant by counts_seen)."""
    counts = storage.member_counts(session)
    platform = [group.id for group in groups if group.tenant_id is None and counts.get(group.id)]
    rows = [tuple(row) for row in session.execute(sa.select(GroupMember.group_id, GroupMember.user_id)
                                                  .where(GroupMember.group_id.in_(platform)))] if platform else []
    return counts, rows


def counts_seen(memberships, counted, tenant_id) -> dict[str, int]:
    """Members of each group as seen from the tenant: a platform-wide group counts the tenant's only
    (RPC: outside any unit of work)."""
    counts, rows = counted
    counts = dict(counts)
    if rows:
        shown = memberships.tenant_members(tenant_id, [user_id for _, user_id in rows])
        for group_id in {group_id for group_id, _ in rows}:
            counts[group_id] = sum(1 for gid, user_id in rows if gid == group_id and user_id in shown)
    return counts


def refuse_taken(session, cn=None, gid_number=None, tenant_id=None):
    """cn and GID are unique across the directory (every tenant's groups share one LDAP tree). A
    taken GID names its holder when the tenant sees that group (its own or a platform-wide one:
    the list shows it anyway); another tenant's holder is only "taken", naming nothing about it.
    A taken cn names itself, whoever holds it."""
    if cn is not None and storage.group_by_cn(session, cn):
        raise Conflict(f"The group name {cn!r} is taken in the directory.", code="group_exists",
                       details={"cn": "already in use"})
    if gid_number is not None and (holder := storage.group_by_gid(session, gid_number)) is not None:
        if holder.tenant_id in (None, tenant_id):
            raise Conflict(f"The GID {gid_number} is taken by the group {holder.cn!r}.", code="gid_taken",
                           details={"gid_number": f"already in use by the group {holder.cn!r}"})
        raise Conflict(f"The GID {gid_number} is taken in the directory.", code="gid_taken",
                       details={"gid_number": "already in use"})


def member_seen(session, group, user_id, in_tenant: bool) -> GroupMember:
    """A member as seen from the tenant (in_tenant: the user belongs to it): of a platform-wide
    group, only the tenant's members."""
    member = session.get(GroupMember, (group.id, user_id))
    if member is None or (group.tenant_id is None and not in_tenant):
        raise NotFound("The user is not a member of that group.", code="not_a_member")
    return member


def visible_group(session, group_id, tenant_id) -> Group:
    """The group if the tenant sees it (its own or platform-wide); another tenant's is unknown here."""
    group = session.get(Group, group_id)
    if group is None or group.tenant_id not in (None, tenant_id):
        raise NotFound("No such group.", code="group_not_found")
    return group


def add(uow, group, user_id, username, actor) -> bool:
    """Adds the member (already one: nothing happens); whether it was added."""
    if group is None:
        raise NotFound("No such group.", code="group_not_found")
    if uow.session.get(GroupMember, (group.id, user_id)) is None:
        uow.session.add(GroupMember(group_id=group.id, user_id=user_id, username=username, added_at=utc_now()))
        uow.emit(events.member_added(group, user_id, username, actor))
        return True
    return False


def no_such_user(user_id) -> NotFound:
    """A group of the tenant takes only its members, as do platform-wide ones seen from it: anyone
    else is answered as an unknown user (no word on whether the id exists elsewhere)."""
    return NotFound("No such user.", details={"user_id": user_id})


def _commit_unique(uow):
    """Commit; a concurrent writer that took the same cn or GID first makes this a conflict."""
    try:
        uow.commit()
    except IntegrityError:
        raise Conflict("The group's cn or GID was taken meanwhile; try again.", code="group_exists") from None


def _limit(limit) -> int:
    return max(1, min(int(limit or 50), MAX_PAGE))
