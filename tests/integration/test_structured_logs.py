"""Structured-log fields (issue 9): one request id ties the gateway's request line to the
lines of the services that handled it, with the user and the tenant."""
import json
import uuid

from tests.harness import eventually


def log_lines(platform, process: str, request_id: str) -> list[dict]:
    path = platform.base_dir / "logs" / f"{process}.log"
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if request_id not in line:
            continue
        try:
            found.append(json.loads(line))
        except ValueError:  # a line some library printed itself
            continue
    return found


def test_a_request_id_ties_the_gateway_line_to_the_service_lines(platform):
    admin = platform.admin()
    me = admin.get("/api/v1/me").json()
    request_id = f"logs-{uuid.uuid4().hex}"
    missing = admin.get(f"/api/v1/users/{uuid.uuid4()}", headers={"X-Request-ID": request_id})
    assert missing.status_code == 404 and missing.headers["X-Request-ID"] == request_id

    [request] = eventually(lambda: log_lines(platform, "gateway", request_id), 20, message="gateway request line")
    assert request["message"] == "request" and request["service"] == "gateway"
    assert request["status"] == 404 and request["route"] == "/api/v1/users/<string:user_id>"
    assert request["user_id"] == me["id"] and request["tenant_id"] == me["tenant_id"]
    assert request["latency_ms"] >= 0

    # identity answered the gateway's lookup with 404: that call's line is at INFO, with the request's context
    calls = eventually(lambda: [line for line in log_lines(platform, "identity", request_id)
                                if line["message"] == "call"], 20, message="identity call line")
    [lookup] = [line for line in calls if line["method"] == "identity.user_tenants"]
    assert lookup["service"] == "identity" and lookup["level"] == "INFO" and lookup["outcome"] == "not_found"
    assert lookup["user_id"] == me["id"] and lookup["tenant_id"] == me["tenant_id"]
    assert lookup["duration_ms"] >= 0


def test_no_password_reaches_the_logs(platform, unique):
    password = f"never-logged-{unique}"
    platform.api().post("/api/v1/auth/login", json={"login": f"nobody{unique}", "password": password})
    platform.admin()  # a request after it: its lines are written by then
    for process in ("gateway", "identity"):
        assert password not in (platform.base_dir / "logs" / f"{process}.log").read_text(errors="replace")
