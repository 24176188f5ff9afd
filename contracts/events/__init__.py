"""Typed event payloads: the `data` of every envelope (kernel.envelope.Event), one frozen
dataclass per event type, registered by type.

- `payload(TYPE, category)` makes a class a frozen dataclass payload of that event type;
  its docstring names the event's subscribers (docs/architecture.md lists them).
- `Payload.to_data()` is the dict that travels as `event.data`, exactly as before typed
  payloads existed (the envelope's SCHEMA_VERSION is unchanged); `from_data(dict)` and
  `from_event(event)` read it back, tolerating absent optional fields (every field with a
  default) and ignoring unknown ones, so an older or newer producer's event still reads.
- A wire key that is not a Python name (`from`, `to`...) is declared with `key("from")`;
  an optional key left out of the data when None with `omitted()`; a nested payload with
  `nested(Class)`.
- `event(payload, actor, resource, ...)` builds the envelope: the one event factory every
  producer uses (source and category come from the payload's type).
- `payload_of(event)`: the typed payload of any known event.

No payload field may be named like a secret (kernel.envelope.looks_secret): a class that tries
is refused when it is defined, and the envelope still refuses secret keys at any depth.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from kernel.envelope import Actor, Event, Resource, looks_secret

_REGISTRY: dict[str, type["Payload"]] = {}


def key(name: str, **kwargs) -> Any:
    """A field whose wire key is `name` (a keyword such as "from")."""
    return dataclasses.field(metadata={"key": name}, **kwargs)


def omitted(**kwargs) -> Any:
    """An optional field left out of the data when None (present only when it applies)."""
    kwargs.setdefault("default", None)
    return dataclasses.field(metadata={"omit_none": True}, **kwargs)


def nested(cls: type, **kwargs) -> Any:
    """A field holding another payload-like dataclass, a dict on the wire."""
    return dataclasses.field(metadata={"nested": cls}, **kwargs)


class Payload:
    """Base of every payload class (made a frozen dataclass by `payload`)."""

    TYPE: ClassVar[str] = ""
    CATEGORY: ClassVar[str] = ""

    def to_data(self) -> dict:
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            if f.metadata.get("nested") and value is not None:
                value = value.to_data()
            data[f.metadata.get("key", f.name)] = value
        return data

    @classmethod
    def from_data(cls, data: dict | None):
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: event data is not an object")
        values = {}
        for f in dataclasses.fields(cls):
            wire = f.metadata.get("key", f.name)
            if wire not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{cls.__name__}: event data lacks {wire!r}")
                continue
            value = data[wire]
            if (inner := f.metadata.get("nested")) and isinstance(value, dict):
                value = inner.from_data(value)
            values[f.name] = value
        return cls(**values)

    @classmethod
    def from_event(cls, event: Event):
        if cls.TYPE and event.type != cls.TYPE:
            raise ValueError(f"{cls.__name__} reads {cls.TYPE} events, not {event.type}")
        return cls.from_data(event.data)

    @classmethod
    def wire_keys(cls) -> tuple[str, ...]:
        return tuple(f.metadata.get("key", f.name) for f in dataclasses.fields(cls))


def _refuse_secret_keys(cls) -> None:
    for wire in cls.wire_keys():
        if looks_secret(wire):
            raise TypeError(f"{cls.__name__}.{wire} looks like a secret; events never carry secrets")


def value(cls):
    """A nested value of a payload (not an event of its own): a frozen dataclass with to_data/from_data."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    _refuse_secret_keys(cls)
    return cls


def payload(type_: str, category: str):
    """Class decorator: the payload of events of `type_` (published with `category`)."""
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        cls.TYPE, cls.CATEGORY = type_, category
        if type_ in _REGISTRY:
            raise TypeError(f"{type_} has two payload classes: {_REGISTRY[type_].__name__}, {cls.__name__}")
        _refuse_secret_keys(cls)
        _REGISTRY[type_] = cls
        return cls
    return wrap


def payload_class(type_: str) -> type[Payload]:
    """The payload class of an event type (KeyError for an unknown type)."""
    _load_all()
    return _REGISTRY[type_]


def payload_of(event: Event) -> Payload:
    """The typed payload of a known event."""
    return payload_class(event.type).from_event(event)


def registry() -> dict[str, type[Payload]]:
    """Every event type -> its payload class."""
    _load_all()
    return dict(_REGISTRY)


def source_of(type_: str) -> str:
    return type_.split(".", 1)[0]


def event(data: Payload, actor: Actor, resource: Resource, *, outcome: str = "success", tenant_ids=(),
          category: str | None = None) -> Event:
    """The envelope of a payload: source and category from its type (category may be overridden
    by a producer whose event changes category with what it is about)."""
    return Event(type=data.TYPE, source=source_of(data.TYPE), category=category or data.CATEGORY, actor=actor,
                 resource=resource, data=data.to_data(), outcome=outcome, tenant_ids=tuple(tenant_ids))


SOURCES = ("identity", "rbac", "tenancy", "proxmox_sync", "audit")


def _load_all() -> None:
    """Every source's payloads registered (their modules import this one, so not at its top)."""
    from contracts.events import audit, identity, proxmox_sync, rbac, tenancy  # noqa: F401
