"""The LDAP directory's settings (stored sealed by `box`, the service's kernel.crypto.SecretBox) and the
Proxmox VE realms pointing at its people.

Use cases take a unit of work not yet entered (`db.unit_of_work()`) and enter it themselves, never
across a network step (the directory's bind, Proxmox VE, RPC). `rbac` and `tenancy` are the
service's RpcProxies.
"""
from __future__ import annotations

import dataclasses

from kernel.authority import require_super_admin
from kernel.envelope import utc_now
from kernel.errors import NotFound, ValidationFailed
from services.proxmox_sync import domain, events, ldap_directory, ldap_plan, pve, storage, views
from services.proxmox_sync.domain import LDAP_TARGET


def settings_of(row, box) -> ldap_plan.LdapSettings | None:
    """The stored settings as the sync engine uses them (None: no directory configured)."""
    if row is None:
        return None
    return ldap_plan.LdapSettings(url=row.url, bind_dn=row.bind_dn, password=box.open(row.password_sealed),
                                  base_dn=row.base_dn, start_tls=row.start_tls, verify_tls=row.verify_tls,
                                  ca_pem=row.ca_pem, login_shell=row.login_shell)


def get_directory_settings(uow) -> dict:
    with uow:
        return views.public_directory(uow.session.get(storage.DirectorySettings, 1))


def put_directory_settings(uow, rbac, box, actor, fields) -> dict:
    """Replaces the LDAP directory's settings; a missing password keeps the stored one. The
    directory must accept the bind before anything is stored. Super admins (or the operator CLI) only."""
    require_super_admin(rbac, actor, "the directory settings")
    fields = {"start_tls": False, "verify_tls": True, "ca_pem": None, "login_shell": "/bin/bash",
              "realm_server": None, "realm_bind_dn": None, **fields}
    with uow:
        before = uow.session.get(storage.DirectorySettings, 1)
    realm_password_stored = before is not None and before.realm_bind_password_sealed is not None
    if problems := domain.directory_problems(fields, password_stored=before is not None,
                                             realm_password_stored=realm_password_stored):
        raise ValidationFailed("The LDAP directory settings have invalid fields.", details=problems)
    password = fields.get("password") or box.open(before.password_sealed)
    settings = ldap_plan.LdapSettings(url=fields["url"], bind_dn=fields["bind_dn"], password=password,
                                      base_dn=fields["base_dn"], start_tls=fields["start_tls"],
                                      verify_tls=fields["verify_tls"], ca_pem=fields["ca_pem"],
                                      login_shell=fields["login_shell"])
    try:
        with ldap_directory.Directory(settings) as directory:
            directory.ensure_subtrees()
    except ldap_directory.DirectoryUnavailable as failure:
        raise ValidationFailed(f"The directory refused: {failure.message}", code=f"ldap_{failure.code}",
                               details={"url": failure.message}) from None
    realm_password = _realm_password(box, fields, before)
    if realm_password and (problem := ldap_directory.reader_problem(
            dataclasses.replace(settings, bind_dn=fields["realm_bind_dn"], password=realm_password))):
        raise ValidationFailed(f"The realm bind account does not work: {problem}",
                               code="ldap_realm_bind_refused", details={"realm_bind_dn": problem})
    with uow:
        row = uow.session.get(storage.DirectorySettings, 1)
        changed = [name for name in domain.DIRECTORY_FIELDS
                   if row is None or getattr(row, name) != fields.get(name)]
        if row is None:
            row = storage.DirectorySettings(id=1, version=0)
            uow.session.add(row)
        if fields.get("password") and (before is None or box.open(before.password_sealed) != password):
            changed.append("password")
        if realm_password != (_stored_realm_password(box, before) if before else None):
            changed.append("realm_bind_password")  # its name only: events never carry a secret
        for name in domain.DIRECTORY_FIELDS:
            setattr(row, name, fields.get(name))
        row.password_sealed = box.seal(password)
        row.realm_bind_password_sealed = realm_password and box.seal(realm_password)
        row.version += 1
        row.updated_at = utc_now()
        if changed:
            uow.emit(events.directory_settings_changed(actor, changed))
        storage.ensure_target(uow.session, LDAP_TARGET, None)
        storage.enqueue(uow.session, LDAP_TARGET, storage.FULL, utc_now())
        storage.retry_now(uow.session, LDAP_TARGET, utc_now())  # new settings: try them at once
        uow.commit()
        return views.public_directory(row)


def _stored_realm_password(box, row) -> str | None:
    return row.realm_bind_password_sealed and box.open(row.realm_bind_password_sealed)


def _realm_password(box, fields: dict, before) -> str | None:
    """The realm bind password these settings keep: the one given, else the stored one (none
    without a realm bind DN)."""
    if not fields.get("realm_bind_dn"):
        return None
    return fields.get("realm_bind_password") or _stored_realm_password(box, before)


# --- Proxmox realms ------------------------------------------------------------------------

def configure_realm(uow, tenancy, box, directory_settings, actor, connection_id, tenant_id=None, server=None, port=None,
                    mode=None) -> dict:
    """Creates or updates, on the connection's Proxmox, the LDAP realm (the connection's `realm`)
    pointing at our directory's people: Proxmox then checks passwords against LDAP.
    directory_settings: a callable giving the directory's settings (settings_of the stored ones)."""
    credentials = tenancy.connection_credentials(connection_id)
    if tenant_id is not None and credentials["tenant_id"] != tenant_id:
        raise NotFound("No such connection.", code="connection_not_found", details={"connection_id": connection_id})
    settings = directory_settings()
    if settings is None:
        raise ValidationFailed("Configure the LDAP directory first (PUT /api/v1/settings/ldap).",
                               code="directory_not_configured", details={"ldap": "not configured"})
    with uow:
        row = uow.session.get(storage.DirectorySettings, 1)
        realm_server, bind_dn, bind_password = row.realm_server, row.realm_bind_dn, _stored_realm_password(box, row)
        last_sent = storage.realm_sent(uow.session, connection_id)
    spec = pve.RealmSpec(**domain.realm_fields(credentials["realm"], settings, server or realm_server, port, mode,
                                               bind_dn), bind_password=bind_password)
    digest = bind_password and box.keyed_digest(bind_password)
    try:
        with pve.session(pve.Endpoint.from_credentials(credentials)) as api:
            result = pve.ensure_realm(api, spec, domain.realm_password_due(last_sent, spec.realm, bind_dn, digest))
    except pve.PveFailure as failure:
        with uow:
            uow.emit(events.realm_configured(actor, connection_id, credentials["tenant_id"], spec.realm, "failed",
                                             "failure", failure.as_dict()))
            uow.commit()
        return {"ok": False, "realm": spec.realm, "error": failure.as_dict()}
    with uow:
        storage.record_realm_sent(uow.session, connection_id, spec.realm, bind_dn, digest, utc_now())
        uow.emit(events.realm_configured(actor, connection_id, credentials["tenant_id"], spec.realm, result))
        uow.commit()
    return {"ok": True, "realm": spec.realm, "result": result, "server": spec.server, "port": spec.port,
            "mode": spec.mode, "base_dn": spec.base_dn, "bind_dn": spec.bind_dn}
