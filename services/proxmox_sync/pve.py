"""A Proxmox VE client for one connection: proxmoxer, with the connection's TLS rules, time
limits on every network step, and failures turned into a code and a message that never
carry the secret.

TLS: verify_tls with a CA (ca_pem, written to a temporary file for requests), or with the
system's CAs; a pinned SHA-256 fingerprint (the server certificate must have it; the CA
chain and host name then do not matter, as in Proxmox VE's own cluster joins); or no
verification at all (verify_tls false, for labs).

A fingerprint is checked on a first TLS connection of our own before any credential is sent,
and then again on every connection of the API session (urllib3's assert_fingerprint). The
one request proxmoxer makes outside that session, the ticket request of a user+password
connection, is covered by the first check only.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException
from requests.adapters import HTTPAdapter

from services.tenancy.domain import PASSWORD, TOKEN, host_and_port

log = logging.getLogger(__name__)

STEP_TIMEOUT = 5.0  # seconds per network step (TLS probe, ticket, request)

# The codes a failure is reported with.
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
TLS_VERIFICATION_FAILED = "tls_verification_failed"
TLS_FINGERPRINT_MISMATCH = "tls_fingerprint_mismatch"
AUTHENTICATION_FAILED = "authentication_failed"
PERMISSION_DENIED = "permission_denied"
PROXMOX_ERROR = "proxmox_error"


class PveFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Endpoint:
    """What tenancy.connection_credentials answers, as needed here."""

    url: str
    verify_tls: bool
    ca_pem: str | None
    fingerprint: str | None
    auth_method: str
    login: str
    secret: str

    @classmethod
    def from_credentials(cls, answer: dict) -> "Endpoint":
        return cls(url=answer["url"], verify_tls=answer["verify_tls"], ca_pem=answer.get("ca_pem"),
                   fingerprint=answer.get("fingerprint"), auth_method=answer["auth_method"], login=answer["login"],
                   secret=answer["secret"])


@contextlib.contextmanager
def session(endpoint: Endpoint, timeout: float = STEP_TIMEOUT):
    """Yields a signed-in ProxmoxAPI; raises PveFailure when it cannot be had."""
    host, port = host_and_port(endpoint.url)
    with _verification(endpoint, host, port, timeout) as verify:
        try:
            api = ProxmoxAPI(host, port=port, verify_ssl=verify, timeout=timeout, **_auth(endpoint))
            if endpoint.fingerprint:
                api._store["session"].mount("https://", _PinnedAdapter(endpoint.fingerprint))
            yield api
        except PveFailure:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is answered with its code
            raise failure(error, endpoint) from None


def probe(endpoint: Endpoint, timeout: float = STEP_TIMEOUT) -> dict:
    """GET /version: {"version", "release"} when the endpoint answers and the credentials work."""
    with session(endpoint, timeout) as api:
        answer = api.version.get()
    return {"version": answer.get("version"), "release": answer.get("release")}


def failure(error: Exception, endpoint: Endpoint) -> PveFailure:
    """The PveFailure of an exception from requests or proxmoxer. Messages are ours: never the
    exception's text, which could quote a request."""
    if isinstance(error, PveFailure):
        return error
    where = endpoint.url
    if isinstance(error, requests.exceptions.SSLError) or isinstance(error, ssl.SSLError):
        if endpoint.fingerprint and "ingerprint" in str(error):
            return _mismatch(where)
        return PveFailure(TLS_VERIFICATION_FAILED, f"The TLS certificate of {where} could not be verified "
                          "(give its CA or fingerprint, or turn verify_tls off for a lab).")
    if isinstance(error, (requests.exceptions.Timeout, TimeoutError)):
        return PveFailure(TIMEOUT, f"{where} did not answer in time.")
    if isinstance(error, (requests.exceptions.ConnectionError, ConnectionError, OSError)):
        return PveFailure(UNREACHABLE, f"{where} cannot be reached (connection refused, no route or unknown host).")
    if isinstance(error, AuthenticationError):
        return PveFailure(AUTHENTICATION_FAILED, f"{where} refused the user name or password.")
    if isinstance(error, ResourceException):
        if error.status_code == 401:
            what = "API token" if endpoint.auth_method == TOKEN else "user name or password"
            return PveFailure(AUTHENTICATION_FAILED, f"{where} refused the {what}.")
        if error.status_code == 403:
            return PveFailure(PERMISSION_DENIED, f"{where} accepted the credentials but denies this call.")
        return PveFailure(PROXMOX_ERROR, f"{where} answered HTTP {error.status_code}.")
    log.warning("unexpected failure talking to %s: %s", where, type(error).__name__)
    return PveFailure(PROXMOX_ERROR, f"Talking to {where} failed ({type(error).__name__}).")


def _auth(endpoint: Endpoint) -> dict:
    if endpoint.auth_method == PASSWORD:
        return {"user": endpoint.login, "password": endpoint.secret}
    user, _, token_name = endpoint.login.partition("!")
    return {"user": user, "token_name": token_name, "token_value": endpoint.secret}


@contextlib.contextmanager
def _verification(endpoint: Endpoint, host: str, port: int, timeout: float):
    """The `verify` requests needs: True, False or the path of the CA file (removed after)."""
    if endpoint.fingerprint:
        _check_fingerprint(endpoint, host, port, timeout)
        yield False
    elif endpoint.verify_tls and endpoint.ca_pem:
        fd, path = tempfile.mkstemp(prefix="pve-ca-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(endpoint.ca_pem)
            yield path
        finally:
            os.unlink(path)
    else:
        yield endpoint.verify_tls


def _check_fingerprint(endpoint: Endpoint, host: str, port: int, timeout: float) -> None:
    try:
        served = ssl.get_server_certificate((host, port), timeout=timeout)
    except Exception as error:  # noqa: BLE001
        raise failure(error, endpoint) from None
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest()
    if digest != endpoint.fingerprint.replace(":", "").lower():
        raise _mismatch(endpoint.url)


def _mismatch(where: str) -> PveFailure:
    return PveFailure(TLS_FINGERPRINT_MISMATCH, f"The TLS certificate of {where} does not have the pinned "
                      "fingerprint.")


class _PinnedAdapter(HTTPAdapter):
    """Every connection of the session must present the certificate with this SHA-256 fingerprint."""

    def __init__(self, fingerprint: str):
        self._fingerprint = fingerprint.replace(":", "").lower()
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)
