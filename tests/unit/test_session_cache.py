"""The gateway's session cache without a broker: hits, invalidations, the generation race, bypass."""
import threading

import pytest

from gateway.session_cache import TENANCY_ACCESS_CHANGING, SessionCache, listener_queue
from services.identity import events as identity_events
from services.rbac import events as rbac_events


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Counting:
    """A fake service: counts calls, answers `result(args)`."""

    def __init__(self, result):
        self.result, self.calls = result, 0

    def __call__(self, *args):
        self.calls += 1
        return self.result(*args)


def user_of(session_id):
    return {"id": "u-" + session_id.split("-")[0], "username": "x"}


@pytest.fixture
def cache():
    cache = SessionCache(ttl=30, clock=Clock())
    cache.connected()
    return cache


def test_a_session_is_fetched_once_then_served(cache):
    fetch = Counting(user_of)
    assert cache.session_user("a-1", fetch) == {"id": "u-a", "username": "x"}
    assert cache.session_user("a-1", fetch)["id"] == "u-a"
    assert fetch.calls == 1


def test_entries_expire(cache):
    fetch = Counting(user_of)
    cache.session_user("a-1", fetch)
    cache.clock.now += 31
    cache.session_user("a-1", fetch)
    assert fetch.calls == 2


def test_errors_are_not_cached(cache):
    def refused(session_id):
        raise PermissionError("revoked")

    for _ in range(2):
        with pytest.raises(PermissionError):
            cache.session_user("a-1", refused)


def test_not_cacheable_answers_are_fetched_every_time(cache):
    fetch = Counting(user_of)
    for _ in range(3):
        cache.session_user("a-1", fetch, cacheable=lambda user: False)
    assert fetch.calls == 3


def test_an_identity_event_drops_that_users_sessions_and_decisions_only(cache):
    sessions, decide = Counting(user_of), Counting(lambda *args: True)
    for sid in ("a-1", "a-2", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "admin.users", "t", decide)
    cache.authorized("u-b", "admin.users", "t", decide)
    cache.on_event("identity", {"type": identity_events.LOGOUT, "resource": {"type": "user", "id": "u-a"}})
    for sid in ("a-1", "a-2", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "admin.users", "t", decide)
    cache.authorized("u-b", "admin.users", "t", decide)
    assert sessions.calls == 3 + 2  # a-1 and a-2 again, b-1 still cached
    assert decide.calls == 2 + 1


def test_an_rbac_event_drops_every_decision_but_no_session(cache):
    sessions, decide = Counting(user_of), Counting(lambda user, perm, tenant: perm == "admin.users")
    cache.session_user("a-1", sessions)
    assert cache.authorized("u-a", "admin.users", "t", decide) is True
    assert cache.authorized("u-a", "admin.audit", "t", decide) is False
    cache.on_event("rbac", {"type": "rbac.role_unassigned"})
    cache.authorized("u-a", "admin.users", "t", decide)
    cache.session_user("a-1", sessions)
    assert decide.calls == 3 and sessions.calls == 1


def test_no_stale_fill_when_an_invalidation_races_the_fetch(cache):
    """The answer fetched before the event arrived must not be stored after it."""
    def fetch_while_revoked(session_id):
        cache.on_event("identity", {"resource": {"id": "u-a"}})  # the event lands mid-RPC
        return user_of(session_id)

    cache.session_user("a-1", fetch_while_revoked)
    fetch = Counting(user_of)
    cache.session_user("a-1", fetch)
    assert fetch.calls == 1

    def decide_while_changed(*args):
        cache.on_event("rbac", {})
        return True

    cache.authorized("u-a", "p", "t", decide_while_changed)
    decide = Counting(lambda *args: False)
    assert cache.authorized("u-a", "p", "t", decide) is False and decide.calls == 1


