"""A Proxmox VE stand-in for tests: a real HTTPS server that refuses what Proxmox VE would.

It loads the official API schema (`tests/data/pve-api/apidata.json.gz`, a copy of the
Proxmox VE API viewer's data kept in the repository so any checkout can test; or the file
named by GATEHOUSE_PVE_APIDATA), routes `/api2/json/<path>` by the schema's path templates and
answers HTTP 400 in Proxmox's shape (`{"errors": {param: message}, "data": null}`) to any
path, method or parameter the schema does not allow: unknown parameters, wrong types,
enums, patterns, simple formats, lengths and bounds, missing required ones. Code that
passes tests against it sends requests a real Proxmox VE accepts.

Authentication works like Proxmox VE: `POST /access/ticket` (username, password) answers
a ticket and a CSRFPreventionToken; the ticket rides in the `PVEAuthCookie` cookie and
writes need the `CSRFPreventionToken` header; or an API token header
`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`. Anything else gets 401.

TLS like a Proxmox node: a CA (`ca_pem`, as pve-root-ca.pem) signs the server's
certificate (SAN 127.0.0.1 and localhost), whose SHA-256 `fingerprint` is shown the way
Proxmox shows it; both are made at start with `cryptography`.

Extension point: handlers keyed by (method, path template), module-wide (`@handler`) or
per server (`standin.handlers[...] = fn`); fn(standin, call) returns the `data` of the
answer or raises PveError. `standin.state` holds the in-memory world handlers share, and
`standin.calls` records every request (method, path, params, status). A request the schema
allows but no handler implements answers 501, so a missing handler is never mistaken for
a refusal.

    with PveStandin() as pve:
        pve.add_token("gatehouse@pve!sync", "s3cret")
        ProxmoxAPI("127.0.0.1", port=pve.port, user="gatehouse@pve", token_name="sync",
                   token_value="s3cret", verify_ssl=False).version.get()
"""
from __future__ import annotations

import datetime
import gzip
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

APIDATA = Path(os.environ.get("GATEHOUSE_PVE_APIDATA")
               or Path(__file__).resolve().parent.parent / "data" / "pve-api" / "apidata.json.gz")
PREFIX = "/api2/json"


