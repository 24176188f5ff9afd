"""gateway.rpc.RpcPool: which clients it reuses and which it throws away."""
import pytest
from nameko.exceptions import RpcTimeout

from gateway import rpc
from kernel.errors import NotFound


class FakeProxy:
    """Stands in for nameko's ClusterRpcProxy: counts starts and stops."""

    started = []

    def __init__(self, config, timeout):
        self.stopped = False

    def start(self):
        FakeProxy.started.append(self)
        return self

    def stop(self):
        self.stopped = True


@pytest.fixture
def pool(monkeypatch):
    FakeProxy.started = []
    monkeypatch.setattr(rpc, "ClusterRpcProxy", FakeProxy)
    return rpc.RpcPool({"AMQP_URI": "memory://"}, size=4, timeout=1)


def test_an_idle_client_is_reused_even_after_a_domain_error(pool):
    with pool.client() as first:
        pass
    with pytest.raises(NotFound):
        with pool.client() as again:
            assert again is first
            raise NotFound("no such user")
    with pool.client() as third:
        assert third is first
    assert len(FakeProxy.started) == 1


def test_a_broker_failure_retires_every_idle_client_older_than_it(pool):
    """After a broker restart idle clients have lost their reply queues: none may be reused."""
    with pool.client() as older:
        with pool.client() as failing:
            pass
    with pytest.raises(RpcTimeout):
        with pool.client() as failing:
            raise RpcTimeout(1)

    with pool.client() as fresh:
        assert fresh is not older and fresh is not failing
    assert failing.stopped and older.stopped
    with pool.client() as reused:  # clients started after the failure are fine
        assert reused is fresh
