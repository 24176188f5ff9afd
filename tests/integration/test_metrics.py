"""Prometheus metrics of the running platform: the gateway's /metrics adds up its workers'
counts by route template and status (never a raw id), each service process serves its own
(RPC durations, events, outbox backlog, dead letters, sync lag) on its own port, and a
metrics token closes the gateway's /metrics to scrapers without it."""
from __future__ import annotations

import uuid

import pytest
import requests

from ops.broker import free_port
from ops.supervisor import stop_group
from tests.harness import Api, eventually, metric

USERS = "/api/v1/users"
USER = "/api/v1/users/<string:user_id>"
LOGIN = "/api/v1/auth/login"


def scrape(url: str, **headers) -> str:
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def requests_total(text: str, route: str, status: int, method: str = "GET") -> float:
    return metric(text, "gatehouse_http_requests_total", method=method, route=route, status=str(status))


def test_gateway_counts_add_up_across_workers_by_route_template(platform, unique):
    assert platform.env["GATEHOUSE_GATEWAY_WORKERS"] == "2"
    gateway_metrics = platform.url + "/metrics"
    before = scrape(gateway_metrics)
    admin = platform.admin()  # a login
    missing_id = f"raw-{uuid.uuid4().hex}"
    assert admin.get(f"{USERS}/{missing_id}").status_code == 404
    assert admin.get(f"/api/no-such-route/{unique}").status_code == 404
    lists = 12  # new connections each: gunicorn's workers share them out
    for _ in range(lists):
        assert Api(platform.url, admin.token, admin.client_ip).get(USERS, params={"limit": 1}).status_code == 200
    after = scrape(gateway_metrics)

    assert requests_total(after, USERS, 200) - requests_total(before, USERS, 200) == lists
    assert requests_total(after, USER, 404) - requests_total(before, USER, 404) == 1
    assert requests_total(after, LOGIN, 200, "POST") - requests_total(before, LOGIN, 200, "POST") == 1
    assert requests_total(after, "unmatched", 404) - requests_total(before, "unmatched", 404) == 1
    assert metric(after, "gatehouse_http_request_duration_seconds_count", method="GET", route=USERS) >= lists
    assert missing_id not in after and unique not in after  # no raw path in any label
    assert "gatehouse_http_requests_in_flight" in after


def test_each_service_serves_its_own_metrics(platform, unique):
    user, _ = platform.create_user(f"metrics{unique}")  # registration, approval and a login: RPCs and events

    def identity_counted():
        text = scrape(platform.metrics_url("identity"))
        return (metric(text, "gatehouse_rpc_duration_seconds_count", service="identity", method="login",
                       outcome="ok") >= 1
                and metric(text, "gatehouse_events_published_total", service="identity",
                           type="identity.user_registered") >= 1
                and text)

    text = eventually(identity_counted, 20, 0.5, "identity's rpc and event counts")
    assert 'gatehouse_outbox_backlog{service="identity"}' in text
    assert "# TYPE gatehouse_dead_letters gauge" in text
    assert user["id"] not in text and unique not in text

    def audit_consumed():
        text = scrape(platform.metrics_url("audit"))
        return metric(text, "gatehouse_events_consumed_total", service="audit", source="identity",
                      type="identity.user_registered", outcome="ok") >= 1

    eventually(audit_consumed, 20, 0.5, "audit's ingest counted")

    rbac = scrape(platform.metrics_url("rbac"))
    assert 'gatehouse_dead_letters{queue="rbac.' in rbac  # one sample per consumer queue, read from the broker
    sync = scrape(platform.metrics_url("proxmox_sync"))
    assert "# TYPE gatehouse_sync_lag_seconds gauge" in sync
    assert "# TYPE gatehouse_sync_target_up gauge" in sync
    for name in ("rbac", "tenancy", "proxmox_sync"):
        assert f'gatehouse_outbox_backlog{{service="{name}"}}' in scrape(platform.metrics_url(name))


@pytest.fixture
def guarded_gateway(platform):
    """A second gateway of the platform, on its own port, whose /metrics needs a token."""
    port, token = free_port(), uuid.uuid4().hex
    process = platform.supervisor.start("gateway", {"GATEHOUSE_HTTP_PORT": str(port),
                                                    "GATEHOUSE_METRICS_TOKEN": token}, instance=1)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(url + "/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    try:
        eventually(up, 30, 0.3, "second gateway")
        yield url, token
    finally:
        stop_group(process)
        platform.supervisor.children.pop("gateway#1", None)


def test_a_metrics_token_keeps_scrapers_without_it_out(guarded_gateway):
    url, token = guarded_gateway
    refused = requests.get(url + "/metrics", timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert requests.get(url + "/metrics", headers={"Authorization": "Bearer not-it"}, timeout=10).status_code == 401
    text = scrape(url + "/metrics", Authorization=f"Bearer {token}")
    assert requests_total(text, "/metrics", 401) >= 2
    assert token not in text
