"""Proxmox VE connections: each belongs to one tenant; its secret is sealed at rest (`box`, the
service's kernel.crypto.SecretBox) and never shown, except to proxmox_sync (connection_credentials).

Use cases take a unit of work not yet entered and enter it themselves.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from kernel import paging
from kernel.envelope import utc_now
from kernel.errors import Conflict, ValidationFailed, refuse_stale_edit
from services.tenancy import domain, events, lookups, storage, views
from services.tenancy.storage import Connection

CONNECTION_FIELDS = {"name", "url", "verify_tls", "ca_pem", "fingerprint", "realm", "auth"}
# What connection_updated shows of a change, from and to (ca_pem as ca_pinned; the secret never).
SHOWN_CHANGES = ("name", "url", "verify_tls", "fingerprint", "realm", "auth_method", "login")
TAKEN = ("A connection with that name already exists.", "connection_exists")


def list_connections(uow, tenant_id=None, limit=50, cursor=None) -> dict:
    """The connections of one tenant, or of all (None), by name."""
    offset = paging.offset_of(cursor)
    with uow:
        query = sa.select(Connection)
        if tenant_id is not None:
            query = query.where(Connection.tenant_id == tenant_id)
        total = uow.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        rows = uow.session.scalars(query.order_by(Connection.name_key).offset(offset).limit(lookups.limit_of(limit)))
        items = [views.public_connection(row) for row in rows]
    return paging.page_answer(items, offset, total)


def get_connection(uow, connection_id, tenant_id=None) -> dict:
    with uow:
        return views.public_connection(lookups.connection(uow.session, connection_id, tenant_id))


def create_connection(uow, box, actor, tenant_id, fields) -> dict:
    """fields: name, url, auth, and optionally verify_tls (true), ca_pem, fingerprint, realm."""
    fields = {"verify_tls": True, "realm": domain.DEFAULT_REALM, **fields}
    if unknown := set(fields) - CONNECTION_FIELDS:
        raise ValidationFailed("Unknown fields.", details={field: "is not a connection field" for field in unknown})
    problems = domain.connection_problems(fields, creating=True)
    problems.update(domain.tls_problems(fields["verify_tls"], fields.get("ca_pem"), fields.get("fingerprint")))
    if problems:
        raise ValidationFailed("The connection has invalid fields.", details=problems)
    method = domain.auth_method(fields["auth"])
    with uow:
        lookups.tenant(uow.session, tenant_id)
        _refuse_taken(uow.session, fields["name"])
        now = utc_now()
        connection = Connection(
            id=str(uuid.uuid4()), tenant_id=tenant_id, name=fields["name"].strip(),
            name_key=domain.name_key(fields["name"]), url=domain.normalize_url(fields["url"])[0],
            verify_tls=fields["verify_tls"], ca_pem=fields.get("ca_pem") or None,
            fingerprint=_fingerprint(fields.get("fingerprint")), realm=fields["realm"], auth_method=method,
            login=fields["auth"][domain.LOGIN_FIELD[method]],
            secret_sealed=box.seal(fields["auth"][domain.SECRET_FIELD[method]]),
            created_at=now, updated_at=now, version=1)
        uow.session.add(connection)
        uow.emit(events.connection_created(connection, actor))
        lookups.commit_unique(uow, *TAKEN)
        return views.public_connection(connection)


def update_connection(uow, box, actor, connection_id, changes, tenant_id=None, expected_version=None) -> dict:
    """changes: any of name, url, verify_tls, ca_pem, fingerprint (null removes these two),
    realm, auth. An auth without its secret keeps the stored one (same method only)."""
    if unknown := set(changes) - CONNECTION_FIELDS:
        raise ValidationFailed("Unknown fields.", details={field: "is not a connection field" for field in unknown})
    if problems := domain.connection_problems(changes, creating=False):
        raise ValidationFailed("The connection has invalid fields.", details=problems)
    with uow:
        connection = lookups.connection(uow.session, connection_id, tenant_id, for_update=True)
        refuse_stale_edit("connection", connection.version, expected_version)
        wanted = _wanted(connection, changes)
        problems = domain.tls_problems(wanted["verify_tls"], wanted["ca_pem"], wanted["fingerprint"])
        if problems:
            raise ValidationFailed("The connection has invalid fields.", details=problems)
        new_secret = wanted.pop("secret", None)
        changed = [field for field, value in wanted.items() if getattr(connection, field) != value]
        if new_secret is not None and new_secret != box.open(connection.secret_sealed):
            changed.append("auth_secret")
            connection.secret_sealed = box.seal(new_secret)
        if changed:
            shown = {field: {"from": getattr(connection, field), "to": wanted[field]}
                     for field in changed if field in SHOWN_CHANGES}
            if "ca_pem" in changed:
                shown["ca_pinned"] = {"from": bool(connection.ca_pem), "to": bool(wanted["ca_pem"])}
            if "name" in changed and domain.name_key(wanted["name"]) != connection.name_key:
                _refuse_taken(uow.session, wanted["name"])
            for field, value in wanted.items():
                setattr(connection, field, value)
            connection.name_key = domain.name_key(connection.name)
            connection.version += 1
            connection.updated_at = utc_now()
            uow.emit(events.connection_updated(connection, actor, shown, sorted(changed)))
            lookups.commit_unique(uow, *TAKEN)
        return views.public_connection(connection)


def reassign_connection(uow, actor, connection_id, to_tenant_id, tenant_id=None) -> dict:
    """Moves the connection to another tenant (to the same: nothing happens)."""
    with uow:
        connection = lookups.connection(uow.session, connection_id, tenant_id, for_update=True)
        lookups.tenant(uow.session, to_tenant_id)
        if connection.tenant_id != to_tenant_id:
            before = connection.tenant_id
            connection.tenant_id, connection.updated_at = to_tenant_id, utc_now()
            connection.version += 1
            uow.emit(events.connection_reassigned(connection, actor, before, to_tenant_id))
            uow.commit()
        return views.public_connection(connection)


def delete_connection(uow, actor, connection_id, tenant_id=None) -> None:
    with uow:
        connection = lookups.connection(uow.session, connection_id, tenant_id, for_update=True)
        uow.session.delete(connection)
        uow.emit(events.connection_deleted(connection, actor))
        uow.commit()


def connection_credentials(uow, box, connection_id) -> dict:
    """Internal, for proxmox_sync only (the gateway never exposes it): the connection with its secret."""
    with uow:
        connection = lookups.connection(uow.session, connection_id, None)
        return views.connection_credentials(connection, box.open(connection.secret_sealed))


# --- helpers (inside a unit of work) ------------------------------------------------------------

def _refuse_taken(session, name):
    if storage.connection_by_name(session, domain.name_key(name)):
        raise Conflict("A connection with that name already exists.", code="connection_exists",
                       details={"name": "already in use"})


def _wanted(connection, changes) -> dict:
    """The connection's columns after `changes` (and "secret" when a new one is given)."""
    wanted = {"name": connection.name, "url": connection.url, "verify_tls": connection.verify_tls,
              "ca_pem": connection.ca_pem, "fingerprint": connection.fingerprint, "realm": connection.realm,
              "auth_method": connection.auth_method, "login": connection.login}
    if changes.get("name") is not None:
        wanted["name"] = changes["name"].strip()
    if changes.get("url") is not None:
        wanted["url"] = domain.normalize_url(changes["url"])[0]
    for field in ("verify_tls", "realm"):
        if changes.get(field) is not None:
            wanted[field] = changes[field]
    if "ca_pem" in changes:
        wanted["ca_pem"] = changes["ca_pem"] or None
    if "fingerprint" in changes:
        wanted["fingerprint"] = _fingerprint(changes["fingerprint"])
    if auth := changes.get("auth"):
        method = domain.auth_method(auth)
        secret = auth.get(domain.SECRET_FIELD[method])
        if secret is None and method != connection.auth_method:
            field = f"auth.{domain.SECRET_FIELD[method]}"
            raise ValidationFailed("The connection has invalid fields.",
                                   details={field: "is required when the authentication method changes"})
        wanted.update(auth_method=method, login=auth[domain.LOGIN_FIELD[method]], secret=secret)
    return wanted


def _fingerprint(value):
    return domain.normalize_fingerprint(value) if value else None
