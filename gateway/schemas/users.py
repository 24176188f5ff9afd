"""Bodies of /api/v1/users (user administration)."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length, OneOf

from contracts import identity as identity_domain
from contracts import rbac as rbac_domain
from gateway.schemas import EMAIL, USERNAME, FullMatch, JsonBoolean, PageQuery, UserOut, profile_rule, role_reference

# The API's contract; identity checks the same rules again for any other caller.
SETTABLE_STATUSES = [identity_domain.PENDING, identity_domain.ACTIVE, identity_domain.SUSPENDED]  # not invited


class _AccessIn(Schema):
    role = role_reference(metadata={"description": "role to assign in the caller's tenant"})
    groups = List(String(validate=FullMatch(rbac_domain.GROUP_CN)), validate=Length(max=50),
                  metadata={"description": "LDAP groups (cn) of the caller's tenant or platform-wide to add the "
                                            "user to; never removes any"})


class UserCreateIn(_AccessIn):
    username = String(required=True, validate=[Length(1, 32), profile_rule("username")], metadata=USERNAME)
    email = String(required=True, validate=[Length(1, 254), profile_rule("email")], metadata=EMAIL)
    first_name = String(required=True, validate=[Length(1, 64), profile_rule("first_name")])
    last_name = String(required=True, validate=[Length(1, 64), profile_rule("last_name")])
    company = String(validate=[Length(0, 128), profile_rule("company")])


class UserPatchIn(_AccessIn):
    username = String(validate=[Length(1, 32), profile_rule("username")], metadata=USERNAME)
    email = String(validate=[Length(1, 254), profile_rule("email")], metadata=EMAIL)
    first_name = String(validate=[Length(1, 64), profile_rule("first_name")])
    last_name = String(validate=[Length(1, 64), profile_rule("last_name")])
    company = String(validate=[Length(0, 128), profile_rule("company")])
    status = String(validate=OneOf(SETTABLE_STATUSES),
                    metadata={"description": "pending→active approves; active↔suspended; pending→suspended refuses"})


class UserListQuery(PageQuery):
    q = String(validate=Length(1, 100), metadata={"description": "part of the name, username or email"})
    status = String(validate=OneOf(identity_domain.STATUSES))
    role = role_reference()
    sort = String(load_default="created_at", validate=OneOf(identity_domain.USER_SORTS))
    order = String(load_default="desc", validate=OneOf(identity_domain.ORDERS))
    tenant = String(validate=Length(1, 36), metadata={
        "description": "super admins only: `*` lists every user of every tenant, a tenant id that tenant's "
                       "users; both with each user's tenants and role in each (the cross-tenant view)"})


class UserDetailOut(UserOut):
    groups = List(String(), metadata={"description": "LDAP groups (cn) the user belongs to, seen from the active "
                                                     "tenant (its groups and the platform-wide ones)"})


class UserPageOut(Schema):
    items = List(Nested(UserOut))
    next_cursor = String(allow_none=True)
    total = Integer(metadata={"description": "Matches, counted exactly up to 1,000 (see total_exact)"})
    total_exact = JsonBoolean(load_default=True, dump_default=True,
                              metadata={"description": "false: more than 1,000 match and total says 1,000"})


class NewUserOut(UserDetailOut):
    """The user just created (its own class: apispec warns when a response schema is also nested)."""


class CreatedUserOut(Schema):
    user = Nested(NewUserOut)
    password = String(metadata={"description": "the generated password, shown this once only"})
