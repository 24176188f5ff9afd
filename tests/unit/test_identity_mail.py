"""Mail, invitation and settings rules, and the delivery loop against a real SMTP server and SQLite."""
from __future__ import annotations

import base64
import json
import smtplib
import socket
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kernel.config import Config
from kernel.crypto import token_digest
from kernel.db import aware
from kernel.envelope import utc_now
from services.identity import invitations, mail, storage
from services.identity.domain import PasswordPolicy
from services.identity.mailer import Mailer, send
from services.identity import mailer as mailer_module
from services.identity.models import Invitation, MailJob, PasswordReset, User
from tests.mailbox import Mailbox
from tests.unit.conftest import migrated

NOW = utc_now()


# --- retries ----------------------------------------------------------------------------

def test_retry_pauses_double_from_two_seconds_up_to_half_an_hour():
    assert [mail.retry_delay(n).total_seconds() for n in range(1, 6)] == [2, 4, 8, 16, 32]
    assert mail.retry_delay(11).total_seconds() == 1800
    assert mail.retry_delay(40).total_seconds() == 1800


def test_gives_up_at_the_maximum_attempts():
    assert not mail.should_give_up(11, 12)
    assert mail.should_give_up(12, 12)


def test_failure_text_never_carries_a_secret():
    error = smtplib.SMTPAuthenticationError(535, b"bad credentials for hunter2-secret")
    text = mail.describe_failure(error, "hunter2-secret", "tok3n")
    assert "hunter2-secret" not in text and "***" in text and text.startswith("SMTPAuthenticationError")
    assert len(mail.describe_failure(RuntimeError("x" * 1000))) <= 300


def test_failure_text_never_carries_the_secret_as_smtp_auth_sends_it():
    """A server may quote what it was sent: AUTH PLAIN's base64 of "\\0user\\0password", AUTH LOGIN's
    base64 of the password alone."""
    plain = base64.b64encode(b"\0mailer\0hunter2-secret").decode()
    login = base64.b64encode(b"hunter2-secret").decode()
    error = smtplib.SMTPAuthenticationError(535, f"refused AUTH PLAIN {plain} then LOGIN {login}".encode())
    text = mail.describe_failure(error, "hunter2-secret", username="mailer")
    assert plain not in text and login not in text and text.count("***") == 2, text
    assert "refused AUTH PLAIN" in text


def test_one_reset_mail_per_minute():
    assert mail.reset_mail_allowed(None, NOW)
    assert not mail.reset_mail_allowed(NOW - timedelta(seconds=30), NOW)
    assert mail.reset_mail_allowed((NOW - timedelta(seconds=61)).replace(tzinfo=None), NOW)  # SQLite: naive


# --- messages ---------------------------------------------------------------------------

def test_links_carry_the_token_in_the_fragment():
    assert mail.link("https://gh.example/", mail.INVITATION, "abc") == "https://gh.example/invite#token=abc"
    assert mail.link("https://gh.example", mail.PASSWORD_RESET, "abc") == "https://gh.example/reset-password#token=abc"


@pytest.mark.parametrize("kind, subject", [(mail.INVITATION, "You are invited to Gatehouse"),
                                           (mail.PASSWORD_RESET, "Reset your Gatehouse password")])
def test_messages_are_plain_text_with_the_link_and_expiry(kind, subject):
    message = mail.build_message(kind, "noreply@gh.example", "ann@x.com", "https://gh/x#token=t",
                                 NOW.replace(year=2031, month=1, day=2, hour=3, minute=4))
    assert message["Subject"] == subject and message["To"] == "ann@x.com"
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert "https://gh/x#token=t" in body and "2031-01-02 03:04 UTC" in body


# --- settings ---------------------------------------------------------------------------

GOOD_SMTP = {"host": "smtp.example.com", "port": 587, "tls_mode": "starttls", "username": "u",
             "password": "p", "from_address": "noreply@example.com"}


