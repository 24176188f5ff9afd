"""Delivers identity's mails (invitations, password resets) from MailJob rows.

A managed thread of the identity service: it wakes when this process queues a job and
otherwise polls, so jobs queued by other instances or left by a crash are found too.
Each pass: claim due jobs (locked rows, skipped by other instances on PostgreSQL),
mint each link's token and store only its digest, commit, then hand the mail to SMTP
outside any transaction, then record the outcome. A failure is retried with growing
pauses until GATEHOUSE_MAIL_MAX_ATTEMPTS; everything lives in rows, so restarts lose
nothing. The same loop expires pending invitations past their expiry, and first handles
self-service password reset requests (resets.py), which the RPC stored and answered.
"""
from __future__ import annotations

import logging
import smtplib  # green: identity processes are monkey-patched
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from kernel.crypto import SecretBox, new_token, token_digest
from kernel.db import aware
from kernel.envelope import SYSTEM, utc_now
from kernel.service import Periodic
from services.identity import events, mail, resets, storage, storage_mail
from services.identity.models import Invitation, MailJob, PasswordReset

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 10
# The test mail is sent while the RPC waits, so it must end before the gateway's GATEHOUSE_RPC_TIMEOUT
# (10 s): each SMTP step (connecting, each command and reply) waits at most SMTP_TEST_TIMEOUT, and the
# whole exchange at most SMTP_TEST_DEADLINE (a slow server answering each step in time cannot add them up).
SMTP_TEST_TIMEOUT = 2
SMTP_TEST_DEADLINE = 7
# A claimed job is not due again for this long: the claimer is sending it. If that
# process dies mid-send, another pass (or instance) picks the job up after it.
CLAIM_LEASE = timedelta(minutes=2)
BATCH = 20
SWEEP_INTERVAL = 5.0


@dataclass
class Outgoing:
    """A claimed job ready to send; holds the clear token only in memory."""

    job_id: str
    message: EmailMessage
    token: str


class SmtpUnusable(Exception):
    """The stored settings cannot be used: each mail fails (and is retried) with this reason."""


def smtp_settings(session, box: SecretBox) -> dict:
    """The stored SMTP settings with the password opened; raises SmtpUnusable."""
    stored = storage.read_setting(session, "smtp")
    if not stored:
        raise SmtpUnusable("SMTP is not configured (PUT /api/v1/settings/smtp)")
    sealed = stored.get("password_sealed")
    try:
        return {**stored, "password": box.open(sealed) if sealed else None}
    except ValueError as error:
        raise SmtpUnusable(f"the stored SMTP password cannot be used: {error}") from None


class _Bounded:
    """smtplib's client whose every step (connecting, each command sent, each reply read) waits at most
    `step` seconds, and no longer than what is left until `ends` (time.monotonic(); None: no end)."""

    _step: float
    _ends: float | None

    def _arm(self) -> None:
        wait = self._step
        if self._ends is not None:
            wait = min(wait, self._ends - time.monotonic())
            if wait <= 0:
                raise TimeoutError("the SMTP server took longer than the exchange may last")
        self.timeout = wait
        if self.sock is not None:
            self.sock.settimeout(wait)

    def _get_socket(self, host, port, timeout):
        self._arm()
        return super()._get_socket(host, port, self.timeout)

    def send(self, s):
        self._arm()
        return super().send(s)

    def getreply(self):
        self._arm()
        return super().getreply()


class _BoundedSMTP(_Bounded, smtplib.SMTP):
    def __init__(self, host, port, step: float, ends: float | None):
        self._step, self._ends = step, ends
        super().__init__(host, port, timeout=step)


class _BoundedSMTPSSL(_Bounded, smtplib.SMTP_SSL):
    def __init__(self, host, port, step: float, ends: float | None, context):
        self._step, self._ends = step, ends
        super().__init__(host, port, timeout=step, context=context)


def send(settings: dict, message: EmailMessage, timeout: float = SMTP_TIMEOUT, deadline: float | None = None) -> None:
    """Hands one message to the SMTP server in the settings' TLS mode. Each step waits at most `timeout`
    seconds, the whole exchange at most `deadline` (None: no bound but the steps'); beyond: TimeoutError."""
    host, port, mode = settings["host"], settings["port"], settings["tls_mode"]
    context = ssl.create_default_context()
    ends = None if deadline is None else time.monotonic() + deadline
    if mode == "tls":
        client = _BoundedSMTPSSL(host, port, timeout, ends, context)
    else:
        client = _BoundedSMTP(host, port, timeout, ends)
    with client:
        if mode == "starttls":
            client.starttls(context=context)
        if settings.get("username"):
            client.login(settings["username"], settings.get("password") or "")
        client.send_message(message)


