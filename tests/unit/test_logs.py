"""Structured logs: the bound context, secret redaction (kernel/logs.py) and the per-call
context of services (kernel/calllog.py)."""
import io
import json
import logging
import sys

import pytest

from kernel import calllog, logs
from kernel.errors import NotFound


@pytest.fixture
def lines(monkeypatch):
    """Configure logging as a service does, into a buffer; yields a function reading the JSON lines."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("identity", "DEBUG")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_lines_carry_the_bound_context_until_unbound(lines):
    log = logging.getLogger("t")
    token = logs.bind(request_id="r1", user_id="u1", tenant_id="t1", empty=None)
    log.info("inside")
    log.info("explicit wins", extra={"request_id": "other"})
    logs.unbind(token)
    log.info("outside")
    inside, explicit, outside = lines()
    assert (inside["service"], inside["request_id"], inside["user_id"], inside["tenant_id"]) == ("identity", "r1", "u1", "t1")
    assert "empty" not in inside
    assert explicit["request_id"] == "other"
    assert not {"request_id", "user_id", "tenant_id"} & set(outside)


def test_secret_looking_extra_fields_are_redacted_at_any_depth(lines):
    logging.getLogger("t").warning("careful", extra={
        "password": "hunter2", "refresh_token": "abc", "user_id": "u1",
        "settings": {"host": "smtp", "smtp_password": "pw", "nested": [{"secret": "s"}]}})
    [line] = lines()
    assert line["password"] == line["refresh_token"] == logs.REDACTED
    assert line["user_id"] == "u1"
    assert line["settings"] == {"host": "smtp", "smtp_password": logs.REDACTED, "nested": [{"secret": logs.REDACTED}]}
    assert "hunter2" not in json.dumps(line) and "pw" not in json.dumps(line["settings"])


def test_a_call_takes_its_context_from_the_callers_headers():
    headers = {"request_id": "r1", "user_id": "u1", "tenant_id": "t1", "call_id_stack": ["x"]}
    assert calllog.call_fields(headers, ({"user_id": "ignored"}, "x")) == {
        "request_id": "r1", "user_id": "u1", "tenant_id": "t1"}


def test_an_event_handler_takes_its_context_from_the_envelope():
    envelope = {"id": "e1", "type": "identity.user_created", "actor": {"user_id": "u1", "request_id": "r1"},
                "tenant_ids": ["t1", "t2"]}
    assert calllog.call_fields({}, (envelope,)) == {"request_id": "r1", "user_id": "u1", "tenant_id": "t1",
                                                    "event_id": "e1"}
    assert calllog.call_fields({}, ({"actor": {}},)) == {}
    assert calllog.call_fields({}, ()) == {}


def test_the_outcome_of_a_call_sets_its_level():
    assert calllog.outcome(None) == (logging.DEBUG, "ok")
    error = NotFound("No such user.", code="user_not_found")
    assert calllog.outcome((NotFound, error, None)) == (logging.INFO, "user_not_found")
    assert calllog.outcome((KeyError, KeyError("x"), None)) == (logging.WARNING, "KeyError")


class FakeEntrypoint:
    method_name = "get_user"


class FakeWorkerContext:
    service_name = "identity"
    entrypoint = FakeEntrypoint()
    data = {"request_id": "r9", "user_id": "u9", "tenant_id": "t9"}
    args = ("u1",)


def test_the_call_log_binds_the_call_and_logs_one_line(lines):
    provider, worker_ctx = calllog.CallLog(), FakeWorkerContext()
    provider.worker_setup(worker_ctx)
    logging.getLogger("services.identity").info("while handling")
    provider.worker_result(worker_ctx, exc_info=(NotFound, NotFound("No such user.", code="user_not_found"), None))
    provider.worker_teardown(worker_ctx)
    assert logs.current() == {}
    during, call = lines()
    assert during["request_id"] == call["request_id"] == "r9" and call["tenant_id"] == "t9"
    assert (call["message"], call["level"], call["method"], call["outcome"]) == (
        "call", "INFO", "identity.get_user", "user_not_found")
    assert call["duration_ms"] >= 0
