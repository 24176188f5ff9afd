"""The certificate a Proxmox VE address presents, for an administrator to confirm before pinning
its fingerprint (Proxmox VE nodes ship self-signed certificates).

Only a TLS handshake with the host and port the administrator typed, as "test connection" makes
to a stored connection: nothing is sent after it, never a credential. The address must pass the
connection URL rules (https://host[:port], contracts/tenancy.py), and the caller must hold
`connection.manage` in the tenant (checked here, asking rbac). Each handshake reaches a host on
Gatehouse's own network for the administrator (docs/security.md), so each one counts against
GATEHOUSE_CERT_FETCHES_PER_ADMIN (kernel/ratelimit.py, in proxmox_sync's database) and is audited
(`proxmox_sync.certificate_fetched`, success or failure, through the outbox).
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

from cryptography import x509

from contracts.tenancy import host_and_port, normalize_url
from kernel import ratelimit
from kernel.authority import require_permission
from kernel.envelope import Actor
from kernel.errors import BadGateway, ValidationFailed
from services.proxmox_sync import events, pve, storage

MANAGE = "connection.manage"
NOT_TLS = "not_tls"
LIMIT = "cert_fetches_per_admin"


@dataclass(frozen=True)
class FetchLimit:
    """GATEHOUSE_CERT_FETCHES_PER_ADMIN handshakes per GATEHOUSE_RATE_LIMIT_WINDOW seconds (0: none)."""

    maximum: int
    window_seconds: int

    @classmethod
    def from_config(cls, settings) -> "FetchLimit":
        return cls(settings.integer("GATEHOUSE_CERT_FETCHES_PER_ADMIN"), settings.integer("GATEHOUSE_RATE_LIMIT_WINDOW"))


def server_certificate(uow, rbac, actor: Actor, tenant_id: str, url, limit: FetchLimit,
                       timeout: float = pve.STEP_TIMEOUT) -> dict:
    """{url, fingerprint, subject, issuer, not_before, not_after} of the certificate `url` presents.

    403 without connection.manage in the tenant; 422 when the URL breaks the connection rules (both
    before any network, not counted); 429 `rate_limited` beyond the actor's limit; 502 (code
    unreachable, timeout or not_tls, `details.url` in words) when no certificate could be had.
    `uow`: proxmox_sync's unit of work, not yet entered (the count and the audit event)."""
    require_permission(rbac, actor, MANAGE, tenant_id)
    normalized, problem = normalize_url(url)
    if problem:
        raise ValidationFailed(f"url {problem}.", details={"url": problem})
    ratelimit.count_attempt(uow, storage.rate_counters, LIMIT, actor, limit.maximum, limit.window_seconds,
                            "Too many certificates fetched.")
    host, port = host_and_port(normalized)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        answer = {"url": normalized, **describe(pve.served_certificate(host, port, float(timeout)))}
    except Exception as error:  # noqa: BLE001 - each failure is answered in words
        failed = failure(error, normalized)
        _record(uow, events.certificate_fetched(actor, tenant_id, address, failure=failed.as_dict()))
        raise BadGateway(failed.message, code=failed.code, details={"url": failed.message}) from None
    _record(uow, events.certificate_fetched(actor, tenant_id, address, fingerprint=answer["fingerprint"]))
    return answer


def _record(uow, event) -> None:
    with uow:
        uow.emit(event)
        uow.commit()


def describe(der: bytes) -> dict:
    """What an administrator compares with the node's own view (Datacenter > node > Certificates)."""
    certificate = x509.load_der_x509_certificate(der)
    return {"fingerprint": pve.fingerprint_of(der), "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "not_before": certificate.not_valid_before_utc.isoformat(),
            "not_after": certificate.not_valid_after_utc.isoformat()}


def failure(error: Exception, where: str) -> pve.PveFailure:
    """Our own words, never the exception's text: a server that is not TLS, or pve's network failures."""
    if isinstance(error, ssl.SSLError):
        return pve.PveFailure(NOT_TLS, f"{where} does not speak TLS (no certificate was presented): is it the "
                              "HTTPS port of the node?")
    return pve.network_failure(error, where) or pve.PveFailure(
        pve.PROXMOX_ERROR, f"Reading the certificate of {where} failed ({type(error).__name__}).")
