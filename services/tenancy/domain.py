"""Tenancy's rules, without a database or a broker: names, connection settings, memberships.
The rules others share (names, URLs, fingerprints, auth methods) are in contracts/tenancy.py.

Every *_problems function answers {field: what is wrong} (empty when all is well), the
`details` of a 422.
"""
from __future__ import annotations

from contracts.tenancy import (  # noqa: F401 - the shared rules, re-exported for tenancy's code
    CA_PEM_MAX, DEFAULT_PVE_PORT, DEFAULT_REALM, DESCRIPTION_MAX, FINGERPRINT, HOSTNAME, LABEL, LOGIN_FIELD, NAME,
    NAME_MAX, PASSWORD, REALM, SECRET_FIELD, SECRET_MAX, TOKEN, TOKEN_ID, USERID, auth_method, ca_pem_problem,
    fingerprint_problem, host_and_port, membership_change_refusal, name_key, name_problem, normalize_fingerprint,
    normalize_url)
from kernel import DEFAULT_TENANT_ID


# --- tenants -------------------------------------------------------------------------


def tenant_problems(fields: dict) -> dict:
    """Problems of a tenant's fields; only those present are checked (a PATCH sends some)."""
    problems = {}
    if "name" in fields and (problem := name_problem(fields["name"])):
        problems["name"] = problem
    description = fields.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_MAX):
        problems["description"] = f"must be text of at most {DESCRIPTION_MAX} characters"
    return problems


def disable_refusal(tenant_count: int) -> str | None:
    """Multi-tenancy can be switched off only while `default` is the one tenant."""
    return "tenants_exist" if tenant_count > 1 else None


def tenant_delete_refusal(tenant_id: str, connection_count: int) -> str | None:
    if tenant_id == DEFAULT_TENANT_ID:
        return "default_tenant_protected"
    if connection_count:
        return "tenant_has_connections"
    return None


# --- connections ------------------------------------------------------------------------


def tls_problems(verify_tls: bool, ca_pem: str | None, fingerprint: str | None) -> dict:
    """A CA or a fingerprint both verify the server: they need verify_tls, and exclude each other."""
    problems = {}
    if ca_pem and fingerprint:
        problems["fingerprint"] = "give either ca_pem or fingerprint, not both"
    if not verify_tls and (ca_pem or fingerprint):
        problems["verify_tls"] = "must be true when a ca_pem or fingerprint is given"
    return problems


def auth_problems(auth, secret_required: bool) -> dict:
    """auth: {token_id, token_secret} or {username, password}; the secret may be left out of an
    edit that keeps the stored one (secret_required False)."""
    if not isinstance(auth, dict):
        return {"auth": "must be {token_id, token_secret} or {username, password}"}
    method = auth_method(auth)
    if method is None:
        return {"auth": "must hold either token_id (API token) or username (user and password), not both"}
    login_field, secret_field = LOGIN_FIELD[method], SECRET_FIELD[method]
    problems = {}
    pattern = TOKEN_ID if method == TOKEN else USERID
    if not isinstance(auth.get(login_field), str) or not pattern.fullmatch(auth[login_field]):
        problems[f"auth.{login_field}"] = ("must look like user@realm!tokenname" if method == TOKEN
                                           else "must look like user@realm")
    secret = auth.get(secret_field)
    if secret is None:
        if secret_required:
            problems[f"auth.{secret_field}"] = "is required"
    elif not isinstance(secret, str) or not 1 <= len(secret) <= SECRET_MAX:
        problems[f"auth.{secret_field}"] = f"must be 1-{SECRET_MAX} characters"
    if unknown := set(auth) - {login_field, secret_field}:
        for field in sorted(unknown):
            problems[f"auth.{field}"] = f"is not a field of {method} authentication"
    return problems


def connection_problems(fields: dict, creating: bool) -> dict:
    """Problems of a connection's fields. Creating: name, url and auth are required; an edit
    checks what it sends (auth without its secret keeps the stored one, if the method stays)."""
    problems = {}
    for field in ("name", "url", "auth") if creating else ():
        if fields.get(field) is None:
            problems[field] = "is required"
    if fields.get("name") is not None and (problem := name_problem(fields["name"])):
        problems["name"] = problem
    if fields.get("url") is not None and (problem := normalize_url(fields["url"])[1]):
        problems["url"] = problem
    if "verify_tls" in fields and not isinstance(fields["verify_tls"], bool):
        problems["verify_tls"] = "must be true or false"
    if fields.get("ca_pem") is not None and (problem := ca_pem_problem(fields["ca_pem"])):
        problems["ca_pem"] = problem
    if fields.get("fingerprint") is not None and (problem := fingerprint_problem(fields["fingerprint"])):
        problems["fingerprint"] = problem
    if "realm" in fields and (not isinstance(fields["realm"], str) or not REALM.fullmatch(fields["realm"])):
        problems["realm"] = "must be a Proxmox realm id: a letter, then letters, digits, '.', '_' or '-' (2-32)"
    if fields.get("auth") is not None:
        problems.update(auth_problems(fields["auth"], secret_required=creating))
    return problems


# --- memberships --------------------------------------------------------------------------


def membership_order(tenant_id: str, tenant_name: str) -> tuple:
    """How a user's tenants are listed: `default` first, then by name."""
    return (tenant_id != DEFAULT_TENANT_ID, name_key(tenant_name), tenant_id)


def next_default(remaining: list[tuple[str, str]]) -> str | None:
    """The tenant that becomes a user's default when theirs is left: the first of (id, name) in list order."""
    ordered = sorted(remaining, key=lambda pair: membership_order(*pair))
    return ordered[0][0] if ordered else None


def removal_refusal(member_of: set[str], tenant_id: str) -> str | None:
    """A user is never left without a tenant."""
    if tenant_id not in member_of:
        return "not_a_member"
    if member_of == {tenant_id}:
        return "last_tenant"
    return None
