"""Rate limits of mail and sign-up: window arithmetic (services/identity/limits.py) and the
shared counter (storage.take_rate) on a real SQLite database, with concurrent writers."""
import threading
from datetime import datetime, timedelta, timezone

import pytest

from kernel.config import Config
from kernel.db import ServiceDatabase
from services.identity import limits, storage
from services.identity.limits import Limit

NOW = datetime(2026, 1, 1, 12, 20, 30, tzinfo=timezone.utc)
HOURLY = Limit("reset_mails_per_account", 3, 3600)


def test_windows_are_fixed_and_aligned_on_the_epoch():
    start, end = limits.window_bounds(NOW, 3600)
    assert (start, end) == (datetime(2026, 1, 1, 12, tzinfo=timezone.utc), datetime(2026, 1, 1, 13, tzinfo=timezone.utc))
    assert limits.window_bounds(end, 3600)[0] == end  # the end belongs to the next window
    assert limits.window_bounds(end - timedelta(microseconds=1), 3600)[0] == start


def test_the_count_may_reach_the_limit_but_not_pass_it():
    assert limits.allows(3, HOURLY) and not limits.allows(4, HOURLY)


def test_a_limit_of_zero_is_off():
    off = Limit("x", 0, 3600)
    assert not off.enabled and limits.allows(10**6, off)


def test_retry_after_is_the_rest_of_the_window_in_whole_seconds():
    assert limits.retry_after(NOW, HOURLY) == 39 * 60 + 30
    assert limits.retry_after(NOW + timedelta(seconds=0.2), HOURLY) == 39 * 60 + 30
    assert limits.retry_after(datetime(2026, 1, 1, 12, 59, 59, 999000, tzinfo=timezone.utc), HOURLY) == 1


def test_keys_name_the_limit_and_a_normalized_subject():
    assert HOURLY.key(" Ann@Example.COM ") == "reset_mails_per_account:ann@example.com"
    assert HOURLY.key(None) == "reset_mails_per_account:unknown"


def test_every_limit_comes_from_a_setting():
    rules = limits.limits_from_config(Config.from_env({"GATEHOUSE_RESET_MAILS_PER_ACCOUNT": "7"}))
    assert set(rules) == set(limits.LIMITS)
    assert rules["reset_mails_per_account"] == Limit("reset_mails_per_account", 7, 3600)
    assert rules["invitations_per_admin"].max == 100


@pytest.fixture
def database(tmp_path):
    database = ServiceDatabase("identity", f"sqlite:///{tmp_path / 'identity.db'}", storage.metadata)
    storage.metadata.create_all(database.engine)
    yield database
    database.dispose()


def take(database, units=1, now=NOW, limit=HOURLY, key="k", commit=True) -> bool:
    start, end = limits.window_bounds(now, limit.window_seconds)
    with database.unit_of_work() as uow:
        taken = storage.take_rate(uow.session, limit.key(key), start, end, units, lambda n: limits.allows(n, limit))
        if commit:
            uow.commit()
        return taken


def counts(database) -> dict:
    with database.engine.connect() as conn:
        rows = conn.execute(storage.RateCounter.__table__.select()).all()
    return {(row.key, row.window_start.replace(tzinfo=timezone.utc)): row.count for row in rows}


def test_the_counter_allows_up_to_the_limit_then_refuses_until_the_next_window(database):
    assert [take(database) for _ in range(4)] == [True, True, True, False]
    assert counts(database) == {("reset_mails_per_account:k", datetime(2026, 1, 1, 12, tzinfo=timezone.utc)): 3}
    assert take(database, key="other")  # another subject has its own count
    next_window = NOW + timedelta(hours=1)
    assert take(database, now=next_window)
    # the key's finished window is gone; another key's is left to the sweep (no lock on it)
    assert set(counts(database)) == {("reset_mails_per_account:k", datetime(2026, 1, 1, 13, tzinfo=timezone.utc)),
                                     ("reset_mails_per_account:other", datetime(2026, 1, 1, 12, tzinfo=timezone.utc))}


def test_the_sweep_forgets_ended_windows_only(database):
    take(database, key="old")
    take(database, key="new", now=NOW + timedelta(hours=1))
    with database.unit_of_work() as uow:
        assert storage.forget_rate_windows(uow.session, NOW + timedelta(hours=1)) == 1
        uow.commit()
    assert set(counts(database)) == {("reset_mails_per_account:new", datetime(2026, 1, 1, 13, tzinfo=timezone.utc))}


def test_a_batch_counts_its_units_and_a_refused_batch_counts_nothing(database):
    assert take(database, units=2)
    assert not take(database, units=2)  # 4 > 3: refused, and not counted
    assert take(database, units=1)  # so the third unit is still there
    assert not take(database, units=1)


def test_a_count_not_committed_is_not_kept(database):
    assert take(database, units=3, commit=False)
    assert take(database, units=3)


def test_concurrent_takes_lose_no_count(database):
    limit = Limit("invitations_per_admin", 1000, 3600)
    results = []

    def worker():
        for _ in range(25):
            results.append(take(database, limit=limit, key="admin"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 100
    assert list(counts(database).values()) == [100]


def test_a_batch_larger_than_the_limit_is_never_allowed_so_waiting_would_not_help():
    assert limits.never_allows(4, HOURLY) and not limits.never_allows(3, HOURLY)
    assert not limits.never_allows(10_000, Limit("invitations_per_admin", 0, 3600))  # off


def test_only_a_windows_first_refusal_is_the_one_to_audit(database):
    start, end = limits.window_bounds(NOW, HOURLY.window_seconds)
    with database.unit_of_work() as uow:
        firsts = [storage.first_refusal(uow.session, HOURLY.key("k"), start, end) for _ in range(3)]
        other = storage.first_refusal(uow.session, HOURLY.key("other"), start, end)
        later_start, later_end = limits.window_bounds(NOW + timedelta(hours=1), HOURLY.window_seconds)
        next_window = storage.first_refusal(uow.session, HOURLY.key("k"), later_start, later_end)
        uow.commit()
    assert firsts == [True, False, False] and other and next_window
