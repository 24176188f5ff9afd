"""Self-service reset requests (services/identity/resets.py): the RPC's part takes the same path
for any address, and the per-account work happens afterwards, in the mailer's loop. No timings:
the same SQL statements for a known and an unknown address, and nothing about the account is
read or written until handle_due runs."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from kernel.config import Config
from kernel.envelope import Actor, utc_now
from services.identity import domain, resets, storage
from services.identity.models import MailJob, PasswordReset, ResetRequest, User
from tests.unit.conftest import migrated

TTL = timedelta(hours=1)


@pytest.fixture
def db(tmp_path):
    db = migrated("identity", tmp_path / "identity.db", storage.metadata)
    with db.unit_of_work() as uow:
        uow.session.add(User(username="known", email="known@example.com", first_name="K", last_name="N",
                             company="", status=domain.ACTIVE, created_at=utc_now()))
        uow.commit()
    yield db
    db.dispose()


@pytest.fixture
def config():
    return Config.from_env({"GATEHOUSE_DATA_DIR": "/tmp"})


def statements_of(db, email):
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.unit_of_work() as uow:
            resets.accept(uow.session, email, Actor(ip="192.0.2.1", request_id="r1"), utc_now())
            uow.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    return seen


def rows(db, model):
    with db.unit_of_work() as uow:
        return list(uow.session.scalars(sa.select(model)))


def test_accepting_a_request_runs_the_same_statements_for_any_address(db):
    known, unknown = statements_of(db, "known@example.com"), statements_of(db, "nobody@example.com")
    assert known == unknown and known
    assert not any("identity_users" in statement for statement in known)  # the account is not even looked up
    assert len(rows(db, ResetRequest)) == 2 and not rows(db, PasswordReset) and not rows(db, MailJob)


def test_the_mailer_handles_requests_afterwards_and_forgets_them(db, config):
    for email in ("Known@Example.com", "nobody@example.com", "not an address", ""):
        statements_of(db, email)
    assert resets.handle_due(db, config, TTL, utc_now()) == 1
    assert not rows(db, ResetRequest)
    [reset] = rows(db, PasswordReset)
    [job] = rows(db, MailJob)
    assert job.recipient == "known@example.com" and job.ref_id == reset.id
    statements_of(db, "known@example.com")  # within the pause between mails: no second one
    assert resets.handle_due(db, config, TTL, utc_now()) == 0 and not rows(db, ResetRequest)
    assert len(rows(db, MailJob)) == 1


def test_a_request_over_the_accounts_limit_is_dropped_not_retried(db):
    config = Config.from_env({"GATEHOUSE_DATA_DIR": "/tmp", "GATEHOUSE_RESET_MAILS_PER_ACCOUNT": "1"})
    statements_of(db, "known@example.com")
    assert resets.handle_due(db, config, TTL, utc_now()) == 1
    statements_of(db, "known@example.com")
    later = utc_now() + timedelta(minutes=10)  # past the pause, within the window
    assert resets.handle_due(db, config, TTL, later) == 0
    assert not rows(db, ResetRequest) and len(rows(db, MailJob)) == 1
