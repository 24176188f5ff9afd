"""Self-registration settings (on/off, allowed email domains) and the SMTP test mail: the shared
rules (contracts/identity.py) and identity's use cases (usecases/platform_settings.py,
usecases/accounts.py) on SQLite, with a real SMTP server for the test mail."""
from __future__ import annotations

import json
import smtplib

import pytest
import sqlalchemy as sa

from contracts import identity as rules
from kernel.config import Config
from kernel.errors import Conflict, Forbidden, TooManyRequests, ValidationFailed
from services.identity import domain, mailer, storage
from services.identity.mailer import Mailer
from services.identity.uow import IdentityUnitOfWork
from services.identity.usecases import accounts, platform_settings
from tests.mailbox import Mailbox
from tests.unit.conftest import AllowingRbac, migrated

ROOT = {"user_id": "root-1", "username": "root"}
STRONG = "correct horse battery staple"


# --- rules -----------------------------------------------------------------------------

def test_domains_are_kept_as_addresses_hold_them():
    assert rules.normalize_email_domain(" @Example.COM ") == ("example.com", None)
    assert rules.normalize_email_domain("exämple.com") == ("xn--exmple-cua.com", None)
    assert rules.normalize_email_domain("")[1] == "must not be empty"
    assert "not a valid email domain" in rules.normalize_email_domain("no spaces.com")[1]
    assert rules.normalize_email_domain(None)[1] == "must not be empty"


def test_registration_settings_problems_name_the_field():
    assert rules.registration_settings_problems({"self_registration": True, "allowed_email_domains": []}) == {}
    assert rules.registration_settings_problems({"self_registration": False}) == {}  # no list: any domain
    assert set(rules.registration_settings_problems({"self_registration": "yes"})) == {"self_registration"}
    problems = rules.registration_settings_problems({"self_registration": True,
                                                     "allowed_email_domains": ["ok.com", "bad domain", ""]})
    assert list(problems) == ["allowed_email_domains"]
    assert "'bad domain'" in problems["allowed_email_domains"] and "must not be empty" in problems["allowed_email_domains"]
    too_many = [f"d{n}.com" for n in range(rules.MAX_ALLOWED_EMAIL_DOMAINS + 1)]
    assert "at most" in rules.registration_settings_problems(
        {"self_registration": True, "allowed_email_domains": too_many})["allowed_email_domains"]
    assert "list" in rules.registration_settings_problems(
        {"self_registration": True, "allowed_email_domains": "a.com"})["allowed_email_domains"]


def test_an_address_is_allowed_in_its_exact_domain_only():
    assert rules.email_domain_allowed("ann@anything.org", [])
    assert rules.email_domain_allowed("ann@example.com", ["other.org", "example.com"])
    assert not rules.email_domain_allowed("ann@sub.example.com", ["example.com"])
    assert not rules.email_domain_allowed("ann@example.com.evil.org", ["example.com"])
    assert domain.allowed_domains_text(["example.com"]) == "example.com"
    assert domain.allowed_domains_text(["a.com", "b.org"]) == "one of the allowed domains (a.com, b.org)"


# --- use cases ---------------------------------------------------------------------------

@pytest.fixture
def database(tmp_path):
    db = migrated("identity", tmp_path / "identity.db", storage.metadata)
    yield db
    db.dispose()


