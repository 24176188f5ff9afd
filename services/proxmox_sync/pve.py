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
from concurrent.futures import ThreadPoolExecutor
import hashlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass, field

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException
from requests.adapters import HTTPAdapter

from services.proxmox_sync import pve_plan
from services.proxmox_sync.pve_plan import AclEntry, PveChange, PveGroup, PveState, PveUser
from contracts.tenancy import PASSWORD, TOKEN, host_and_port

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
REALM_MISSING = "realm_missing"
REALM_CONFLICT = "realm_conflict"
# Answers to one change that refuse that object's data (Proxmox VE's parameter verification):
# the engine parks that user or group and the connection's other changes go on.
SUBJECT_STATUSES = frozenset({400})


class PveFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ChangesFailed(PveFailure):
    """Some changes of an apply were refused; the others were made (`applied` of them)."""

    def __init__(self, applied: int, failures: list[dict]):
        super().__init__(PROXMOX_ERROR, f"{len(failures)} of {applied + len(failures)} changes failed; first: "
                                        f"{failures[0]['message']}")
        self.applied, self.failures = applied, failures

    def as_dict(self) -> dict:
        return {**super().as_dict(), "applied": self.applied, "failures": self.failures}


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
            api._store["session"].mount("https://", _TlsAdapter(_tls_context(endpoint), endpoint.fingerprint))
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
    if network := network_failure(error, where):
        return network
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


def network_failure(error: Exception, where: str) -> PveFailure | None:
    """The PveFailure of an address that did not answer in time or could not be reached (in our
    words), None for any other exception. TLS errors are OSErrors too: callers look at them first."""
    if isinstance(error, (requests.exceptions.Timeout, TimeoutError)):
        return PveFailure(TIMEOUT, f"{where} did not answer in time.")
    if isinstance(error, (requests.exceptions.ConnectionError, ConnectionError, OSError)):
        return PveFailure(UNREACHABLE, f"{where} cannot be reached (connection refused, no route or unknown host).")
    return None


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


