"""Every setting Gatehouse reads, in one place.

Each setting is an environment variable with a default; `gatehouse config` prints
this table and README.md carries it (a test keeps the two in step).
"""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from kernel import SERVICES


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    help: str
    minimum: int | None = None  # set: a whole number of at least this (checked at start by Config.check)


SETTINGS: tuple[Setting, ...] = (
    Setting("GATEHOUSE_DATA_DIR", "./data", "Folder for SQLite files, logs, the local broker and generated keys."),
    Setting("GATEHOUSE_AMQP_URI", "", "RabbitMQ to use. Empty: the run command uses one on 127.0.0.1:5672 or starts its own."),
    Setting("GATEHOUSE_BROKER_PORT", "5672", "AMQP port of the broker the run command starts when GATEHOUSE_AMQP_URI is empty."),
    Setting("GATEHOUSE_HTTP_HOST", "127.0.0.1", "Address the gateway listens on."),
    Setting("GATEHOUSE_HTTP_PORT", "8080", "Port the gateway listens on."),
    Setting("GATEHOUSE_GATEWAY_WORKERS", "2", "Gateway worker processes (gunicorn)."),
    Setting("GATEHOUSE_GATEWAY_THREADS", "8", "Threads per gateway worker."),
    *(
        Setting(f"GATEHOUSE_{name.upper()}_DB_URL", "",
                f"SQLAlchemy URL of the {name} database. Empty: sqlite file {name}.db in the data folder.")
        for name in SERVICES
    ),
    Setting("GATEHOUSE_DB_POOL_SIZE", "5", "Database connections each service process keeps open (as many again may open under load). PostgreSQL needs max_connections above 2 x this x the number of service processes."),
    Setting("GATEHOUSE_JWT_SECRET", "", "Key that signs access tokens; all gateway instances need the same. Empty: generated once into the data folder."),
    Setting("GATEHOUSE_ACCESS_TOKEN_TTL", "900", "Lifetime of an access token, in seconds."),
    Setting("GATEHOUSE_REFRESH_TOKEN_TTL", "1209600", "A session ends when its refresh token is not used for this many seconds."),
    Setting("GATEHOUSE_SECRET_KEY", "", "Key that encrypts stored secrets (SMTP password, Proxmox credentials); all instances need the same. Empty: generated once into the data folder."),
    Setting("GATEHOUSE_PUBLIC_URL", "", "Address users reach Gatehouse at: the console is at its `/`, links in mails start with it. Empty: `http://<GATEHOUSE_HTTP_HOST>:<GATEHOUSE_HTTP_PORT>`, where a host of `0.0.0.0` or `::` (every address) becomes this machine's name (`hostname -f`), or `127.0.0.1` when it has none. Set it when users come through a proxy or another name."),
    Setting("GATEHOUSE_LOGIN_MAX_FAILURES", "5", "Wrong passwords in a row after which an account is locked for a while (answers stay the same as for a wrong password)."),
    Setting("GATEHOUSE_LOGIN_LOCK_SECONDS", "60", "First lock of an account; each further failure doubles it, up to an hour."),
    Setting("GATEHOUSE_LOGIN_IP_MAX_FAILURES", "50", "Failed logins from one client IP within the window after which it gets 429 for a while."),
    Setting("GATEHOUSE_LOGIN_FAILURE_WINDOW", "900", "Seconds after which failed login attempts are forgotten."),
    Setting("GATEHOUSE_RATE_LIMIT_WINDOW", "3600", "Seconds of the fixed windows the rate limits below count in (mail and registration limits in identity's database, group and connection names in rbac's and tenancy's, certificate fetches in proxmox_sync's; shared by every instance).", minimum=1),
    Setting("GATEHOUSE_RESET_REQUESTS_PER_IP", "20", "Password reset requests per client IP per window; beyond: 429 with Retry-After. 0: no limit (as for each limit below).", minimum=0),
    Setting("GATEHOUSE_RESET_MAILS_PER_ACCOUNT", "3", "Self-service reset mails per account per window; beyond, no mail is sent (audited) and the answer stays the same.", minimum=0),
    Setting("GATEHOUSE_ADMIN_RESETS_PER_USER", "5", "Reset mails administrators send to one user per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_ADMIN_RESETS_PER_ADMIN", "50", "Reset mails one administrator sends per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_INVITATIONS_PER_ADMIN", "100", "Invitation mails (an invitation of K addresses counts K; resends count) one administrator sends per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_INVITATION_RESENDS_PER_ADDRESS", "5", "Invitation resends to one address per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_REGISTRATIONS_PER_IP", "20", "Self-registrations per client IP per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_SMTP_TESTS_PER_ADMIN", "10", "Test mails (`POST /api/v1/settings/smtp/test`) one super admin sends per window; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_GROUP_NAMES_PER_ADMIN", "100", "Group creations and changes of a group's name or GID one administrator attempts per window, refused or not (a taken name or GID tells it exists in another tenant); beyond: 429.", minimum=0),
    Setting("GATEHOUSE_CONNECTION_NAMES_PER_ADMIN", "30", "Connection creations and renames one administrator attempts per window, refused or not (a taken name tells it exists in another tenant); beyond: 429.", minimum=0),
    Setting("GATEHOUSE_CERT_FETCHES_PER_ADMIN", "30", "Certificate fetches (POST /api/v1/connections/tls/fingerprint: a TLS handshake with an address an administrator typed) one administrator makes per window, failed or not; beyond: 429.", minimum=0),
    Setting("GATEHOUSE_INVITATION_TTL", "86400", "Seconds an invitation link stays valid."),
    Setting("GATEHOUSE_PASSWORD_RESET_TTL", "3600", "Seconds a password reset link stays valid."),
    Setting("GATEHOUSE_LOGIN_TICKET_TTL", "300", "Seconds the single-use ticket of a sign-in's password step stays valid for its second factor (TOTP or recovery code); at most 300."),
    Setting("GATEHOUSE_MAIL_MAX_ATTEMPTS", "12", "Delivery attempts of a mail (pauses of 2 s doubling up to 30 min: about an hour in all) before it is given up and audited."),
    Setting("GATEHOUSE_GID_MIN", "5000", "Lowest gidNumber given to a new LDAP group when none is chosen; a chosen one must lie in the range too."),
    Setting("GATEHOUSE_GID_MAX", "9999", "Highest gidNumber of new LDAP groups; kept below 10000, where uidNumbers start."),
    Setting("GATEHOUSE_RPC_TIMEOUT", "10", "Seconds the gateway waits for a service to answer."),
    Setting("GATEHOUSE_REPLY_QUEUE_TTL", "60", "Seconds a service instance's RPC reply queue outlives the instance when it dies without closing it (the broker deletes it then)."),
    Setting("GATEHOUSE_RPC_POOL_SIZE", "8", "RPC clients in use at once per gateway process (they share one AMQP connection)."),
    Setting("GATEHOUSE_TRUSTED_PROXIES", "0", "Reverse proxies in front of the gateway whose X-Forwarded-For is trusted for the client IP."),
    Setting("GATEHOUSE_CORS_ORIGINS", "", "Comma-separated browser origins (scheme://host[:port]) allowed to call the API from another site (CORS); empty: none."),
    Setting("GATEHOUSE_QUEUE_TYPE", "classic", "Type of the shared durable queues (event consumers, their dead letters, `rpc-<service>`): `classic` (one node) or `quorum` (replicated on a RabbitMQ cluster). Changing it on a broker that has the queues is a migration: see docs/deployment.md."),
    Setting("GATEHOUSE_QUEUE_DELIVERY_LIMIT", "100000", "With quorum queues: deliveries of one message (each transient failure requeues it) after which the broker parks it in its dead-letter queue. Large, so an outage of a dependency only delays events; declared explicitly, so RabbitMQ 3.x (no limit) and 4.x (default 20) behave the same.", minimum=1),
    Setting("GATEHOUSE_SERVICE_MAX_WORKERS", "10", "Concurrent workers per service instance (nameko max_workers, also the prefetch)."),
    Setting("GATEHOUSE_OUTBOX_POLL_INTERVAL", "1.0", "Seconds between outbox scans when no commit woke the relay (events of other instances, recovery)."),
    Setting("GATEHOUSE_SYNC_INTERVAL", "300", "Seconds between full reconciles of each sync target (LDAP, every Proxmox connection); events propagate changes at once in between, and a reconcile also runs at start and on demand."),
    Setting("GATEHOUSE_AUDIT_RETENTION_DAYS", "365", "Days an audit record is kept; older ones are purged (oldest first), the chain stays verifiable from a checkpoint, and each purge is itself audited."),
    Setting("GATEHOUSE_AUDIT_PURGE_INTERVAL", "3600", "Seconds between purges of expired audit records (the first runs when audit starts)."),
    Setting("GATEHOUSE_AUDIT_BATCH_SIZE", "500", "Events audit stores per transaction at most (it prefetches four batches from the broker)."),
    Setting("GATEHOUSE_AUDIT_BATCH_WAIT", "0.05", "Seconds audit waits for a batch to fill before storing what it has: the added latency when traffic is low."),
    Setting("GATEHOUSE_AUDIT_VERIFY_TIMEOUT", "600", "Seconds the gateway waits for an audit chain verification (it reads every kept record)."),
    Setting("GATEHOUSE_INVENTORY_INTERVAL", "30", "Seconds between polls of every Proxmox VE connection's inventory (nodes, VMs, containers, storages); a failed poll keeps the last inventory."),
    Setting("GATEHOUSE_DIRECTORY", "local", "`local`: the run command starts an OpenLDAP directory of its own (slapd, data in the data folder) and points the LDAP sync at it when no directory is set; `off`: it does not (set one with PUT /api/v1/settings/ldap)."),
    Setting("GATEHOUSE_DIRECTORY_HOST", "127.0.0.1", "Address the directory of `gatehouse up` / `gatehouse directory` listens on."),
    Setting("GATEHOUSE_DIRECTORY_PORT", "1389", "LDAP port of that directory."),
    Setting("GATEHOUSE_DIRECTORY_BASE_DN", "dc=gatehouse,dc=local", "Base DN of that directory (its admin is cn=admin,<base DN>)."),
    Setting("GATEHOUSE_DIRECTORY_ADMIN_PASSWORD", "", "Password of that directory's admin. Empty: generated once into the data folder (directory/admin.secret)."),
    Setting("GATEHOUSE_DIRECTORY_READER_PASSWORD", "", "Password of that directory's read-only account cn=reader,<base DN> (Proxmox VE realms bind as it; the directory allows no anonymous access). Empty: generated once into the data folder (directory/reader.secret)."),
    Setting("GATEHOUSE_ADMIN_USERNAME", "superadmin", "Username of the first super admin, created on first start."),
    Setting("GATEHOUSE_ADMIN_PASSWORD", "", "Password of the first super admin. Empty: a random one is printed once."),
    Setting("GATEHOUSE_METRICS_TOKEN", "", "Bearer token Prometheus must send to read the gateway's /metrics (Authorization: Bearer ...). Empty: /metrics is open on the gateway port."),
    Setting("GATEHOUSE_METRICS_PORT", "0", "Port each service process serves its Prometheus metrics on (/metrics); 0: none. The run command gives the services consecutive ports from this one (identity, rbac, tenancy, audit, proxmox_sync)."),
    Setting("GATEHOUSE_METRICS_HOST", "127.0.0.1", "Address the services' metrics ports listen on (0.0.0.0 in containers, for Prometheus to reach them)."),
    Setting("GATEHOUSE_LOG_LEVEL", "INFO", "Log level of every process."),
    Setting("GATEHOUSE_FAILPOINTS", "", "Test-only fault injection, e.g. outbox.after_commit=identity.user_registered kills the process at that point. Never set in production."),
)

