"""/api/v1/connections: the Proxmox VE endpoints of a tenant.

Confined to the session's active tenant: a connection of another tenant is 404, never 403.
Super admins reach every tenant (a list takes `?tenant=<id>` or `?tenant=*`). Secrets go in
and never come out: answers say `secret_set`.
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, is_super_admin, requires
from gateway.etags import ETAG_HEADER, etag, if_match
from gateway.schemas.sync import RealmIn, RealmOut
from gateway.schemas.tenancy import (
    ConnectionIn,
    ConnectionListQuery,
    ConnectionOut,
    ConnectionPageOut,
    ConnectionPatchIn,
    ConnectionTestOut,
    FingerprintIn,
    FingerprintOut,
    ReassignIn,
)
from kernel import SUPER_ADMIN_ONLY
from kernel.errors import Forbidden

bp = APIBlueprint("connections", __name__, url_prefix="/api/v1/connections", tag="Connections")

ALL_TENANTS = "*"
VIEW = {401: "Not signed in", 403: "Missing permission connection.view"}
MANAGE = {401: "Not signed in", 403: "Missing permission connection.manage"}
# The test's network steps (TLS probe, sign-in, GET /version) must end within the RPC timeout.
MAX_TEST_STEP = 5.0


def _rpc():
    return current_app.extensions["rpc"].client()


def _actor() -> dict:
    return actor().__dict__


def _scope() -> str | None:
    """The tenant the caller's requests are confined to; None for super admins (every tenant)."""
    return None if is_super_admin() else current_principal().tenant_id


@bp.get("")
@requires("connection.view")
@bp.input(ConnectionListQuery, location="query", arg_name="query")
@bp.output(ConnectionPageOut)
@bp.doc(summary="Connections of the active tenant", description=(
    "Needs `connection.view`. By name. Super admins may pass `tenant` (an id, or `*` for all)."),
    responses={**VIEW, 403: "Missing connection.view, or `tenant` from someone not a super admin"})
def list_connections(query):
    wanted = query.get("tenant")
    tenant_id = current_principal().tenant_id
    if wanted and wanted != tenant_id:
        if not is_super_admin():
            raise Forbidden("Only super admins list the connections of another tenant.", code="permission_denied",
                            details={"permission": SUPER_ADMIN_ONLY})
        tenant_id = None if wanted == ALL_TENANTS else wanted
    with _rpc() as rpc:
        return rpc.tenancy.list_connections(tenant_id, query["limit"], query.get("cursor"))


@bp.post("")
@requires("connection.manage")
@bp.input(ConnectionIn, arg_name="body")
@bp.output(ConnectionOut, status_code=201, description="The new connection (its secret is never shown)",
           headers=ETAG_HEADER)
@bp.doc(summary="Add a Proxmox VE connection", description=(
    "Needs `connection.manage`. In the active tenant, or `tenant_id` (super admins). `auth` is "
    "`{token_id, token_secret}` or `{username, password}`; the secret is stored encrypted. TLS is verified "
    "unless `verify_tls` is false; `ca_pem` or `fingerprint` say how."),
    responses={**MANAGE, 403: "Missing connection.manage, or another tenant from someone not a super admin",
               404: "No such tenant", 409: "Name taken", 422: "Invalid fields",
               429: "Too many connection names tried (GATEHOUSE_CONNECTION_NAMES_PER_ADMIN)"})
def create_connection(body):
    tenant_id = body.pop("tenant_id", None) or current_principal().tenant_id
    if tenant_id != current_principal().tenant_id and not is_super_admin():
        raise Forbidden("Only super admins add connections to another tenant.", code="permission_denied",
                        details={"permission": SUPER_ADMIN_ONLY})
    with _rpc() as rpc:
        connection = rpc.tenancy.create_connection(_actor(), tenant_id, body)
    return connection, 201, {"Location": f"/api/v1/connections/{connection['id']}", **etag(connection)}


@bp.post("/tls/fingerprint")  # not /fingerprint: that is the path of a connection named so (GET, PATCH, DELETE)
@requires("connection.manage")
@bp.input(FingerprintIn, arg_name="body")
@bp.output(FingerprintOut)
@bp.doc(summary="Read the certificate a Proxmox VE address presents", description=(
    "Needs `connection.manage`. proxmox_sync makes a TLS handshake with the host and port of `url` (an "
    "address a connection could have: `https://host[:port]`) and answers the certificate's SHA-256 "
    "`fingerprint`, `subject`, `issuer` and validity, for the administrator to compare with the node's own "
    "(Proxmox VE nodes ship self-signed certificates) before pinning it. Nothing is sent after the "
    "handshake, never a credential. Each fetch (failed or not) counts against "
    "`GATEHOUSE_CERT_FETCHES_PER_ADMIN` per window and is audited (`proxmox_sync.certificate_fetched`). `502` "
    "when no certificate could be had: `code` `unreachable`, `timeout` or `not_tls`, `details.url` in words."),
    responses={**MANAGE, 422: "The URL breaks the connection URL rules",
               429: "Too many certificates fetched (GATEHOUSE_CERT_FETCHES_PER_ADMIN)",
               502: "No certificate: unreachable, timeout or not_tls"})