def test_bypassed_while_disconnected_and_flushed_on_reconnect():
    cache = SessionCache(ttl=30, clock=Clock())
    fetch = Counting(user_of)
    cache.session_user("a-1", fetch)
    cache.session_user("a-1", fetch)
    assert fetch.calls == 2  # never connected yet: nothing stored, nothing served

    cache.connected()
    cache.session_user("a-1", fetch)
    cache.session_user("a-1", fetch)
    assert fetch.calls == 3

    cache.disconnected()  # broker lost: events may be missed from now on
    cache.session_user("a-1", fetch)
    assert fetch.calls == 4
    cache.connected()  # what was cached before the loss is gone
    cache.session_user("a-1", fetch)
    assert fetch.calls == 5


def test_a_fetch_that_spans_a_reconnect_is_not_stored(cache):
    def fetch_across_reconnect(session_id):
        cache.disconnected()
        cache.connected()
        return user_of(session_id)

    cache.session_user("a-1", fetch_across_reconnect)
    fetch = Counting(user_of)
    cache.session_user("a-1", fetch)
    assert fetch.calls == 1


def test_the_cache_stays_bounded(cache):
    cache.max_entries = 10
    for i in range(25):
        cache.session_user(f"s{i}-x", user_of)
    assert len(cache._sessions) <= 10


def test_threads_share_it_safely(cache):
    errors = []

    def work(n):
        try:
            for i in range(300):
                cache.session_user(f"s{i % 20}-x", user_of)
                cache.authorized(f"u-s{i % 20}", "p", "t", lambda *a: True)
                if i % 7 == n:
                    cache.on_event("identity", {"resource": {"id": f"u-s{i % 20}"}})
        except Exception as error:  # pragma: no cover - what the test looks for
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_2fa_policy_event_drops_every_session_and_decision(cache):
    # Turning the policy on makes super admins who were fine a moment ago owe an enrollment.
    sessions, decide = Counting(user_of), Counting(lambda *args: True)
    for sid in ("a-1", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "admin.users", "t", decide)
    cache.on_event("identity", {"type": identity_events.TWO_FACTOR_POLICY_CHANGED,
                                "resource": {"type": "setting", "id": "2fa_policy"}})
    for sid in ("a-1", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "admin.users", "t", decide)
    assert (sessions.calls, decide.calls) == (4, 2)


def test_the_listener_queue_is_private_and_bound_to_what_changes_access():
    queue = listener_queue("gateway.session-cache.test")
    assert queue.exclusive and queue.auto_delete
    keys = {(b.exchange.name, b.routing_key) for b in queue.bindings}
    assert ({("identity.events", t) for t in identity_events.ACCESS_CHANGING + identity_events.EVERYONE_CHANGING}
            | {("rbac.events", t) for t in rbac_events.DECISION_CHANGING}
            | {("tenancy.events", t) for t in TENANCY_ACCESS_CHANGING}) == keys
    assert ("identity.events", identity_events.TWO_FACTOR_POLICY_CHANGED) in keys
    assert ("rbac.events", rbac_events.AUTHORIZATION_DENIED) not in keys  # a denial changes no decision


def test_a_membership_event_drops_what_is_known_of_that_user_and_a_deleted_tenant_every_decision(cache):
    sessions, decide = Counting(lambda sid: {"id": "u-" + sid[0]}), Counting(lambda *args: True)
    for sid in ("a-1", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "tenant_access", "t", decide)
    cache.authorized("u-b", "tenant_access", "t", decide)
    cache.on_event("tenancy", {"type": "tenancy.user_removed_from_tenant", "data": {"user_id": "u-a", "tenant_id": "t"},
                               "resource": {"type": "user", "id": "u-a"}})
    for sid in ("a-1", "b-1"):
        cache.session_user(sid, sessions)
    cache.authorized("u-a", "tenant_access", "t", decide)
    cache.authorized("u-b", "tenant_access", "t", decide)
    assert (sessions.calls, decide.calls) == (3, 3)  # only u-a asked again
    cache.on_event("tenancy", {"type": "tenancy.tenant_deleted", "resource": {"type": "tenant", "id": "t"}})
    cache.authorized("u-b", "tenant_access", "t", decide)
    assert decide.calls == 4
