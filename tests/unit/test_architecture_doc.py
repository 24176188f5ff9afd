"""docs/architecture.md's table of events (type -> producer -> consumers) is true: it is made
from the payload classes' docstrings ("Subscribers: ..."), and those name exactly the handlers
the code declares (the services' @on_event consumers and the gateway's session cache bindings).
audit records every event of every source, so it is left out of each row.

Print the table: .venv/bin/python tests/unit/test_architecture_doc.py
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from contracts import events as contract

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
SERVICES = ("identity", "rbac", "tenancy", "proxmox_sync")
SESSION_CACHE = "gateway session cache"
BEGIN, END = "<!-- events table: begin -->", "<!-- events table: end -->"


def subscribers_in_docs() -> dict[str, set[str]]:
    found = {}
    for type_, cls in contract.registry().items():
        text = " ".join((cls.__doc__ or "").split())
        said = text.split("Subscribers:", 1)[1]
        found[type_] = {name for name in (*SERVICES, SESSION_CACHE) if re.search(rf"\b{name}\b", said)}
    return found


def subscribers_in_code() -> dict[str, set[str]]:
    from gateway.session_cache import listener_queue
    from kernel.consumer import EventConsumer
    found = {type_: set() for type_ in contract.registry()}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        for cls in (c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__):
            for fn in vars(cls).values():
                for entrypoint in getattr(fn, "nameko_entrypoints", ()):
                    if isinstance(entrypoint, EventConsumer):
                        assert "#" not in entrypoint.patterns, f"{service} consumes every event of {entrypoint.sources}"
                        for type_ in entrypoint.patterns:
                            found[type_].add(service)
    for binding in listener_queue("probe").bindings:
        found[binding.routing_key].add(SESSION_CACHE)
    return found


def table() -> str:
    docs = subscribers_in_docs()
    rows = ["| event | producer | consumers (besides audit) | payload |", "|---|---|---|---|"]
    for source in contract.SOURCES:
        module = importlib.import_module(f"contracts.events.{source}")
        for type_ in module.ALL:
            consumers = ", ".join(sorted(docs[type_])) or "-"
            rows.append(f"| `{type_}` | {source} | {consumers} | `{contract.payload_class(type_).__name__}` |")
    return "\n".join(rows)


def test_docstrings_name_the_consumers_the_code_declares():
    docs, code = subscribers_in_docs(), subscribers_in_code()
    wrong = {type_: {"docstring": sorted(docs[type_]), "code": sorted(code[type_])}
             for type_ in docs if docs[type_] != code[type_]}
    assert not wrong, wrong


def test_the_architecture_doc_holds_the_table():
    text = DOC.read_text()
    assert BEGIN in text and END in text
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == table(), "docs/architecture.md's events table is stale: print it with " \
                             "`.venv/bin/python tests/unit/test_architecture_doc.py`"


if __name__ == "__main__":
    print(table())
