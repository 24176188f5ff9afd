"""Bodies of /api/v1/tenancy, /api/v1/tenants and /api/v1/connections."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, Nested, String
from apiflask.validators import Length, OneOf

from contracts import tenancy as domain
from gateway.schemas import FullMatch, JsonBoolean, PageQuery, Rule, page_of, pattern_of, role_reference

ISO = {"format": "date-time"}


# --- the switch and tenants -------------------------------------------------------------------


class TenancyStatusOut(Schema):
    enabled = JsonBoolean()
    tenants = Integer(metadata={"description": "how many tenants exist, `default` included"})
    changed_at = String(allow_none=True, metadata={**ISO, "description": "when multi-tenancy was last switched"})
    changed_by = String(allow_none=True, metadata={"description": "who switched it (username)"})


def _name(**kwargs) -> String:
    """A tenant's or connection's name: text without control characters, not blank."""
    metadata = {**pattern_of(domain.NAME), **kwargs.pop("metadata", {})}
    return String(validate=[Length(1, domain.NAME_MAX), Rule(domain.name_problem)], metadata=metadata, **kwargs)


def _description(**kwargs) -> String:
    return String(validate=Length(0, domain.DESCRIPTION_MAX), **kwargs)


class TenantIn(Schema):
    name = _name(required=True, metadata={"description": "unique, whatever the case"})
    description = _description(load_default="")


class TenantPatchIn(Schema):
    name = _name()
    description = _description()


class TenantOut(Schema):
    id = String(metadata={"description": "`default`, or a uuid"})
    name = String()
    description = String()
    is_default = JsonBoolean(metadata={"description": "the default tenant, which cannot be deleted"})
    connection_count = Integer()
    user_count = Integer()
    created_at = String(metadata=ISO)
    updated_at = String(metadata=ISO)
    version = Integer(metadata={"description": "the ETag of If-Match edits"})


class TenantItemOut(TenantOut):
    """A tenant in a list (own classes for nested and top-level answers: apispec warns otherwise)."""


TenantPageOut = page_of(TenantItemOut, "TenantPage")


class TenantMemberIn(Schema):
    role = role_reference(required=True, metadata={"description": "the user's role in this tenant"})
    default = JsonBoolean(load_default=False, metadata={"description": "make this the tenant the user's sessions "
                                                                       "start in"})


class TenantMemberOut(Schema):
    tenant_id = String()
    user_id = String()
    username = String(allow_none=True)
    role = String(allow_none=True, metadata={"description": "the user's role in this tenant (rbac)"})
    is_default = JsonBoolean(metadata={"description": "the tenant the user's sessions start in"})
    created_at = String(metadata=ISO)


TenantMemberPageOut = page_of(TenantMemberOut, "TenantMemberPage")


class MembershipOut(TenantMemberOut):
    """One membership (its own class: apispec warns when a response schema is also nested)."""


# --- connections ----------------------------------------------------------------------------------


def _url(**kwargs) -> String:
    return String(validate=[Length(1, 255), Rule(lambda url: domain.normalize_url(url)[1])],
                  metadata={"description": "https://host[:port] (port 8006 if left out)"}, **kwargs)


class ConnectionAuthIn(Schema):
    """Either an API token (token_id, token_secret) or a user (username, password)."""

    token_id = String(validate=FullMatch(domain.TOKEN_ID), metadata={"description": "user@realm!tokenname"})
    token_secret = String(validate=Length(1, domain.SECRET_MAX), load_only=True)
    username = String(validate=FullMatch(domain.USERID), metadata={"description": "user@realm"})
    password = String(validate=Length(1, domain.SECRET_MAX), load_only=True)


class _ConnectionFields(Schema):
    name = _name(metadata={"description": "unique across tenants, whatever the case"})
    url = _url()
    verify_tls = JsonBoolean(metadata={"description": "verify the server's certificate (default true)"})
    ca_pem = String(allow_none=True, validate=[Length(1, domain.CA_PEM_MAX), Rule(domain.ca_pem_problem)],
                    metadata={"description": "PEM certificate(s) of the CA that signs the server's certificate"})
    fingerprint = String(allow_none=True, validate=[Length(1, 95), Rule(domain.fingerprint_problem)], metadata={
        **pattern_of(domain.FINGERPRINT), "description": "SHA-256 fingerprint of the server's certificate (AB:CD:...)"})
    realm = String(validate=FullMatch(domain.REALM),
                   metadata={"description": "the LDAP realm Proxmox VE uses for Gatehouse users (default gatehouse)"})
    auth = Nested(ConnectionAuthIn)


class ConnectionIn(_ConnectionFields):
    name = _name(required=True)
    url = _url(required=True)
    auth = Nested(ConnectionAuthIn, required=True)
    tenant_id = String(validate=Length(1, 36),
                       metadata={"description": "owner tenant; the active tenant if left out (others: super admins)"})


class ConnectionPatchIn(_ConnectionFields):
    """Only the fields sent change; an `auth` without its secret keeps the stored one."""


class ConnectionAuthOut(Schema):
    method = String(validate=OneOf(["token", "password"]))
    token_id = String()
    username = String()
    secret_set = JsonBoolean(metadata={"description": "a token secret or password is stored (never shown)"})


class ConnectionOut(Schema):
    id = String()
    tenant_id = String()
    name = String()
    url = String()
    verify_tls = JsonBoolean()
    ca_pem = String(allow_none=True)
    fingerprint = String(allow_none=True)
    realm = String()
    auth = Nested(ConnectionAuthOut)
    created_at = String(metadata=ISO)
    updated_at = String(metadata=ISO)
    version = Integer(metadata={"description": "the ETag of If-Match edits"})


class ConnectionItemOut(ConnectionOut):
    """A connection in a list."""


ConnectionPageOut = page_of(ConnectionItemOut, "ConnectionPage")


class ConnectionListQuery(PageQuery):
    tenant = String(validate=Length(1, 36), metadata={
        "description": "super admins: a tenant id, or `*` for every tenant (default: the active tenant)"})


class ReassignIn(Schema):
    tenant_id = String(required=True, validate=Length(1, 36))


class ConnectionTestErrorOut(Schema):
    code = String(metadata={"description": "unreachable, timeout, tls_verification_failed, "
                                           "tls_fingerprint_mismatch, authentication_failed, "
                                           "permission_denied or proxmox_error"})
    message = String()


class ConnectionTestOut(Schema):
    ok = JsonBoolean()
    version = String(metadata={"description": "pve-manager version, when ok"})
    release = String(metadata={"description": "Proxmox VE release (x.y), when ok"})
    error = Nested(ConnectionTestErrorOut, metadata={"description": "why not, when not ok"})


class FingerprintIn(Schema):
    url = _url(required=True)


class FingerprintOut(Schema):
    url = String(metadata={"description": "the address as a connection stores it (https://host:port)"})
    fingerprint = String(metadata={**pattern_of(domain.FINGERPRINT),
                                   "description": "SHA-256 fingerprint of the certificate (AB:CD:...)"})
    subject = String(metadata={"description": "the certificate's subject (RFC 4514)"})
    issuer = String(metadata={"description": "the certificate's issuer (RFC 4514); the subject again when self-signed"})
    not_before = String(metadata=ISO)
    not_after = String(metadata=ISO)