@pytest.fixture
def config(tmp_path):
    return {"GATEHOUSE": Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_SMTP_TESTS_PER_ADMIN": "2"})}


@pytest.fixture
def uow(database, config, tmp_path):
    def make():
        sender = Mailer()
        sender.configure(config["GATEHOUSE"])
        return IdentityUnitOfWork(database, rbac=AllowingRbac(), mailer=sender, config=config)
    return make


def events_of(database) -> list[dict]:
    with database.engine.connect() as conn:
        return [json.loads(body) for body in conn.execute(
            sa.select(database.outbox.c.body).order_by(database.outbox.c.seq)).scalars()]


def register(uow, email, username="newbie"):
    return accounts.register(uow(), {"ip": "127.0.0.1"}, username, "New", "Bie", email, STRONG)


def test_by_default_anyone_registers_with_any_domain(uow):
    assert platform_settings.get_registration_settings(uow()) == {"self_registration": True,
                                                                  "allowed_email_domains": []}
    assert register(uow, "ann@anywhere.org")["status"] == "pending"


def test_closed_registration_is_refused_and_audited_as_a_settings_change(uow, database):
    saved = platform_settings.put_registration_settings(uow(), ROOT, {"self_registration": False})
    assert saved == {"self_registration": False, "allowed_email_domains": []}
    with pytest.raises(Forbidden) as refused:
        register(uow, "ann@anywhere.org")
    assert refused.value.code == "registration_closed"
    changes = [e for e in events_of(database) if e["type"] == "identity.settings_changed"]
    assert [(e["resource"]["id"], e["data"]["fields"]) for e in changes] == [("registration", ["self_registration"])]
    platform_settings.put_registration_settings(uow(), ROOT, {"self_registration": False})  # no change: no event
    assert len([e for e in events_of(database) if e["type"] == "identity.settings_changed"]) == 1


def test_only_allowed_domains_register_and_the_refusal_says_nothing_of_accounts(uow):
    saved = platform_settings.put_registration_settings(
        uow(), ROOT, {"self_registration": True, "allowed_email_domains": ["@Example.com", "exämple.com", "example.com"]})
    assert saved["allowed_email_domains"] == ["example.com", "xn--exmple-cua.com"]
    assert register(uow, "ann@EXAMPLE.com", "ann")["email"] == "ann@example.com"
    for email in ("bob@other.org", "ann@example.com.evil.org"):
        with pytest.raises(ValidationFailed) as refused:
            register(uow, email, "bob")
        assert refused.value.details == {
            "email": "must be an address of one of the allowed domains (example.com, xn--exmple-cua.com)"}
    with pytest.raises(Conflict):  # an address of an allowed domain that is taken: the usual answer
        register(uow, "ann@example.com", "ann2")


def test_invalid_registration_settings_change_nothing(uow):
    with pytest.raises(ValidationFailed) as refused:
        platform_settings.put_registration_settings(uow(), ROOT, {"self_registration": False,
                                                                  "allowed_email_domains": ["not a domain"]})
    assert set(refused.value.details) == {"allowed_email_domains"}
    assert platform_settings.get_registration_settings(uow())["self_registration"] is True


def test_the_test_mail_needs_smtp_and_an_address(uow):
    with pytest.raises(ValidationFailed) as refused:
        platform_settings.send_test_mail(uow(), ROOT, "not an address")
    assert set(refused.value.details) == {"to"}
    with pytest.raises(Conflict) as refused:
        platform_settings.send_test_mail(uow(), ROOT, "ann@example.com")
    assert refused.value.code == "smtp_not_configured"


@pytest.fixture
def smtp_server():
    server = Mailbox().start()
    yield server
    server.stop()


def test_the_test_mail_arrives_audited_and_is_rate_limited(uow, database, smtp_server):
    platform_settings.put_smtp_settings(uow(), ROOT, smtp_server.smtp_settings())
    assert platform_settings.send_test_mail(uow(), ROOT, "Ann@Example.com") == {
        "sent": True, "to": "ann@example.com", "error": None}
    message = smtp_server.wait_for("ann@example.com", timeout=5)[0]
    assert message["Subject"] == "Gatehouse test mail" and message["From"] == "noreply@example.com"
    [audited] = [e for e in events_of(database) if e["type"] == "identity.smtp_test_sent"]
    assert audited["data"] == {"to": "ann@example.com", "sent": True, "error": None}
    assert audited["outcome"] == "success"
    platform_settings.send_test_mail(uow(), ROOT, "ann@example.com")
    with pytest.raises(TooManyRequests) as refused:  # GATEHOUSE_SMTP_TESTS_PER_ADMIN=2
        platform_settings.send_test_mail(uow(), ROOT, "ann@example.com")
    assert refused.value.details["limit"] == "smtp_tests_per_admin"


def test_a_failed_test_mail_answers_the_smtp_error_without_the_password(uow, database, monkeypatch):
    secret = "s3cret-Passw0rd"
    platform_settings.put_smtp_settings(uow(), ROOT, {"host": "127.0.0.1", "port": 25, "tls_mode": "none",
                                                      "username": "mailer", "password": secret,
                                                      "from_address": "noreply@example.com"})

    def refuse(settings, message, timeout, deadline):
        assert settings["password"] == secret and timeout == mailer.SMTP_TEST_TIMEOUT
        assert deadline == mailer.SMTP_TEST_DEADLINE
        raise smtplib.SMTPAuthenticationError(535, f"bad credentials mailer/{secret}".encode())

    monkeypatch.setattr(mailer, "send", refuse)
    answer = platform_settings.send_test_mail(uow(), ROOT, "ann@example.com")
    assert answer["sent"] is False and "SMTPAuthenticationError" in answer["error"] and "535" in answer["error"]
    assert secret not in answer["error"] and "***" in answer["error"]
    [audited] = [e for e in events_of(database) if e["type"] == "identity.smtp_test_sent"]
    assert audited["outcome"] == "failure" and audited["data"]["error"] == answer["error"]
    assert secret not in json.dumps(events_of(database))
