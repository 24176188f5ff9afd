"""Per-process cache of "who is this session" and "may this user do that", dropped by events.

Asking identity and rbac on every request is always fresh but costs a few ms of CPU
each. This cache keeps their answers for a short while and relies on events to forget
them the moment they change:

- identity events that change access (services.identity.events.ACCESS_CHANGING) drop
  everything known about that user (event.resource.id); those that may change what
  any user owes (EVERYONE_CHANGING: the 2FA policy) drop everything;
- any rbac event that can change a decision drops every authorization decision;
- tenancy's membership events drop everything known about that user (their tenant access
  and sessions), a deleted tenant drops every decision (super admins' access to it).

Correctness rules:
- While the event listener is not connected (startup, broker loss) the cache is not
  used at all, and it is emptied when the listener (re)connects: an answer is never
  served from a cache that may have missed an event.
- No stale fill: the generation is read before asking the service, and the answer is
  stored only if no invalidation happened in between.
- One lock guards the dicts (gunicorn gthread workers); the listener thread starts
  lazily in each process after fork, like gateway/rpc.py's pool.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Callable

from kombu import Queue, binding

from kernel.amqp.listener import EventListener
from kernel.topology import events_exchange
from contracts.events import identity as identity_events
from contracts.events import payload_class
from contracts.events import rbac as rbac_events
from contracts.events import tenancy as tenancy_events

# Tenancy events that change who may work in a tenant.
TENANCY_ACCESS_CHANGING = (tenancy_events.USER_ASSIGNED_TO_TENANT, tenancy_events.USER_REMOVED_FROM_TENANT,
                           tenancy_events.TENANT_DELETED)

log = logging.getLogger("gatehouse.gateway.session_cache")

TTL_SECONDS = 30.0
MAX_ENTRIES = 20_000


class SessionCache:
    """The cache itself: no broker here, the listener calls connected()/disconnected()/on_event()."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._connected = False
        self._generation = 0  # bumped by every invalidation and (dis)connection
        self._sessions: dict[str, tuple[dict, float]] = {}  # session id -> (user, expires)
        self._user_sessions: dict[str, set[str]] = {}  # user id -> its cached session ids
        self._decisions: dict[tuple[str, str, str], tuple[bool, float]] = {}

    # --- reads -------------------------------------------------------------------

    def session_user(self, session_id: str, fetch: Callable[[str], dict],
                     cacheable: Callable[[dict], bool] = lambda user: True) -> dict:
        """The user of a live session: cached, or fetch(session_id) (which raises when it is not live)."""
        with self._lock:
            hit = self._sessions.get(session_id) if self._connected else None
            if hit and hit[1] > self.clock():
                return hit[0]
            generation = self._generation
        user = fetch(session_id)
        if cacheable(user):
            with self._lock:
                if self._may_store(generation):
                    self._sessions[session_id] = (user, self.clock() + self.ttl)
                    self._user_sessions.setdefault(user["id"], set()).add(session_id)
        return user

    def authorized(self, user_id: str, permission: str, tenant_id: str,
                   fetch: Callable[[str, str, str], bool]) -> bool:
        key = (user_id, permission, tenant_id)
        with self._lock:
            hit = self._decisions.get(key) if self._connected else None
            if hit and hit[1] > self.clock():
                return hit[0]
            generation = self._generation
        allowed = bool(fetch(user_id, permission, tenant_id))
        with self._lock:
            if self._may_store(generation):
                self._decisions[key] = (allowed, self.clock() + self.ttl)
        return allowed

    def _may_store(self, generation: int) -> bool:
        """Under the lock: connected, nothing invalidated since `generation` was read, and room left."""
        if not self._connected or generation != self._generation:
            return False
        if len(self._sessions) + len(self._decisions) >= self.max_entries:
            self._clear()  # rare: simpler and safer than an eviction order
        return True

    # --- invalidation ------------------------------------------------------------

    def forget_user(self, user_id: str | None) -> None:
        """Drop the user's sessions and authorization decisions (also used right after a
        change made through this very process, before its event comes back)."""
        with self._lock:
            self._generation += 1
            for session_id in self._user_sessions.pop(user_id, ()):
                self._sessions.pop(session_id, None)
            for key in [key for key in self._decisions if key[0] == user_id]:
                del self._decisions[key]

    def forget_all(self) -> None:
        with self._lock:
            self._generation += 1
            self._clear()

    def forget_decisions(self) -> None:
        with self._lock:
            self._generation += 1
            self._decisions.clear()

    def on_event(self, source: str, body: dict) -> None:
        if source == "identity" and body.get("type") in identity_events.EVERYONE_CHANGING:
            self.forget_all()
        elif source == "identity":
            self.forget_user((body.get("resource") or {}).get("id"))
        elif source == "tenancy" and body.get("type") != tenancy_events.TENANT_DELETED:
            # a membership event (UserAssignedToTenant, UserRemovedFromTenant): about its user
            self.forget_user(payload_class(body.get("type")).from_data(body.get("data")).user_id)
        else:
            self.forget_decisions()

    def connected(self) -> None:
        """The listener consumes again: whatever was cached before may have missed events."""
        self._restart(connected=True)

    def disconnected(self) -> None:
        self._restart(connected=False)

    def _restart(self, connected: bool) -> None:
        with self._lock:
            self._generation += 1
            self._clear()
            self._connected = connected

    @property
    def is_connected(self) -> bool:
        return self._connected

    def _clear(self) -> None:
        self._sessions.clear()
        self._user_sessions.clear()
        self._decisions.clear()


def listener_queue(name: str) -> Queue:
    """This process's own queue: exclusive and auto-deleted, gone with its connection."""
    bindings = [binding(events_exchange("identity"), routing_key=type_)
                for type_ in identity_events.ACCESS_CHANGING + identity_events.EVERYONE_CHANGING]
    bindings += [binding(events_exchange("rbac"), routing_key=type_) for type_ in rbac_events.DECISION_CHANGING]
    bindings += [binding(events_exchange("tenancy"), routing_key=type_) for type_ in TENANCY_ACCESS_CHANGING]
    return Queue(name, bindings=bindings, exclusive=True, auto_delete=True, durable=False)


class ProcessSessionCache:
    """The gateway's handle: one SessionCache and one listener thread per process (fork-safe)."""

    def __init__(self, amqp_uri: str, ttl: float = TTL_SECONDS):
        self.amqp_uri = amqp_uri
        self.ttl = ttl
        self._pid = None
        self._lock = threading.Lock()
        self._cache: SessionCache | None = None

    @property
    def cache(self) -> SessionCache:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._cache = SessionCache(self.ttl)
                    thread = threading.Thread(target=self._listen, args=(self._cache,),
                                              name="session-cache-listener", daemon=True)
                    thread.start()
                    self._pid = os.getpid()
        return self._cache

    def _listen(self, cache: SessionCache) -> None:
        name = f"gateway.session-cache.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        # While it is not consuming, the cache is not used (see the module's correctness rules);
        # an unreadable event empties it rather than risk staleness.
        EventListener(self.amqp_uri, listener_queue(name), cache.on_event, on_connected=cache.connected,
                      on_disconnected=cache.disconnected, on_unreadable=cache.forget_all,
                      name="session cache listener", logger=log).run()