class PveError(Exception):
    """An answer other than 200: status, Proxmox's reason phrase, and per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


def parameter_error(errors: dict) -> PveError:
    return PveError(400, "Parameter verification failed.", errors)


# --- the schema ----------------------------------------------------------------------------

# Proxmox VE's formats that a regular expression states well enough; any other format is
# accepted as is. A "<format>-list" is a list of them separated by commas, semicolons or spaces.
FORMATS = {
    "pve-userid": r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+",
    "pve-realm": r"[A-Za-z][A-Za-z0-9.\-_]+",
    "pve-groupid": r"[A-Za-z0-9.\-_]+",
    "pve-roleid": r"[A-Za-z0-9.\-_]+",
    "pve-poolid": r"[A-Za-z0-9.\-_/]+",
    "pve-tokenid": r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+",
    "pve-node": r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?",
    "pve-storage-id": r"[a-z][a-z0-9\-_.]*[a-z0-9]",
    "pve-configid": r"[a-z][a-z0-9_]+",
    "pve-priv": r"[A-Za-z.]+",
    "email": r"[^\s@]+@[^\s@]+",
    "email-opt": r"([^\s@]+@[^\s@]+)?",
}
LIST_SEPARATOR = re.compile(r"[,;\s]+")
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Endpoint:
    template: str  # /access/users/{userid}
    pattern: re.Pattern
    info: dict  # method -> the schema's description of it


class Schema:
    """The API tree of apidata.json, flattened to routable endpoints."""

    def __init__(self, tree: list[dict]):
        self.endpoints: list[Endpoint] = []
        stack = list(tree)
        while stack:
            node = stack.pop()
            stack.extend(node.get("children") or ())
            regex = re.sub(r"\\\{([^}]+)\\\}", lambda m: f"(?P<{_group(m.group(1))}>[^/]+)", re.escape(node["path"]))
            self.endpoints.append(Endpoint(node["path"], re.compile(f"^{regex}/?$"), node.get("info") or {}))
        # Literal segments win over placeholders (/access/users/{userid} vs /access/users/x/token).
        self.endpoints.sort(key=lambda e: (e.template.count("{"), -len(e.template)))
        self.by_template = {e.template: e for e in self.endpoints}

    @classmethod
    def load(cls, path: Path = APIDATA) -> "Schema":
        with gzip.open(path) as f:
            return cls(json.load(f))

    def resolve(self, path: str) -> tuple[Endpoint, dict] | None:
        for endpoint in self.endpoints:
            if match := endpoint.pattern.match(path):
                names = re.findall(r"\{([^}]+)\}", endpoint.template)
                return endpoint, {name: match.group(_group(name)) for name in names}
        return None

    @staticmethod
    def check(method_info: dict, params: dict) -> dict:
        """Errors of a call's parameters (path parameters included) as Proxmox words them."""
        spec = method_info.get("parameters") or {}
        properties = spec.get("properties") or {}
        errors = {}
        for name, value in params.items():
            prop = _property(properties, name)
            if prop is None:
                if spec.get("additionalProperties") in (0, False):
                    errors[name] = "property is not defined in schema and the schema does not allow additional properties"
                continue
            if problem := check_value(prop, value):
                errors[name] = problem
            elif (partner := prop.get("requires")) and partner not in params:
                errors[partner] = f"parameter '{partner}' is required together with '{name}'"
        for name, prop in properties.items():
            if "[n]" not in name and not prop.get("optional") and name not in params and "default" not in prop:
                errors.setdefault(name, "property is missing and it is not optional")
        return errors


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def _property(properties: dict, name: str) -> dict | None:
    """The schema of a parameter; `net3` matches the family `net[n]`."""
    if name in properties:
        return properties[name]
    if match := re.match(r"^([a-z]+)(\d+)$", name):
        return properties.get(f"{match.group(1)}[n]")
    return None


def check_value(prop: dict, value: Any) -> str | None:
    """What is wrong with one value (a str from a form or query, or a JSON value), or None."""
    if "oneOf" in prop:  # variants by a sibling's type; accept what any variant accepts
        return None if any(check_value({**variant, "optional": 1}, value) is None for variant in prop["oneOf"]) \
            else "value matches none of the allowed variants"
    kind = prop.get("type", "string")
    if kind == "array":
        values = value if isinstance(value, list) else [value]
        for item in values:
            if problem := check_value(prop.get("items") or {}, item):
                return problem
        return None
    if isinstance(value, list):
        if len(value) != 1:
            return "property may only be given once"
        value = value[0]
    if kind == "boolean":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return None
        return None if str(value).lower() in BOOLEANS else f"type check ('boolean') failed - got '{value}'"
    if kind in ("integer", "number"):
        number = _number(kind, value)
        if number is None:
            return f"type check ('{kind}') failed - got '{value}'"
        if "minimum" in prop and number < prop["minimum"]:
            return f"value must have a minimum value of {prop['minimum']}"
        if "maximum" in prop and number > prop["maximum"]:
            return f"value must have a maximum value of {prop['maximum']}"
        return None
    if kind == "null":
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return f"type check ('{kind}') failed - got '{value}'"
    text = str(value)
    if "maxLength" in prop and len(text) > prop["maxLength"]:
        return f"value may only be {prop['maxLength']} characters long"
    if "minLength" in prop and len(text) < prop["minLength"]:
        return f"value must be at least {prop['minLength']} characters long"
    if "enum" in prop and text not in [str(option) for option in prop["enum"]]:
        return f"value '{text}' does not have a value in the enumeration '{', '.join(map(str, prop['enum']))}'"
    if "pattern" in prop and not re.fullmatch(prop["pattern"], text):
        return "value does not match the regex pattern"
    if isinstance(prop.get("format"), str) and not _format_ok(prop["format"], text):
        return f"value '{text}' does not look like a valid {prop['format']}"
    return None


