"""Throttle arithmetic and session rules (services/identity/sessions.py), and Retry-After over RPC."""
from datetime import datetime, timedelta, timezone

import pytest
from nameko.exceptions import deserialize, serialize

from kernel.errors import TooManyRequests
from services.identity import sessions
from services.identity.sessions import Throttle, ThrottleRules

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
RULES = ThrottleRules(max_failures=5, lock_seconds=60, ip_max_failures=50, window_seconds=900)


def fail(times, state=None, start=NOW, step=timedelta(seconds=1), limit=5):
    now = start
    for _ in range(times):
        state = sessions.after_failure(state, now, limit, RULES)
        now += step
    return state


def test_failures_below_the_limit_do_not_lock():
    state = fail(4)
    assert state.failures == 4 and state.locked_until is None
    assert sessions.retry_after(state, NOW + timedelta(seconds=4)) == 0


def test_the_limit_locks_for_the_base_time():
    state = fail(5)
    last = NOW + timedelta(seconds=4)
    assert state.locked_until == last + timedelta(seconds=60)
    assert sessions.retry_after(state, last) == 60
    assert sessions.retry_after(state, last + timedelta(seconds=59.5)) == 1
    assert sessions.retry_after(state, last + timedelta(seconds=60)) == 0


@pytest.mark.parametrize("failures, seconds", [(4, 0), (5, 60), (6, 120), (7, 240), (10, 1920), (11, 3600), (40, 3600)])
def test_each_further_failure_doubles_the_lock_up_to_an_hour(failures, seconds):
    assert sessions.lock_seconds(failures, 5, RULES) == seconds


def test_failures_older_than_the_window_are_forgotten():
    state = fail(4)
    later = NOW + timedelta(seconds=901 + 4)
    assert sessions.is_stale(state, later, RULES)
    assert sessions.after_failure(state, later, 5, RULES) == Throttle(1, later, None)


def test_a_failure_right_after_a_long_lock_keeps_doubling():
    state = Throttle(failures=10, first_failure_at=NOW, locked_until=NOW + timedelta(seconds=1920))
    after_lock = NOW + timedelta(seconds=1921)  # first failure is > window ago, the lock ended 1 s ago
    assert not sessions.is_stale(state, after_lock, RULES)
    state = sessions.after_failure(state, after_lock, 5, RULES)
    assert state.failures == 11 and state.locked_until == after_lock + timedelta(seconds=3600)


def test_naive_datetimes_from_sqlite_are_read_as_utc():
    state = Throttle(failures=5, first_failure_at=NOW.replace(tzinfo=None),
                     locked_until=(NOW + timedelta(seconds=30)).replace(tzinfo=None))
    assert sessions.retry_after(state, NOW) == 30
    assert not sessions.is_stale(state, NOW, RULES)


def test_ip_limit_is_its_own():
    assert fail(49, limit=50).locked_until is None
    assert fail(50, limit=50).locked_until is not None


@pytest.mark.parametrize("refusal, password_ok, counts", [
    ("unknown_user", False, True), ("bad_password", False, True), ("account_locked", False, True),
    ("account_locked", True, False), ("status_suspended", True, False), (None, True, False),
])
def test_only_wrong_passwords_count(refusal, password_ok, counts):
    assert sessions.counts_as_failure(refusal, password_ok) is counts


def test_keys():
    assert sessions.account_key("u1") == "account:u1"
    assert sessions.ip_key("10.0.0.1") == "ip:10.0.0.1"
    assert sessions.unknown_login_key("  Alice ") == "login:alice"
    assert sessions.unknown_login_key("Bob@Example.com") == "login:bob@example.com"
    free_text = sessions.unknown_login_key("my secret pass phrase!")
    assert free_text.startswith("login:#") and "secret" not in free_text


def test_rules_come_from_the_settings():
    from kernel.config import Config
    config = Config.from_env({"GATEHOUSE_LOGIN_MAX_FAILURES": "3", "GATEHOUSE_LOGIN_FAILURE_WINDOW": "60"})
    assert ThrottleRules.from_config(config) == ThrottleRules(3, 60, 50, 60)


@pytest.mark.parametrize("revoked, expires, status, problem", [
    (None, None, "active", None),
    (None, NOW + timedelta(seconds=1), "active", None),
    (None, NOW, "active", "expired"),
    (NOW, None, "active", "revoked"),
    (None, None, "suspended", "status_suspended"),
    (None, None, None, "user_removed"),
])
def test_session_problem(revoked, expires, status, problem):
    assert sessions.session_problem(revoked, expires, status, NOW) == problem


def test_session_expiry_and_user_agent():
    assert sessions.session_expiry(NOW, 3600) == NOW + timedelta(hours=1)
    assert sessions.user_agent("x" * 1000) == "x" * 256
    assert sessions.user_agent(None) == ""


def test_retry_after_crosses_rpc():
    error = TooManyRequests("Slow down.", code="too_many_attempts", retry_after=42)
    again = deserialize(serialize(error))
    assert isinstance(again, TooManyRequests)
    assert (again.status, again.code, again.retry_after) == (429, "too_many_attempts", 42)
