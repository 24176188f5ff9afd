"""Metrics without a broker: the gateway's route labels and token, the per-process port scheme,
and the scrape-time collectors of a service (outbox backlog, dead letters, sync lag)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.app import create_app
from gateway.metrics import token_accepted
from kernel import SERVICES
from kernel.config import Config
from kernel.envelope import utc_now
from kernel.errors import NotFound
from kernel.metrics import EVENTS_CONSUMED, Cached, ServiceCollector, count_consumed, outcome_of
from ops.serve import prepare_metrics_folder
from ops.supervisor import metrics_port
from services.proxmox_sync import storage
from services.proxmox_sync.service import sync_metrics
from tests.harness import metric
from tests.unit.conftest import migrated


def gateway(tmp_path, **settings):
    return create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), **settings})).test_client()


def scrape(client, **headers) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain")
    return response.text


# --- gateway -------------------------------------------------------------------------------

def test_requests_are_labelled_with_their_route_template_never_the_raw_path(tmp_path):
    client = gateway(tmp_path)
    route = "/api/v1/users/<string:user_id>"
    before = scrape(client)
    client.get("/api/v1/users/raw-id-4711")
    client.get("/api/no/such/place-4712")  # other paths are the console page
    after = scrape(client)
    labels = {"method": "GET", "route": route, "status": "401"}
    assert metric(after, "gatehouse_http_requests_total", **labels) == \
        metric(before, "gatehouse_http_requests_total", **labels) + 1
    assert metric(after, "gatehouse_http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert metric(after, "gatehouse_http_request_duration_seconds_count", method="GET", route=route) >= 1
    assert "raw-id-4711" not in after and "place-4712" not in after


def test_a_made_up_method_is_counted_as_other_never_as_its_own_label(tmp_path):
    client = gateway(tmp_path)
    before = scrape(client)
    client.open("/api/v1/me", method="ZZZA1")
    client.open("/api/v1/me", method="QWERTYUIOP")
    after = scrape(client)
    assert "ZZZA1" not in after and "QWERTYUIOP" not in after
    labels = {"method": "other", "route": "unmatched", "status": "405"}  # no rule takes such a method
    assert metric(after, "gatehouse_http_requests_total", **labels) == \
        metric(before, "gatehouse_http_requests_total", **labels) + 2


def test_metrics_is_not_part_of_the_api_spec(tmp_path):
    assert "/metrics" not in gateway(tmp_path).get("/api/v1/openapi.json").get_json()["paths"]


def test_a_metrics_token_is_required_when_set(tmp_path):
    client = gateway(tmp_path, GATEHOUSE_METRICS_TOKEN="s3cret-metrics")
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "gatehouse_http_requests_total" in scrape(client, Authorization="Bearer s3cret-metrics")


@pytest.mark.parametrize("expected, header, accepted", [
    ("", None, True), ("", "Bearer anything", True),
    ("tok", None, False), ("tok", "", False), ("tok", "Bearer tok", True), ("tok", "bearer tok", True),
    ("tok", "Bearer tok2", False), ("tok", "Basic tok", False), ("tok", "tok", False), ("tok", "Bearer ", False),
])
def test_token_check(expected, header, accepted):
    assert token_accepted(expected, header) is accepted


# --- the ports of service processes ------------------------------------------------------------

def test_each_service_process_gets_its_own_metrics_port():
    ports = [metrics_port(9100, name, instance) for instance in (0, 1) for name in SERVICES]
    assert ports == list(range(9100, 9100 + 2 * len(SERVICES)))
    assert metrics_port(0, "identity") == 0  # off stays off
    assert metrics_port(9100, "gateway") == 0  # the gateway serves /metrics on its HTTP port


# --- service collectors -------------------------------------------------------------------------

class FakeDb:
    def __init__(self, backlog):
        self.backlog = backlog

    def outbox_backlog(self):
        if isinstance(self.backlog, Exception):
            raise self.backlog
        return self.backlog


def collected(collector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_the_collector_reads_backlog_and_dead_letters_once_per_scrape():
    reads = []

    def dead_letters():
        reads.append(1)
        return {"rbac.on_user": 2, "rbac.on_tenant": 0}

    text = collected(ServiceCollector("rbac", FakeDb(3), dead_letters))
    assert metric(text, "gatehouse_outbox_backlog", service="rbac") == 3
    assert metric(text, "gatehouse_dead_letters", service="rbac", queue="rbac.on_user") == 2
    assert len(reads) == 1


def test_a_scrape_survives_an_unreadable_database_or_broker():
    def broker_away():
        raise ConnectionRefusedError()

    text = collected(ServiceCollector("rbac", FakeDb(RuntimeError("db away")), broker_away))
    assert "# TYPE gatehouse_outbox_backlog gauge" in text
    assert "gatehouse_outbox_backlog{" not in text


def test_dead_letter_counts_are_cached_between_scrapes():
    now, reads = [0.0], []
    cached = Cached(lambda: reads.append(1) or len(reads), 5.0, clock=lambda: now[0])
    assert cached.get() == 1 and cached.get() == 1
    now[0] = 5.0
    assert cached.get() == 2


def test_rpc_outcome_is_ok_or_the_domain_errors_code():
    assert outcome_of(None) == "ok"
    assert outcome_of((NotFound, NotFound("x", code="user_not_found"), None)) == "user_not_found"
    assert outcome_of((KeyError, KeyError("secret"), None)) == "internal_error"


def test_consumed_events_are_counted_by_source_and_type():
    message = SimpleNamespace(delivery_info={"exchange": "identity.events", "routing_key": "identity.user_created"})
    labels = dict(service="svc", source="identity", type="identity.user_created", outcome="ok")
    before = EVENTS_CONSUMED.labels(**labels)._value.get()
    count_consumed("svc", message, "ok")
    assert EVENTS_CONSUMED.labels(**labels)._value.get() == before + 1


def test_sync_lag_is_the_age_of_each_targets_oldest_work(tmp_path):
    db = migrated("proxmox_sync", tmp_path / "proxmox_sync.db", storage.metadata)
    try:
        now = utc_now()
        with db.unit_of_work() as uow:
            storage.ensure_target(uow.session, "ldap", None)
            storage.ensure_target(uow.session, "pve:c1", "t1").failing_since = now
            storage.ensure_target(uow.session, "pve:c2", "t1")
            storage.enqueue(uow.session, "pve:c1", "full", now - timedelta(seconds=90))
            storage.enqueue(uow.session, "pve:c1", "user:u1", now - timedelta(seconds=30))
            uow.commit()
        text = collected(ServiceCollector("proxmox_sync", db, dict, lambda db: sync_metrics(db, now)))
        assert metric(text, "gatehouse_sync_lag_seconds", service="proxmox_sync", target="pve:c1") == \
            pytest.approx(90, abs=1)
        assert metric(text, "gatehouse_sync_lag_seconds", service="proxmox_sync", target="ldap") == 0
        assert metric(text, "gatehouse_sync_target_up", service="proxmox_sync", target="pve:c1") == 0
        assert metric(text, "gatehouse_sync_target_up", service="proxmox_sync", target="pve:c2") == 1
    finally:
        db.dispose()


# --- the gateway's multiprocess folder ---------------------------------------------------------

def test_the_gateway_master_does_not_load_prometheus_client_before_its_folder_is_set():
    """prometheus_client picks its multiprocess mode when first imported: in the master before the
    folder is named, the forked workers would keep per-process counts and scrapes would disagree."""
    code = "import sys, ops.serve; assert 'prometheus_client' not in sys.modules, 'imported too early'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_metrics_folder_is_emptied_at_each_start_and_named_for_the_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored (unset) after the test
    config = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_HTTP_PORT": "8123"})
    folder = prepare_metrics_folder(config)
    (folder / "counter_4711.db").write_bytes(b"stale")
    assert prepare_metrics_folder(config) == folder == tmp_path / "metrics" / "gateway-8123"
    assert list(folder.iterdir()) == []
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