class Mailer(Periodic):
    """Workers get the mailer itself: `wake()` after committing a MailJob; `box` seals secrets;
    the link lifetimes from the config. Its loop (kernel.service.Periodic) delivers due mails."""

    def setup(self):
        super().setup()
        self.configure(self.container.config["GATEHOUSE"])

    def configure(self, config) -> None:
        self.public_url = config["GATEHOUSE_PUBLIC_URL"]
        self.max_attempts = config.integer("GATEHOUSE_MAIL_MAX_ATTEMPTS")
        self.invitation_ttl = timedelta(seconds=config.integer("GATEHOUSE_INVITATION_TTL"))
        self.reset_ttl = timedelta(seconds=config.integer("GATEHOUSE_PASSWORD_RESET_TTL"))
        self.box = SecretBox(config.secret_key)
        self.config = config
        self.wakeup = threading.Event()  # green under eventlet
        self.stopping = threading.Event()
        self.db = None
        self._last_sweep = 0.0

    def run_once(self, db=None) -> int:
        """One pass over self.db: now and then expire invitations and forget ended rate-limit
        windows; deliver due mails; returns mails sent."""
        now = utc_now()
        if now.timestamp() - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = now.timestamp()
            self.expire_invitations(now)
            with self.db.unit_of_work() as uow:
                storage.forget_rate_windows(uow.session, now)
                uow.commit()
        resets.handle_due(self.db, self.config, self.reset_ttl, now)
        sent = 0
        for outgoing, settings in self.claim(utc_now()):
            if self.stopping.is_set():
                break  # left claimed: due again once the lease ends
            sent += self.deliver(outgoing, settings)
        return sent

    def claim(self, now: datetime) -> list[tuple[Outgoing, dict | SmtpUnusable]]:
        """Locks due jobs, mints their tokens, stores the digests, commits: then they may be sent."""
        claimed = []
        with self.db.unit_of_work() as uow:
            try:
                settings = smtp_settings(uow.session, self.box)
            except SmtpUnusable as problem:
                settings = problem
            for job in storage_mail.due_mail_jobs(uow.session, now, BATCH):
                job.next_attempt_at = now + CLAIM_LEASE
                target = self._target(uow.session, job, now)
                if target is None:
                    job.gave_up_at, job.last_error = now, "no longer needed"
                    continue
                token = new_token()
                target.token_hash = token_digest(token)
                url = mail.link(self.public_url, job.kind, token)
                sender = settings["from_address"] if isinstance(settings, dict) else ""
                claimed.append(Outgoing(job.id, mail.build_message(job.kind, sender, job.recipient, url,
                                                                   target.expires_at), token))
            uow.commit()
        return [(outgoing, settings) for outgoing in claimed]

    @staticmethod
    def _target(session, job: MailJob, now: datetime):
        """The invitation or reset the mail is for, if its link can still be used."""
        if job.kind == mail.INVITATION:
            target = session.get(Invitation, job.ref_id)
            usable = target is not None and target.status == "pending"
        else:
            target = session.get(PasswordReset, job.ref_id)
            usable = target is not None and target.used_at is None
        return target if usable and aware(target.expires_at) > now else None

    def deliver(self, outgoing: Outgoing, settings: dict | SmtpUnusable) -> int:
        password = settings.get("password") if isinstance(settings, dict) else None
        try:
            if isinstance(settings, SmtpUnusable):
                raise settings
            send(settings, outgoing.message)
        except Exception as error:
            text = mail.describe_failure(error, outgoing.token, password or "",
                                         username=settings.get("username") if isinstance(settings, dict) else None)
            self.record_failure(outgoing.job_id, text)
            return 0
        self.record_sent(outgoing.job_id)
        return 1

    def record_sent(self, job_id: str) -> None:
        with self.db.unit_of_work() as uow:
            job = uow.session.get(MailJob, job_id)
            job.sent_at, job.last_error = utc_now(), None
            if job.kind == mail.INVITATION and (invitation := uow.session.get(Invitation, job.ref_id)):
                invitation.sent_at = job.sent_at
            uow.commit()

    def record_failure(self, job_id: str, error: str) -> None:
        now = utc_now()
        with self.db.unit_of_work() as uow:
            job = uow.session.get(MailJob, job_id)
            job.attempts += 1
            job.last_error = error
            gave_up = mail.should_give_up(job.attempts, self.max_attempts)
            if gave_up:
                job.gave_up_at = now
            else:
                job.next_attempt_at = now + mail.retry_delay(job.attempts)
            uow.emit(events.mail_failed(job, SYSTEM, error, gave_up))
            uow.commit()
        log.warning("mail %s (%s) attempt %d failed: %s%s", job.id, job.kind, job.attempts, error,
                    "; given up" if gave_up else "")

    def expire_invitations(self, now: datetime) -> int:
        with self.db.unit_of_work() as uow:
            expired = storage_mail.expired_invitations(uow.session, now, 100)
            for invitation in expired:
                invitation.status = "expired"
                storage_mail.delete_placeholder(uow.session, invitation.user_id)
                storage_mail.cancel_mail_jobs(uow.session, mail.INVITATION, invitation.id, "invitation expired", now)
                uow.emit(events.invitation_expired(invitation, SYSTEM))
            uow.commit()
        return len(expired)