def test_valid_smtp_settings_pass():
    assert mail.smtp_problems(GOOD_SMTP) == {}
    assert mail.smtp_problems({**GOOD_SMTP, "host": "127.0.0.1", "username": None, "password": None}) == {}


@pytest.mark.parametrize("change, field", [
    ({"host": ""}, "host"), ({"host": "bad host"}, "host"), ({"port": 0}, "port"), ({"port": 70000}, "port"),
    ({"port": "25"}, "port"), ({"tls_mode": "ssl"}, "tls_mode"), ({"from_address": "nobody"}, "from_address"),
    ({"username": None}, "password"),
])
def test_invalid_smtp_settings_name_the_field(change, field):
    assert field in mail.smtp_problems({**GOOD_SMTP, **change})


def test_changed_fields_names_fields_only():
    assert mail.changed_fields({"host": "a", "port": 25}, {"host": "b", "port": 25}, ("host", "port")) == ["host"]
    assert mail.changed_fields(None, {"host": "b"}, ("host", "port")) == ["host"]


def test_password_policy_defaults_and_limits():
    assert mail.password_policy({}) == PasswordPolicy(12, 128, True)
    assert mail.password_policy({"min_length": 10, "max_length": None}) == PasswordPolicy(10, 128, True)
    assert mail.password_policy_problems({"min_length": 8, "max_length": 1024, "refuse_common": False}) == {}
    assert "min_length" in mail.password_policy_problems({"min_length": 7, "max_length": 128, "refuse_common": True})
    assert "min_length" in mail.password_policy_problems({"min_length": 129, "max_length": 200, "refuse_common": True})
    assert "max_length" in mail.password_policy_problems({"min_length": 20, "max_length": 19, "refuse_common": True})
    assert "max_length" in mail.password_policy_problems({"min_length": 8, "max_length": 1025, "refuse_common": True})
    assert "refuse_common" in mail.password_policy_problems({"min_length": 8, "max_length": 9, "refuse_common": 1})


# --- invitation rules -------------------------------------------------------------------

def test_parse_emails_from_a_string_or_a_list():
    assert invitations.parse_emails("a@x.com, B@Y.com;c@z.com  a@x.com") == (["a@x.com", "b@y.com", "c@z.com"], {})
    assert invitations.parse_emails(["a@x.com", " b@y.com "]) == (["a@x.com", "b@y.com"], {})


def test_parse_emails_reports_every_malformed_address():
    addresses, problems = invitations.parse_emails("good@x.com, nope, also@@bad")
    assert set(problems) == {"nope", "also@@bad"}
    assert invitations.parse_emails("  , ")[1] == {"emails": "name at least one address"}
    assert "emails" in invitations.parse_emails([1, 2])[1]
    assert "emails" in invitations.parse_emails(",".join(f"u{i}@x.com" for i in range(51)))[1]


def test_token_refusal_by_state_and_time():
    later, earlier = NOW + timedelta(hours=1), NOW - timedelta(seconds=1)
    assert invitations.token_refusal("pending", later, NOW) is None
    assert invitations.token_refusal("pending", earlier, NOW) == "invitation_expired"
    assert invitations.token_refusal("expired", later, NOW) == "invitation_expired"
    assert invitations.token_refusal("accepted", later, NOW) == "invitation_used"
    assert invitations.token_refusal("revoked", later, NOW) == "invitation_used"


def test_the_sweep_expires_only_pending_invitations_past_expiry():
    earlier = (NOW - timedelta(seconds=1)).replace(tzinfo=None)
    assert invitations.is_expired("pending", earlier, NOW)
    assert not invitations.is_expired("pending", NOW + timedelta(seconds=5), NOW)
    assert not invitations.is_expired("accepted", earlier, NOW)


# --- the delivery loop, on SQLite and a real SMTP server --------------------------------

@pytest.fixture
def smtp_server():
    server = Mailbox().start()
    yield server
    server.stop()