def _number(kind: str, value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if kind == "number" or isinstance(value, int) else None
    try:
        return int(value) if kind == "integer" and INTEGER.match(value) else (float(value) if kind == "number" else None)
    except ValueError:
        return None


def _format_ok(fmt: str, text: str) -> bool:
    if fmt.endswith("-list") and fmt[:-5] in FORMATS:
        return all(re.fullmatch(FORMATS[fmt[:-5]], item) for item in LIST_SEPARATOR.split(text.strip()) if item)
    return fmt not in FORMATS or re.fullmatch(FORMATS[fmt], text) is not None


# --- the server's world ------------------------------------------------------------------------


@dataclass
class Call:
    """One request as a handler sees it."""

    method: str
    template: str
    params: dict  # query and body merged; path parameters too
    path_params: dict
    userid: str  # who is signed in (user@realm)
    token: str | None  # the API token id when one signed the request


@dataclass
class State:
    """What the stand-in knows; handlers of later issues add their own keys to `data`."""

    passwords: dict = field(default_factory=dict)  # userid -> password
    tokens: dict = field(default_factory=dict)  # user@realm!name -> secret
    tickets: dict = field(default_factory=dict)  # ticket -> (userid, csrf token)
    version: dict = field(default_factory=lambda: {"version": "8.3.2", "release": "8.3",
                                                   "repoid": "3e76eec21c4a14a7"})
    data: dict = field(default_factory=dict)


HANDLERS: dict[tuple[str, str], Callable[["PveStandin", Call], Any]] = {}


def handler(method: str, template: str):
    """Registers fn(standin, call) for every stand-in; the template must exist in the schema."""

    def register(fn):
        HANDLERS[(method, template)] = fn
        return fn

    return register


@handler("GET", "/version")
def _version(pve: "PveStandin", call: Call):
    return dict(pve.state.version)


@handler("GET", "/access/ticket")
def _ticket_page(pve: "PveStandin", call: Call):
    return None


@handler("POST", "/access/ticket")
def _create_ticket(pve: "PveStandin", call: Call):
    userid = call.params["username"]
    if "@" not in userid and call.params.get("realm"):
        userid = f"{userid}@{call.params['realm']}"
    password = call.params["password"]
    known = pve.state.passwords.get(userid)
    if password in pve.state.tickets and pve.state.tickets[password][0] == userid:
        known = password  # a valid ticket renews itself
    if known is None or not secrets.compare_digest(known, password):
        raise PveError(401, "authentication failure")
    ticket = f"PVE:{userid}:{secrets.token_hex(4).upper()}::{secrets.token_urlsafe(32)}"
    csrf = f"{secrets.token_hex(4).upper()}:{secrets.token_urlsafe(24)}"
    pve.state.tickets[ticket] = (userid, csrf)
    return {"username": userid, "ticket": ticket, "CSRFPreventionToken": csrf, "clustername": "standin"}


# --- the server ---------------------------------------------------------------------------------


class PveStandin:
    def __init__(self, schema: Schema | None = None, host: str = "127.0.0.1", port: int = 0):
        self.schema = schema or _default_schema()
        self.host = host
        self._port = port  # 0: any free port
        self.state = State()
        self.handlers = dict(HANDLERS)
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._dir = None

    # setup

    def add_user(self, userid: str, password: str) -> None:
        self.state.passwords[userid] = password

    def add_token(self, token_id: str, secret: str) -> None:
        self.state.tokens[token_id] = secret

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> "PveStandin":
        self._dir = tempfile.TemporaryDirectory(prefix="pve-standin-")
        self.ca_pem, self.cert_pem, self.fingerprint, certfile, keyfile = _make_certificates(Path(self._dir.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._server = make_server(self.host, self._port, self._wsgi, threaded=True, ssl_context=context,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pve-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
        if self._dir:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "PveStandin":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # requests

    @Request.application
    def _wsgi(self, request: Request) -> Response:
        params: dict = {}
        status = 200
        try:
            data = self._answer(request, params)
            return _json({"data": data})
        except PveError as error:
            status = error.status
            body = {"data": None, **({"errors": error.errors} if error.errors else {}), "message": error.message}
            return _json(body, f"{error.status} {error.message}")
        finally:
            with self._lock:
                self.calls.append({"method": request.method, "path": request.path, "params": params,
                                   "status": status})

    def _answer(self, request: Request, params: dict):
        if not request.path.startswith(PREFIX + "/"):
            raise PveError(404, "Not found")
        path = request.path[len(PREFIX):]
        resolved = self.schema.resolve(path)
        if resolved is None:
            raise parameter_error({"path": f"no such API path '{path}'"})
        endpoint, path_params = resolved
        method_info = endpoint.info.get(request.method)
        if method_info is None:
            raise parameter_error({"method": f"method '{request.method} {endpoint.template}' is not implemented"})
        params.update(_parameters(request))
        caller = self._authenticate(request, method_info)
        errors = Schema.check(method_info, {**params, **path_params})
        if errors:
            raise parameter_error(errors)
        fn = self.handlers.get((request.method, endpoint.template))
        if fn is None:
            raise PveError(501, f"stand-in has no handler for {request.method} {endpoint.template}")
        call = Call(request.method, endpoint.template, {**params, **path_params}, path_params, *caller)
        return fn(self, call)

    def _authenticate(self, request: Request, method_info: dict) -> tuple[str | None, str | None]:
        """(userid, token id) of the caller; world-readable calls need nobody."""
        if (method_info.get("permissions") or {}).get("user") == "world":
            return None, None
        header = request.headers.get("Authorization", "")
        if header.startswith("PVEAPIToken="):
            token_id, _, secret = header[len("PVEAPIToken="):].partition("=")
            known = self.state.tokens.get(token_id)
            if known is None or not secrets.compare_digest(known, secret):
                raise PveError(401, "invalid token value!")
            if not method_info.get("allowtoken", 1):
                raise PveError(401, "API tokens are not allowed for this call")
            return token_id.partition("!")[0], token_id
        ticket = request.cookies.get("PVEAuthCookie")
        if not ticket:
            raise PveError(401, "No ticket")
        holder = self.state.tickets.get(ticket)
        if holder is None:
            raise PveError(401, "invalid PVE ticket")
        if request.method != "GET" and request.headers.get("CSRFPreventionToken") != holder[1]:
            raise PveError(401, "Permission check failed (invalid csrf token)")
        return holder[0], None


class SilentServer:
    """Accepts TCP connections and never answers: a Proxmox VE that hangs (client timeouts)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self._socket = socket.create_server((host, 0))
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _accept(self):
        while True:
            try:
                self._accepted.append(self._socket.accept()[0])
            except OSError:
                return

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._socket.close()
        for conn in self._accepted:
            conn.close()


class _QuietHandler(WSGIRequestHandler):
    # Keep-alive and no Nagle, like pveproxy: otherwise every request pays a TLS handshake and a
    # delayed-ACK stall (~75 ms a request, against a few ms for a real node).
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log(self, *args, **kwargs):  # the test output stays readable
        pass


_SCHEMA: Schema | None = None


def _default_schema() -> Schema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = Schema.load()
    return _SCHEMA


def _parameters(request: Request) -> dict:
    """Query and body (form or JSON) merged; a repeated form key becomes a list."""
    params: dict = {}
    for source in (request.args, request.form):
        for key in source:
            values = source.getlist(key)
            params[key] = values if len(values) > 1 else values[0]
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update(body)
    return params


def _json(body: dict, status: int | str = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _make_certificates(folder: Path) -> tuple[str, str, str, str, str]:
    """A CA and the server certificate it signs: (ca_pem, cert_pem, fingerprint, certfile, keyfile)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment stand-in CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "standin.pve.local")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    certfile, keyfile = folder / "pve-ssl.pem", folder / "pve-ssl.key"
    certfile.write_text(cert_pem + ca_pem)
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    return ca_pem, cert_pem, fingerprint, str(certfile), str(keyfile)


# The handlers of each area register themselves on import (module-wide `@handler`).
from tests.pve_standin import access, cluster  # noqa: E402,F401