def read_fingerprint(body):
    pool = current_app.extensions["rpc"]
    with pool.client() as rpc:
        step = max(1.0, min(MAX_TEST_STEP, pool.timeout / 4))
        return rpc.proxmox_sync.server_certificate(_actor(), current_principal().tenant_id, body["url"], step)


@bp.get("/<string:connection_id>")
@requires("connection.view")
@bp.output(ConnectionOut, headers=ETAG_HEADER)
@bp.doc(summary="One connection", description="Needs `connection.view`. The `ETag` is its version, for `If-Match`.",
        responses={**VIEW, 404: "No such connection in the active tenant"})
def get_connection(connection_id):
    with _rpc() as rpc:
        connection = rpc.tenancy.get_connection(connection_id, _scope())
    return connection, 200, etag(connection)


@bp.patch("/<string:connection_id>")
@requires("connection.manage")
@bp.input(ConnectionPatchIn, arg_name="body")
@bp.output(ConnectionOut, headers=ETAG_HEADER)
@bp.doc(summary="Change a connection", description=(
    "Needs `connection.manage`. Only the fields sent change; `ca_pem` or `fingerprint` null removes it; an "
    "`auth` without its secret keeps the stored one (the method may change only with a new secret). Send "
    "`If-Match: <ETag>` to refuse a change based on a stale read (412)."),
    responses={**MANAGE, 404: "No such connection in the active tenant", 409: "Name taken",
               412: "If-Match names an old version", 422: "Invalid fields",
               429: "Too many connection names tried (a rename counts)"})
def update_connection(connection_id, body):
    with _rpc() as rpc:
        connection = rpc.tenancy.update_connection(_actor(), connection_id, body, _scope(), if_match("connection"))
    return connection, 200, etag(connection)


@bp.delete("/<string:connection_id>")
@requires("connection.manage")
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a connection", description="Needs `connection.manage`.",
        responses={**MANAGE, 404: "No such connection in the active tenant"})
def delete_connection(connection_id):
    with _rpc() as rpc:
        rpc.tenancy.delete_connection(_actor(), connection_id, _scope())
    return "", 204


@bp.post("/<string:connection_id>/reassign")
@requires(SUPER_ADMIN_ONLY)
@bp.input(ReassignIn, arg_name="body")
@bp.output(ConnectionOut, headers=ETAG_HEADER)
@bp.doc(summary="Move a connection to another tenant", description="Super admins (`tenant.manage`). Audited "
        "with both tenants.", responses={401: "Not signed in", 403: "Super admins only",
                                         404: "No such connection or tenant"})
def reassign_connection(connection_id, body):
    with _rpc() as rpc:
        connection = rpc.tenancy.reassign_connection(_actor(), connection_id, body["tenant_id"])
    return connection, 200, etag(connection)


@bp.post("/<string:connection_id>/test")
@requires("connection.manage")
@bp.output(ConnectionTestOut)
@bp.doc(summary="Test a connection", description=(
    "Needs `connection.manage`. proxmox_sync signs in with the stored credentials and reads `GET /version`: "
    "`{ok: true, version, release}`, or `{ok: false, error: {code, message}}` with code `unreachable`, "
    "`timeout`, `tls_verification_failed`, `tls_fingerprint_mismatch`, `authentication_failed`, "
    "`permission_denied` or `proxmox_error`."),
    responses={**MANAGE, 404: "No such connection in the active tenant"})
def test_connection(connection_id):
    pool = current_app.extensions["rpc"]
    with pool.client() as rpc:
        rpc.tenancy.get_connection(connection_id, _scope())
        # At most three steps of this each, well inside the RPC timeout.
        step = max(1.0, min(MAX_TEST_STEP, pool.timeout / 4))
        return rpc.proxmox_sync.test_connection(_actor(), connection_id, _scope(), step)


@bp.post("/<string:connection_id>/realm")
@requires("connection.manage")
@bp.input(RealmIn, arg_name="body")
@bp.output(RealmOut)
@bp.doc(summary="Create or update the connection's LDAP realm", description=(
    "Needs `connection.manage`. Makes, on the connection's Proxmox VE, the LDAP realm named by the "
    "connection's `realm` pointing at Gatehouse's directory (`ou=people`, `uid`), so Proxmox checks "
    "passwords against LDAP; no user's password is pushed to Proxmox. The realm searches bound as the "
    "directory settings' `realm_bind_dn`; its password goes to Proxmox (which never shows it back) when the "
    "realm is created, its bind DN changes, or the stored realm password is not the one last sent there. "
    "`result` is `created`, `updated` or `unchanged`; a failure answers `{ok: false, error}` (e.g. `realm_conflict` when a realm of another "
    "type has that name) and is audited."),
    responses={**MANAGE, 404: "No such connection in the active tenant",
               422: "The LDAP directory is not configured"})
def configure_realm(connection_id, body):
    with _rpc() as rpc:
        rpc.tenancy.get_connection(connection_id, _scope())
        return rpc.proxmox_sync.configure_realm(_actor(), connection_id, _scope(), body.get("server"),
                                                body.get("port"), body.get("mode"))
