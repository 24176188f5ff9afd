"""The certificate a Proxmox VE address presents, for an administrator to confirm before pinning
its fingerprint (Proxmox VE nodes ship self-signed certificates).

Only a TLS handshake with the host and port the administrator typed, as "test connection" makes
to a stored connection: nothing is sent after it, never a credential. The address must pass the
connection URL rules (https://host[:port], contracts/tenancy.py), and the caller must hold
`connection.manage` in the tenant (checked here, asking rbac).
"""
from __future__ import annotations

import socket
import ssl

from cryptography import x509

from contracts.tenancy import host_and_port, normalize_url
from kernel.envelope import Actor
from kernel.errors import BadGateway, Forbidden, ValidationFailed
from services.proxmox_sync import pve

MANAGE = "connection.manage"
NOT_TLS = "not_tls"


def server_certificate(rbac, actor: Actor, tenant_id: str, url, timeout: float = pve.STEP_TIMEOUT) -> dict:
    """{url, fingerprint, subject, issuer, not_before, not_after} of the certificate `url` presents.

    422 when the URL breaks the connection rules; 502 (code unreachable, timeout or not_tls,
    `details.url` in words) when no certificate could be had."""
    if not actor.is_operator and not (actor.user_id and rbac.authorize(actor.user_id, MANAGE, tenant_id)):
        raise Forbidden(f"This needs the permission {MANAGE}.", code="permission_denied",
                        details={"permission": MANAGE, "tenant_id": tenant_id})
    normalized, problem = normalize_url(url)
    if problem:
        raise ValidationFailed(f"url {problem}.", details={"url": problem})
    host, port = host_and_port(normalized)
    try:
        der = pve.served_certificate(host, port, float(timeout))
    except Exception as error:  # noqa: BLE001 - each failure is answered in words
        code, words = _failure(error, normalized)
        raise BadGateway(words, code=code, details={"url": words}) from None
    return {"url": normalized, **describe(der)}


def describe(der: bytes) -> dict:
    """What an administrator compares with the node's own view (Datacenter > node > Certificates)."""
    certificate = x509.load_der_x509_certificate(der)
    return {"fingerprint": pve.fingerprint_of(der), "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "not_before": certificate.not_valid_before_utc.isoformat(),
            "not_after": certificate.not_valid_after_utc.isoformat()}


def _failure(error: Exception, where: str) -> tuple[str, str]:
    """(code, sentence): our own words, never the exception's text."""
    if isinstance(error, ssl.SSLError):
        return NOT_TLS, f"{where} does not speak TLS (no certificate was presented): is it the HTTPS port of the node?"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return pve.TIMEOUT, f"{where} did not answer in time."
    if isinstance(error, OSError):
        return pve.UNREACHABLE, f"{where} cannot be reached (connection refused, no route or unknown host)."
    return pve.PROXMOX_ERROR, f"Reading the certificate of {where} failed ({type(error).__name__})."
