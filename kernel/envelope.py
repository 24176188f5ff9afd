"""The domain event envelope every service publishes and every consumer reads.

Schema version 1. Routing: exchange `<source>.events` (topic), routing key = type.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

SCHEMA_VERSION = 1

CATEGORIES = frozenset({"auth", "users", "rbac", "tenancy", "sync", "operations", "settings", "audit", "system"})
OUTCOMES = frozenset({"success", "failure"})

# Names that must never appear as keys of event data, at any depth: events are
# stored forever by audit and fanned out to every consumer.
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|hash|otp|recovery|(^|_)code$|credential|private", re.I)


class SecretInEvent(ValueError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who caused the event, as seen by the gateway."""

    user_id: str | None = None
    username: str | None = None
    ip: str | None = None
    request_id: str | None = None
    # Snapshots taken when the event happens, so the audit trail still reads as who it
    # was after the user is renamed or removed.
    display_name: str | None = None
    email: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> "Actor":
        data = data or {}
        return cls(**{k: data.get(k) for k in _ACTOR_FIELDS})

    @property
    def is_operator(self) -> bool:
        """The operator CLI (a super admin for every check): no user id, the name `cli`."""
        from kernel import OPERATOR
        return self.user_id is None and self.username == OPERATOR

    def as_user(self, user_id: str, username: str, display_name: str | None = None,
                email: str | None = None) -> "Actor":
        """The same request, now known to be made by this user (e.g. after login)."""
        return Actor(user_id=user_id, username=username, ip=self.ip, request_id=self.request_id,
                     display_name=display_name, email=email)


_ACTOR_FIELDS = ("user_id", "username", "ip", "request_id", "display_name", "email")


SYSTEM = Actor(username="system")


@dataclass(frozen=True)
class Resource:
    type: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Event:
    type: str  # "<source>.<action>", also the routing key
    source: str
    category: str
    actor: Actor
    resource: Resource
    data: dict = field(default_factory=dict)
    outcome: str = "success"
    # Every tenant whose audit view shows the event: where it happened and, for events
    # about a user, each tenant that user belongs to.
    tenant_ids: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=lambda: utc_now_iso())
    version: int = SCHEMA_VERSION

    def __post_init__(self):
        if not self.type.startswith(self.source + "."):
            raise ValueError(f"event type {self.type!r} must start with its source {self.source!r}")
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown event category {self.category!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        _refuse_secrets(self.data, "data")
        # Callers pass a list or a single-tenant tuple; keep one ordered, duplicate-free tuple.
        object.__setattr__(self, "tenant_ids", tuple(dict.fromkeys(t for t in self.tenant_ids if t)))

    @property
    def action(self) -> str:
        return self.type.split(".", 1)[1]

    @property
    def exchange(self) -> str:
        return exchange_of(self.source)

    def to_dict(self) -> dict:
        body = asdict(self)
        body["action"] = self.action
        return body

    @classmethod
    def from_dict(cls, body: dict) -> "Event":
        if not isinstance(body, dict):
            raise ValueError("event body is not an object")
        if body.get("version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported event schema version {body.get('version')!r}")
        resource = body.get("resource") or {}
        return cls(
            id=body["id"], type=body["type"], source=body["source"], category=body["category"],
            occurred_at=body["occurred_at"], actor=Actor.from_dict(body.get("actor")),
            resource=Resource(resource.get("type", "unknown"), resource.get("id"), resource.get("name")),
            data=body.get("data") or {}, outcome=body.get("outcome", "success"),
            tenant_ids=tuple(body.get("tenant_ids") or ()), version=body["version"],
        )


def exchange_of(service: str) -> str:
    return f"{service}.events"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_now_iso() -> str:
    return utc_now().isoformat(timespec="microseconds").replace("+00:00", "Z")


def looks_secret(key) -> bool:
    """A data key that must never appear in an event (nor in anything showing one)."""
    return bool(_SECRET_KEY.search(str(key)))


def _refuse_secrets(value, path: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if looks_secret(key):
                raise SecretInEvent(f"event field {path}.{key} looks like a secret; events never carry secrets")
            _refuse_secrets(inner, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            _refuse_secrets(inner, f"{path}[{i}]")
