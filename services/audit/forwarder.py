"""Forwarding the audit trail to a SIEM: syslog, RFC 5424, over UDP or TCP (RFC 6587 framing).

The forwarder follows the trail from `ForwarderState.last_seq` and advances it only after
a batch was handed to the collector, so nothing is skipped across outages (at-least-once:
a batch cut short by a failure is sent again). It never touches recording: it only reads
records, and a failure just records `last_error` and waits (1 s doubling to a minute).

Several audit instances may run: a lease taken by a conditional update of `updated_at`
(compare-and-set on the value last written, so that column doubles as the fencing token)
lets one forward while the others wait; a holder that stops renewing loses it after
LEASE seconds.

What "handed to the collector" means: TCP: the bytes were accepted by a live connection
(a collector that went away is noticed before and after each batch, and the batch is
sent again). UDP has no acknowledgement at all: a collector that is down is noticed only
through ICMP "port unreachable" (quick on a LAN, never through some firewalls), so UDP
can lose records in an outage. Prefer TCP when every record counts.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from contracts.audit import DEFAULT_APP_NAME, PROTOCOLS, config_problems  # noqa: F401 - shared, re-exported
from kernel.db import aware, iso
from kernel.envelope import utc_now
from kernel.service import Periodic
from services.audit.queries import public_record
from services.audit.storage import AuditRecord, ForwarderState, Setting

log = logging.getLogger("gatehouse.audit.forwarder")

NAME = "syslog"  # the ForwarderState row
SETTING = "forwarding"  # the Setting row holding the configuration
BATCH = 500
LEASE = timedelta(seconds=10)
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 60.0
CONNECT_TIMEOUT = 5.0
MAX_UDP_MESSAGE = 60_000  # below the 65,507-byte UDP payload limit; longer messages are cut

# RFC 5424 fields
FACILITY_LOG_AUDIT = 13
SEVERITY = {"success": 6, "failure": 5}  # informational, notice
SD_ID = "gatehouse@32473"  # 32473: the enterprise number RFC 5612 reserves for examples and documentation
NIL = "-"
BOM = "\ufeff"


# --- configuration (pure) -------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    host: str
    port: int
    protocol: str
    app_name: str = DEFAULT_APP_NAME


def normalized(config: dict) -> dict:
    return {"enabled": config["enabled"], "host": config.get("host") or None, "port": config.get("port"),
            "protocol": config.get("protocol") or None, "app_name": config.get("app_name") or DEFAULT_APP_NAME}


def target_of(config: dict | None) -> Target | None:
    """Where to forward, or None when forwarding is off."""
    if not config or not config.get("enabled"):
        return None
    return Target(config["host"], config["port"], config["protocol"], config.get("app_name") or DEFAULT_APP_NAME)


# --- RFC 5424 (pure) ------------------------------------------------------------------

def _sd_value(value) -> str:
    """PARAM-VALUE: `"`, `\\` and `]` are escaped with a backslash (RFC 5424 6.3.3)."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(value, longest: int) -> str:
    """A header field: printable US-ASCII without spaces, or NIL."""
    text = "".join(c for c in str(value or "") if 33 <= ord(c) <= 126)[:longest]
    return text or NIL