def served_certificate(host: str, port: int, timeout: float) -> bytes:
    """The DER certificate the server at host:port presents, unverified: a TLS handshake, and
    nothing sent after it. Raises what ssl and socket raise."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, port), timeout=timeout))


def fingerprint_of(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint the way Proxmox VE shows it: AB:CD:... (32 pairs)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _check_fingerprint(endpoint: Endpoint, host: str, port: int, timeout: float) -> None:
    try:
        served = served_certificate(host, port, timeout)
    except Exception as error:  # noqa: BLE001
        raise failure(error, endpoint) from None
    if fingerprint_of(served) != endpoint.fingerprint.strip().upper():
        raise _mismatch(endpoint.url)


def _mismatch(where: str) -> PveFailure:
    return PveFailure(TLS_FINGERPRINT_MISMATCH, f"The TLS certificate of {where} does not have the pinned "
                      "fingerprint.")


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """One TLS context per session, its trust loaded once: urllib3 would load the system's CAs
    again for every new connection (~40 ms each, even unverified)."""
    if endpoint.fingerprint or not endpoint.verify_tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a pin is checked instead, or nothing
        return context
    return ssl.create_default_context(cadata=endpoint.ca_pem) if endpoint.ca_pem else ssl.create_default_context()


class _TlsAdapter(HTTPAdapter):
    """The session's connections use `context`; with a fingerprint, each must present the
    certificate with that SHA-256 fingerprint."""

    def __init__(self, context: ssl.SSLContext, fingerprint: str | None):
        self._context = context
        self._fingerprint = fingerprint.replace(":", "").lower() if fingerprint else None
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        if self._fingerprint:
            kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)


# --- access propagation: users, groups, roles, ACLs, the realm ------------------------------------
# Called inside `session(...)`: a network, 401 or 403 failure ends the call, and session() turns
# it into its PveFailure. Proxmox's own refusals of a change are reported with its reason (they
# quote ids and names we sent, never a secret: no secret is ever sent here).


def read_state(api, realm: str) -> PveState:
    """Everything the Proxmox VE holds of users, groups, roles and ACLs (pve_plan.managed picks
    Gatehouse's part). PveFailure realm_missing when `realm` does not exist there: its users
    could not be created (ensure_realm makes it)."""
    # Five independent reads: in parallel, a pass costs one round trip instead of five.
    reads = {"domains": api.access.domains.get, "users": lambda: api.access.users.get(full=1),
             "groups": api.access.groups.get, "roles": api.access.roles.get, "acl": api.access.acl.get}
    with ThreadPoolExecutor(len(reads)) as pool:
        pending = {name: pool.submit(read) for name, read in reads.items()}
        answer = {name: future.result() for name, future in pending.items()}
    if realm not in {entry["realm"] for entry in answer["domains"]}:
        raise PveFailure(REALM_MISSING, f"The realm '{realm}' does not exist on this Proxmox VE; create it first.")
    users = {entry["userid"]: PveUser(userid=entry["userid"], firstname=entry.get("firstname") or "",
                                      lastname=entry.get("lastname") or "", email=entry.get("email") or "",
                                      enable=_flag(entry.get("enable", 1)),
                                      groups=frozenset(_names(entry.get("groups"))), comment=entry.get("comment") or "")
             for entry in answer["users"]}
    groups = {entry["groupid"]: PveGroup(entry["groupid"], entry.get("comment") or "") for entry in answer["groups"]}
    roles = {entry["roleid"]: frozenset(_names(entry.get("privs"))) for entry in answer["roles"]}
    acls = frozenset(AclEntry(entry["path"], entry["roleid"], entry["ugid"], entry["type"],
                              _flag(entry.get("propagate", 1)))
                     for entry in answer["acl"] if entry["type"] in (pve_plan.USER, pve_plan.GROUP))
    return PveState(users=users, groups=groups, roles=roles, acls=acls)


def apply(api, changes: list[PveChange]) -> int:
    """Makes the changes in pve_plan's order (roles, groups, users, ACLs; deletes last, ACL
    entries first) and answers how many were made; conflicts are skipped. A change Proxmox
    refuses does not stop the others: ChangesFailed names them all at the end."""
    applied, failures = 0, []
    for change in pve_plan.ordered(change for change in changes if change.op != pve_plan.CONFLICT):
        try:
            _apply_one(api, change)
            applied += 1
        except ResourceException as error:
            if error.status_code in (401, 403):
                raise
            failures.append({"change": change.describe(), "status": error.status_code,
                             "message": _refusal(error, change.op, change.kind, change.key)})
    if failures:
        raise ChangesFailed(applied, failures)
    return applied


def _apply_one(api, change: PveChange) -> None:
    op, key, fields = change.op, change.key, change.fields
    if change.kind == pve_plan.ACL:
        who = {f"{fields['type']}s": fields["ugid"]}
        api.access.acl.put(path=fields["path"], roles=fields["roleid"], propagate=int(fields["propagate"]), **who,
                           **({"delete": 1} if op == pve_plan.DELETE else {}))
        return
    collection = {pve_plan.ROLE: api.access.roles, pve_plan.GROUP: api.access.groups,
                  pve_plan.USER: api.access.users}[change.kind]
    values = _form(fields)
    if op == pve_plan.CREATE:
        id_name = {pve_plan.ROLE: "roleid", pve_plan.GROUP: "groupid", pve_plan.USER: "userid"}[change.kind]
        collection.post(**{id_name: key}, **{name: value for name, value in values.items() if value != ""})
    elif op == pve_plan.UPDATE:
        collection(key).put(**values)  # "" clears a text field, and `groups` ""  every membership
    else:
        collection(key).delete()


def _form(fields: dict) -> dict:
    """Change fields as Proxmox takes them: sets as comma lists, booleans as 0/1."""
    return {name: ",".join(sorted(value)) if isinstance(value, (set, frozenset))
            else int(value) if isinstance(value, bool) else value
            for name, value in fields.items()}


def _refusal(error: ResourceException, *doing: str) -> str:
    errors = f" ({', '.join(sorted(error.errors))})" if isinstance(error.errors, dict) and error.errors else ""
    return f"{' '.join(doing)}: Proxmox VE answered HTTP {error.status_code}: {error.content}{errors}"


def _flag(value) -> bool:
    return str(value).lower() in ("1", "true")


def _names(value) -> list[str]:
    """A Proxmox list: a JSON array or a comma-separated string."""
    if isinstance(value, list):
        return value
    return [name for name in (value or "").split(",") if name]


@dataclass(frozen=True)
class RealmSpec:
    """The LDAP realm through which Proxmox VE checks Gatehouse users' passwords against our
    directory (no user's password is ever pushed to Proxmox). It looks users up bound as
    `bind_dn` (our read-only account: the directory refuses anonymous searches)."""

    realm: str
    server: str
    port: int
    mode: str  # ldap | ldaps | ldap+starttls
    base_dn: str  # where the users are (ou=people,...)
    user_attr: str = "uid"
    comment: str = "Gatehouse directory"
    bind_dn: str | None = None
    bind_password: str | None = field(default=None, repr=False)  # write-only on Proxmox: never read back

    def options(self) -> dict:
        """The options Proxmox answers back, compared to find a realm unchanged."""
        return {"server1": self.server, "port": int(self.port), "mode": self.mode, "base_dn": self.base_dn,
                "user_attr": self.user_attr, "comment": self.comment,
                **({"bind_dn": self.bind_dn} if self.bind_dn else {})}


def ensure_realm(api, spec: RealmSpec, send_password: bool = True) -> str:
    """Creates the LDAP realm or brings its options to `spec`: "created", "updated" or
    "unchanged". A realm of that name of another type is not ours: PveFailure realm_conflict.

    Proxmox never answers the bind password, so it cannot be compared: it goes with a new
    realm, and to an existing one when `send_password` (the caller knows it changed) or when
    the bind DN changes. A spec without bind DN removes the realm's (anonymous searches)."""
    password = {"password": spec.bind_password} if spec.bind_dn and spec.bind_password else {}
    realms = {entry["realm"]: entry for entry in api.access.domains.get()}
    try:
        if spec.realm not in realms:
            api.access.domains.post(realm=spec.realm, type="ldap", **spec.options(), **password)
            return "created"
        if (kind := realms[spec.realm].get("type")) != "ldap":
            raise PveFailure(REALM_CONFLICT, f"The realm '{spec.realm}' exists on this Proxmox VE as type '{kind}', "
                                             "not ldap; Gatehouse does not change it (choose another realm name).")
        config = api.access.domains(spec.realm).get()
        have = {"mode": "ldap", **config}
        changed = {name: value for name, value in spec.options().items() if str(have.get(name, "")) != str(value)}
        if send_password or "bind_dn" in changed:
            changed.update(password)
        if not spec.bind_dn and "bind_dn" in config:
            changed["delete"] = "bind_dn,password"
        if not changed:
            return "unchanged"
        api.access.domains(spec.realm).put(**changed, **({"digest": config["digest"]} if "digest" in config else {}))
        return "updated"
    except ResourceException as error:
        if error.status_code in (401, 403):
            raise
        raise PveFailure(PROXMOX_ERROR, _refusal(error, "realm", spec.realm)) from None