@pytest.fixture
def identity_db(tmp_path):
    database = migrated("identity", tmp_path / "identity.db", storage.metadata)
    yield database
    database.dispose()


@pytest.fixture
def mailer(identity_db, tmp_path):
    provider = Mailer()
    provider.configure(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_MAIL_MAX_ATTEMPTS": "3",
                                        "GATEHOUSE_PUBLIC_URL": "https://gh.example"}))
    provider.db = identity_db
    return provider


def configure_smtp(db, mailer, port):
    with db.unit_of_work() as uow:
        storage.write_setting(uow.session, "smtp", {"host": "127.0.0.1", "port": port, "tls_mode": "none",
                                                    "username": None, "password_sealed": None,
                                                    "from_address": "noreply@gh.example"}, None)
        uow.commit()


def invite(db, email, expires_in=timedelta(hours=24)):
    now = utc_now()
    with db.unit_of_work() as uow:
        user = User(email=email, status="invited", created_at=now)
        uow.session.add(user)
        uow.session.flush()
        invitation = Invitation(email=email, user_id=user.id, role="viewer", tenant_id="default", status="pending",
                                created_at=now, expires_at=now + expires_in)
        uow.session.add(invitation)
        uow.session.flush()
        uow.session.add(MailJob(kind=mail.INVITATION, ref_id=invitation.id, recipient=email, attempts=0,
                                next_attempt_at=now, created_at=now))
        uow.commit()
    return invitation.id


def outbox_types(db):
    with db.engine.connect() as conn:
        return [json.loads(body)["type"] for body in conn.execute(sa.select(db.outbox.c.body)).scalars()]


def test_send_speaks_plain_smtp_and_refuses_starttls_the_server_lacks(smtp_server):
    message = mail.build_message(mail.INVITATION, "noreply@gh.example", "ann@x.com", "https://gh/i#token=t", NOW)
    settings = {"host": "127.0.0.1", "port": smtp_server.port, "tls_mode": "none"}
    send(settings, message)
    assert smtp_server.wait_for("ann@x.com", timeout=5)
    with pytest.raises(smtplib.SMTPNotSupportedError):
        send({**settings, "tls_mode": "starttls"}, message)


class SlowSmtp:
    """An SMTP server answering each command after `pause` seconds: every step in time, the sum not."""

    def __init__(self, pause: float):
        self.pause = pause
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            conn = self._socket.accept()[0]
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 slow ESMTP\r\n")
            in_data = False
            for line in lines:
                if in_data:
                    if line.rstrip(b"\r\n") == b".":
                        in_data = False
                        time.sleep(self.pause)
                        conn.sendall(b"250 queued\r\n")
                    continue
                time.sleep(self.pause)
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go on\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def close(self):
        self._socket.close()


def test_the_whole_exchange_ends_at_its_deadline_however_slow_each_step(monkeypatch):
    """The test mail answers within the gateway's RPC wait: steps each in time do not add up past the deadline."""
    assert mailer_module.SMTP_TEST_TIMEOUT <= 2 and mailer_module.SMTP_TEST_DEADLINE < 10
    message = mail.build_test_message("noreply@gh.example", "ann@x.com")
    settings = {"host": "127.0.0.1", "tls_mode": "none"}
    server = SlowSmtp(pause=0.4)
    try:  # six steps of 0.4 s, each well inside the 3 s step: the 1 s deadline ends it
        with pytest.raises(TimeoutError, match="longer than the exchange may last"):
            send({**settings, "port": server.port}, message, timeout=3, deadline=1)
    finally:
        server.close()
    server = SlowSmtp(pause=0.4)
    try:  # without a deadline the same server takes the mail
        send({**settings, "port": server.port}, message, timeout=3)
    finally:
        server.close()