def _timestamp(value: str | None) -> str:
    """RFC 3339 as RFC 5424 wants it (at most 6 fractional digits), or NIL."""
    try:
        moment = aware(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return NIL
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def rfc5424(record: dict, app_name: str, hostname: str, procid: str | int | None = None) -> bytes:
    """One syslog message for one audit record (`record`: a public record, see queries.public_record).

    Structured data carries the event id, type, outcome, actor and tenants for the SIEM's
    indexes; MSG is the whole record as JSON (UTF-8, so it starts with a BOM)."""
    priority = FACILITY_LOG_AUDIT * 8 + SEVERITY.get(record.get("outcome"), 6)
    actor = record.get("actor") or {}
    params = {"seq": record.get("seq"), "event_id": record.get("id"), "type": record.get("type"),
              "outcome": record.get("outcome"), "actor": actor.get("username"), "actor_id": actor.get("user_id"),
              "tenant": " ".join(record.get("tenant_ids") or ())}
    data = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params.items() if value not in (None, ""))
    header = " ".join((f"<{priority}>1", _timestamp(record.get("occurred_at")), _header_field(hostname, 255),
                       _header_field(app_name, 48), _header_field(procid, 128), _header_field(record.get("action"), 32)))
    message = json.dumps(record, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return f"{header} [{SD_ID} {data}] {BOM}{message}".encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 framing for TCP: "<length> <message>"."""
    return b"%d %s" % (len(message), message)


# --- the transports ----------------------------------------------------------------------

class Unreachable(Exception):
    """The collector did not take the messages; they must be sent again later."""


class UdpSender:
    """A connected UDP socket, so that ICMP "port unreachable" surfaces as an error."""

    def __init__(self, target: Target):
        self.target = target
        self.sock: socket.socket | None = None

    def send(self, messages: list[bytes]) -> None:
        try:
            if self.sock is None:
                self.sock = _udp_socket(self.target)
            for message in messages:
                self.sock.send(message[:MAX_UDP_MESSAGE])
                _raise_pending_error(self.sock)
        except OSError as error:
            self.close()
            raise Unreachable(_describe(self.target, error)) from None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class TcpSender:
    """One persistent TCP connection, octet-counted frames; reconnects after a failure."""

    def __init__(self, target: Target):
        self.target = target
        self.sock: socket.socket | None = None

    def send(self, messages: list[bytes]) -> None:
        try:
            if self.sock is not None and _closed_by_peer(self.sock):
                self.close()  # the collector went away since the last batch: a new connection
            if self.sock is None:
                self.sock = socket.create_connection((self.target.host, self.target.port), timeout=CONNECT_TIMEOUT)
            self.sock.sendall(b"".join(octet_counted(message) for message in messages))
            if _closed_by_peer(self.sock):  # it went away while we sent: the batch may be lost
                raise ConnectionResetError(errno.ECONNRESET, "connection closed by the collector")
        except OSError as error:
            self.close()
            raise Unreachable(_describe(self.target, error)) from None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _udp_socket(target: Target) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.connect(address)
    return sock


def _raise_pending_error(sock: socket.socket) -> None:
    if code := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        raise OSError(code, os.strerror(code))


def _closed_by_peer(sock: socket.socket) -> bool:
    """A syslog collector never writes: a readable socket means it closed (EOF) or reset."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _describe(target: Target, error: OSError) -> str:
    return f"{target.protocol}://{target.host}:{target.port}: {error.strerror or error}"


def sender_for(target: Target):
    return (TcpSender if target.protocol == "tcp" else UdpSender)(target)


# --- the loop ------------------------------------------------------------------------------

class Forwarder:
    """Sends the records after ForwarderState.last_seq to the configured collector.

    `run_once(db, target)` is called about every second (the Forwarding loop below); it
    sends until caught up, a failure, or the lease is lost. Not thread-safe: one caller.
    """

    def __init__(self, hostname: str | None = None, clock=utc_now, monotonic=time.monotonic):
        self.hostname = hostname or socket.gethostname()
        self.procid = os.getpid()
        self.clock = clock
        self.monotonic = monotonic
        self.sender = None
        self.lease: datetime | None = None  # the updated_at this instance last wrote
        self.pause = 0.0
        self.resume_at = 0.0

    def run_once(self, db, target: Target | None) -> int:
        """Returns how many records were sent."""
        if target is None:
            self.close()
            return 0
        if self.sender is None or self.sender.target != target:
            self.close()
            self.sender = sender_for(target)
            self.resume_at = 0.0  # a new collector is tried at once
        if self.monotonic() < self.resume_at:
            return 0
        sent = 0
        while True:
            claimed = self._claim(db)
            if claimed is None:
                return sent
            last_seq = claimed
            with db.unit_of_work() as uow:
                records = uow.session.scalars(sa.select(AuditRecord).where(AuditRecord.seq > last_seq)
                                              .order_by(AuditRecord.seq).limit(BATCH)).all()
                public = [public_record(record) for record in records]
            if not public:
                return sent
            messages = [rfc5424(record, target.app_name, self.hostname, self.procid) for record in public]
            try:
                self.sender.send(messages)
            except Unreachable as error:
                self._failed(db, str(error))
                return sent
            if not self._advance(db, public[-1]["seq"]):
                return sent
            self.pause = 0.0
            sent += len(public)
            if len(public) < BATCH:
                return sent

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    # The lease: updated_at is renewed on every write; others wait until it is LEASE old.

    def _claim(self, db) -> int | None:
        """The last_seq to continue from if there is something to send and this instance holds
        (or just took) the lease, else None. An idle forwarder writes nothing."""
        now = self.clock()
        with db.unit_of_work() as uow:
            state = uow.session.get(ForwarderState, NAME)
            last_seq = state.last_seq if state else 0
            if uow.session.scalar(sa.select(AuditRecord.seq).where(AuditRecord.seq > last_seq).limit(1)) is None:
                return None
            if state is None:  # forwarding was switched on before this table knew it: from the start
                uow.session.add(ForwarderState(name=NAME, last_seq=0, updated_at=now))
                try:
                    uow.session.commit()
                except IntegrityError:  # another instance made it first
                    return None
                self.lease = now
                return 0
            seen = aware(state.updated_at)
            if seen != self.lease and seen is not None and now - seen < LEASE:
                return None  # another instance forwards
            taken = uow.session.execute(sa.update(ForwarderState).where(
                ForwarderState.name == NAME, ForwarderState.updated_at == state.updated_at,
            ).values(updated_at=now)).rowcount
            uow.session.commit()
            self.lease = now if taken else None
            return last_seq if taken else None

    def _advance(self, db, last_seq: int) -> bool:
        now = self.clock()
        with db.unit_of_work() as uow:
            moved = uow.session.execute(sa.update(ForwarderState).where(
                ForwarderState.name == NAME, ForwarderState.updated_at == self.lease,
            ).values(last_seq=last_seq, last_error=None, updated_at=now)).rowcount
            uow.session.commit()
        self.lease = now if moved else None
        return bool(moved)

    def _failed(self, db, error: str) -> None:
        self.pause = min(LONGEST_PAUSE, max(FIRST_PAUSE, self.pause * 2))
        self.resume_at = self.monotonic() + self.pause
        log.warning("audit forwarding failed, next try in %.0f s: %s", self.pause, error)
        now = self.clock()
        with db.unit_of_work() as uow:
            kept = uow.session.execute(sa.update(ForwarderState).where(
                ForwarderState.name == NAME, ForwarderState.updated_at == self.lease,
            ).values(last_error=error[:500], updated_at=now)).rowcount
            uow.session.commit()
        self.lease = now if kept else None


def start_position(session, now: datetime) -> None:
    """Forwarding switched on: start after the newest record. The lease is left expired, so
    an instance still sending to an old configuration cannot move the position any more."""
    newest = session.scalar(sa.select(sa.func.max(AuditRecord.seq))) or 0
    state = session.get(ForwarderState, NAME) or ForwarderState(name=NAME)
    state.last_seq, state.last_error, state.updated_at = newest, None, now - LEASE
    session.add(state)


# --- configuration storage and the service's loop -----------------------------------------

def read_config(session) -> dict:
    row = session.get(Setting, SETTING)
    return json.loads(row.value) if row else {"enabled": False}


def write_config(session, config: dict, actor_id: str | None, now: datetime) -> None:
    row = session.get(Setting, SETTING) or Setting(key=SETTING)
    row.value, row.updated_at, row.updated_by = json.dumps(config), now, actor_id
    session.add(row)


def status(session) -> dict:
    """The configuration with how far forwarding got: what GET /settings/audit-forwarding shows."""
    config = {"host": None, "port": None, "protocol": None, "app_name": DEFAULT_APP_NAME, **read_config(session)}
    row = session.get(Setting, SETTING)
    state = session.get(ForwarderState, NAME)
    newest = session.scalar(sa.select(sa.func.max(AuditRecord.seq))) or 0
    return {**config, "updated_at": iso(row.updated_at) if row else None, "updated_by": row.updated_by if row else None,
            "last_forwarded_seq": state.last_seq if state else None,
            "pending": max(0, newest - state.last_seq) if state and config["enabled"] else 0,
            "last_error": state.last_error if state else None}


class Forwarding(Periodic):
    """The audit service's forwarding loop: about every second, or at once after wake()."""

    interval = 1.0

    def setup(self):
        super().setup()
        self.forwarder = Forwarder()

    def stop(self):
        super().stop()
        self.forwarder.close()

    kill = stop

    def run_once(self, db) -> int:
        with db.unit_of_work() as uow:
            target = target_of(read_config(uow.session))
        return self.forwarder.run_once(db, target)
