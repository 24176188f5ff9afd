"""/api/v1/sync (status and on-demand runs) and /api/v1/settings/ldap (the directory).

A tenant's users see the directory and their tenant's connections; super admins see every
target. The directory is platform-wide: only super admins configure it.
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, is_super_admin, requires
from gateway.schemas.sync import (DirectorySettingsIn, DirectorySettingsOut, SyncQueuedOut, SyncRunIn,
                                  SyncStatusOut)
from kernel import SUPER_ADMIN_ONLY

bp = APIBlueprint("sync", __name__, tag="Sync")

SUPER = {401: "Not signed in", 403: "Not a super admin"}


def _rpc():
    return current_app.extensions["rpc"].client()


def _tenant_scope() -> str | None:
    return None if is_super_admin() else current_principal().tenant_id


@bp.get("/api/v1/sync/status")
@requires("sync.view")
@bp.output(SyncStatusOut)
@bp.doc(summary="Sync status of every target", description=(
    "Needs `sync.view`. Per target (the LDAP directory, each Proxmox connection of the active tenant; "
    "super admins see all): last run, duration, changes made, error, progress of a running full sync "
    "and work waiting."), responses={401: "Not signed in", 403: "Missing permission sync.view"})
def sync_status():
    with _rpc() as rpc:
        return rpc.proxmox_sync.sync_status(_tenant_scope())


@bp.post("/api/v1/sync/run")
@requires("sync.run")
@bp.input(SyncRunIn, arg_name="body")
@bp.output(SyncQueuedOut, status_code=202)
@bp.doc(summary="Run a full sync", description=(
    "Needs `sync.run`. Marks a full reconcile of the given targets (or of every target you can see); it "
    "runs at once in the background: follow it in `GET /api/v1/sync/status`."),
    responses={401: "Not signed in", 403: "Missing permission sync.run",
               404: "A target that does not exist or is not yours"})
def run_sync(body):
    with _rpc() as rpc:
        return rpc.proxmox_sync.request_sync(actor().__dict__, body.get("targets"), _tenant_scope())


@bp.get("/api/v1/settings/ldap")
@requires(SUPER_ADMIN_ONLY)
@bp.output(DirectorySettingsOut)
@bp.doc(summary="The LDAP directory settings", description="Super admins. The bind passwords are never shown.",
        responses=SUPER)
def get_directory():
    with _rpc() as rpc:
        return rpc.proxmox_sync.get_directory_settings()


@bp.put("/api/v1/settings/ldap")
@requires(SUPER_ADMIN_ONLY)
@bp.input(DirectorySettingsIn, arg_name="body")
@bp.output(DirectorySettingsOut)
@bp.doc(summary="Configure the LDAP directory", description=(
    "Super admins. The directory must accept the bind (and gets `ou=people`, `ou=groups` under the base) "
    "before anything is stored; the password is stored encrypted. `realm_bind_dn` is the read-only account "
    "Proxmox VE realms search as: it must bind with `realm_bind_password` and read `ou=people` (code "
    "`ldap_realm_bind_refused` otherwise); that password is stored encrypted too and never shown. A full sync "
    "follows."),
    responses={**SUPER, 422: "Invalid fields, or the directory refused (code `ldap_<reason>`)"})
def put_directory(body):
    with _rpc() as rpc:
        return rpc.proxmox_sync.put_directory_settings(actor().__dict__, body)