def test_a_due_job_is_sent_with_a_fresh_token_whose_digest_alone_is_stored(identity_db, mailer, smtp_server):
    configure_smtp(identity_db, mailer, smtp_server.port)
    invitation_id = invite(identity_db, "ann@x.com")
    assert mailer.run_once() == 1
    link, token = Mailbox.link(smtp_server.wait_for("ann@x.com", timeout=5)[0])
    assert link.startswith("https://gh.example/invite#token=")
    with identity_db.unit_of_work() as uow:
        invitation = uow.session.get(Invitation, invitation_id)
        job = uow.session.scalars(sa.select(MailJob)).one()
        assert invitation.token_hash == token_digest(token) and invitation.sent_at is not None
        assert job.sent_at is not None and job.attempts == 0
    assert mailer.run_once() == 0  # sent once only


def test_failures_back_off_then_give_up_with_an_event(identity_db, mailer, smtp_server):
    configure_smtp(identity_db, mailer, smtp_server.port)
    smtp_server.stop()  # nothing listens on the port now
    invite(identity_db, "bob@x.com")
    for attempt in (1, 2, 3):
        assert mailer.run_once() == 0
        with identity_db.unit_of_work() as uow:
            job = uow.session.scalars(sa.select(MailJob)).one()
            assert job.attempts == attempt and "ConnectionRefusedError" in job.last_error
            job.next_attempt_at = utc_now()  # skip the pause
            uow.commit()
    with identity_db.unit_of_work() as uow:
        job = uow.session.scalars(sa.select(MailJob)).one()
        assert job.gave_up_at is not None and job.sent_at is None
    assert outbox_types(identity_db) == ["identity.mail_failed"] * 3
    assert mailer.run_once() == 0  # given up: never tried again


def test_a_failed_job_waits_for_its_pause(identity_db, mailer, smtp_server):
    invite(identity_db, "cy@x.com")  # SMTP not configured
    mailer.run_once()
    with identity_db.unit_of_work() as uow:
        job = uow.session.scalars(sa.select(MailJob)).one()
        assert job.attempts == 1 and "SMTP is not configured" in job.last_error
        pause = aware(job.next_attempt_at) - utc_now()
        assert timedelta(0) < pause <= timedelta(seconds=2)
    configure_smtp(identity_db, mailer, smtp_server.port)
    assert mailer.run_once() == 0  # still pausing


def test_mail_for_a_used_reset_is_dropped(identity_db, mailer, smtp_server):
    configure_smtp(identity_db, mailer, smtp_server.port)
    now = utc_now()
    with identity_db.unit_of_work() as uow:
        user = User(email="dee@x.com", username="dee", status="active", created_at=now)
        uow.session.add(user)
        uow.session.flush()
        reset = PasswordReset(user_id=user.id, created_at=now, expires_at=now + timedelta(hours=1), used_at=now)
        uow.session.add(reset)
        uow.session.flush()
        uow.session.add(MailJob(kind=mail.PASSWORD_RESET, ref_id=reset.id, recipient=user.email, attempts=0,
                                next_attempt_at=now, created_at=now))
        uow.commit()
    assert mailer.run_once() == 0
    with identity_db.unit_of_work() as uow:
        assert uow.session.scalars(sa.select(MailJob)).one().gave_up_at is not None
    assert smtp_server.messages_to("dee@x.com") == []


def test_the_sweep_expires_invitations_and_removes_their_placeholder(identity_db, mailer, smtp_server):
    invitation_id = invite(identity_db, "eve@x.com", expires_in=timedelta(seconds=-1))
    kept_id = invite(identity_db, "fay@x.com")
    assert mailer.expire_invitations(utc_now()) == 1
    with identity_db.unit_of_work() as uow:
        expired, kept = uow.session.get(Invitation, invitation_id), uow.session.get(Invitation, kept_id)
        assert expired.status == "expired" and kept.status == "pending"
        assert uow.session.get(User, expired.user_id) is None and uow.session.get(User, kept.user_id) is not None
        job = uow.session.scalars(sa.select(MailJob).where(MailJob.ref_id == invitation_id)).one()
        assert job.gave_up_at is not None
    assert outbox_types(identity_db) == ["identity.invitation_expired"]
