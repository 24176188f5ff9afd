"""The gateway's plumbing on the real broker: the RPC pool, readiness, logs."""
import json
import os
import threading
import time

import pytest
from nameko.exceptions import RpcTimeout

from gateway.rpc import RpcPool
from kernel.config import Config
from tests.harness import eventually


@pytest.fixture
def pool(platform):
    pool = RpcPool(Config.from_env(platform.env).nameko(), size=4, timeout=5)
    yield pool
    pool.close()


def test_pool_is_safe_under_many_threads(pool):
    results, errors = [], []

    def work():
        try:
            for _ in range(15):
                with pool.client() as rpc:
                    results.append(rpc.identity.health()["service"])
        except Exception as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == ["identity"] * 240
    assert pool.connections_opened == 1  # 16 threads, one connection: calls are multiplexed on it


def test_a_service_no_queue_takes_is_unknown_at_once(pool):
    from nameko.exceptions import UnknownService

    with pytest.raises(UnknownService):
        with pool.client() as rpc:
            rpc.nosuchservice.health()
    with pool.client() as rpc:  # the connection carries on
        assert rpc.identity.health()["service"] == "identity"


def test_pool_rebuilds_itself_after_fork(pool):
    with pool.client() as rpc:
        assert rpc.rbac.health()["status"] == "ok"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child must not reuse the parent's AMQP connections
        try:
            with pool.client() as rpc:
                answer = rpc.rbac.health()["service"]
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 100) == b"rbac"
    with pool.client() as rpc:  # the parent's clients still work
        assert rpc.rbac.health()["service"] == "rbac"


def test_a_silent_service_times_out_and_readiness_names_it(platform):
    platform.supervisor.kill("tenancy")
    try:
        quick = RpcPool(Config.from_env(platform.env).nameko(), size=1, timeout=1)
        started = time.monotonic()
        with pytest.raises(RpcTimeout):
            with quick.client() as rpc:
                rpc.tenancy.health()
        assert time.monotonic() - started < 3
        ready = platform.api().get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["tenancy"].startswith("unavailable")
        assert ready.json()["checks"]["identity"] == "ok"
    finally:
        platform.restart("tenancy")
        platform.wait_ready()


def test_gateway_logs_are_json_with_the_request_id(platform, unique):
    platform.api().get("/api/v1/me", headers={"X-Request-ID": f"log-{unique}"})

    def logged():
        for line in (platform.base_dir / "logs" / "gateway.log").read_text().splitlines():
            if f"log-{unique}" in line:
                return json.loads(line)
        return None

    record = eventually(logged, message="gateway log line")
    assert record["request_id"] == f"log-{unique}"
    assert record["status"] == 401 and record["path"] == "/api/v1/me"
    assert record["service"] == "gateway" and "latency_ms" in record