BY_ENV = {s.env: s for s in SETTINGS}
KNOWN_ENV = frozenset(BY_ENV)
QUEUE_TYPES = ("classic", "quorum")
DIRECTORY_MODES = ("local", "off")


class ConfigError(ValueError):
    """A setting holds a value Gatehouse cannot run with; the message names it."""


@dataclass(frozen=True)
class Config:
    """Settings resolved from an environment mapping."""

    values: dict

    @classmethod
    def from_env(cls, environ=None) -> "Config":
        environ = os.environ if environ is None else environ
        values = {s.env: environ.get(s.env, s.default) or s.default for s in SETTINGS}
        if not values["GATEHOUSE_PUBLIC_URL"]:
            values["GATEHOUSE_PUBLIC_URL"] = default_public_url(values["GATEHOUSE_HTTP_HOST"],
                                                                values["GATEHOUSE_HTTP_PORT"])
        values["GATEHOUSE_PUBLIC_URL"] = values["GATEHOUSE_PUBLIC_URL"].rstrip("/")
        return cls(values)

    def __getitem__(self, env: str) -> str:
        return self.values[env]

    @property
    def data_dir(self) -> Path:
        path = Path(self["GATEHOUSE_DATA_DIR"]).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def amqp_uri(self) -> str:
        return self["GATEHOUSE_AMQP_URI"] or f"amqp://guest:guest@127.0.0.1:{self['GATEHOUSE_BROKER_PORT']}//"

    def db_url(self, service: str) -> str:
        return (self[f"GATEHOUSE_{service.upper()}_DB_URL"]
                or f"sqlite:///{self.data_dir / (service + '.db')}")

    def number(self, env: str) -> float:
        return float(self[env])

    def integer(self, env: str) -> int:
        minimum = BY_ENV[env].minimum
        if minimum is None:
            return int(self[env])
        raw = self[env]
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ConfigError(f"{env}={raw!r}: must be a whole number of at least {minimum}")
        return value

    def check(self) -> None:
        """Raises ConfigError naming the first setting Gatehouse cannot run with."""
        for setting in SETTINGS:
            if setting.minimum is not None:
                self.integer(setting.env)
        _ = self.queue_type, self.local_directory

    def choice(self, env: str, choices: tuple[str, ...]) -> str:
        """The setting's value, whatever its case and spaces, if it is one of `choices`."""
        value = self[env].strip().lower()
        if value not in choices:
            raise ConfigError(f"{env}={self[env]!r}: must be one of {', '.join(choices)}")
        return value

    @property
    def local_directory(self) -> bool:
        """Whether the run command starts a directory of its own (GATEHOUSE_DIRECTORY)."""
        return self.choice("GATEHOUSE_DIRECTORY", DIRECTORY_MODES) == "local"

    @property
    def queue_type(self) -> str:
        return self.choice("GATEHOUSE_QUEUE_TYPE", QUEUE_TYPES)

    @property
    def delivery_limit(self) -> int:
        return self.integer("GATEHOUSE_QUEUE_DELIVERY_LIMIT")

    @property
    def jwt_secret(self) -> str:
        if self["GATEHOUSE_JWT_SECRET"]:
            return self["GATEHOUSE_JWT_SECRET"]
        return persistent_secret(self.data_dir / "jwt.key")

    @property
    def secret_key(self) -> str:
        if self["GATEHOUSE_SECRET_KEY"]:
            return self["GATEHOUSE_SECRET_KEY"]
        return persistent_secret(self.data_dir / "secret.key")

    def nameko(self) -> dict:
        """The config dict nameko containers and standalone proxies take."""
        return {
            "AMQP_URI": self.amqp_uri,
            "max_workers": self.integer("GATEHOUSE_SERVICE_MAX_WORKERS"),
            "serializer": "json",
            "GATEHOUSE": self,
        }


WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


def default_public_url(host: str, port: str) -> str:
    """Where users reach a gateway listening on host:port when GATEHOUSE_PUBLIC_URL is not set.

    A gateway on every address (0.0.0.0, ::) is there to be reached from other machines, so
    mailed links name this machine (its fully qualified name); 127.0.0.1 when it has no name.
    """
    host = host.strip()
    if host in WILDCARD_HOSTS:
        name = socket.getfqdn()
        host = name if name and name not in ("localhost", "localhost.localdomain") else "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def persistent_secret(path: Path) -> str:
    """A random key created once, readable only by its owner, reused across restarts."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    # Written aside then linked into place: concurrent first starts agree on one key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)
