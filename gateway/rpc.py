"""The gateway's RPC client: kernel.amqp.rpc_client's pool, its calls named `gateway`.

Any number of gunicorn threads share one AMQP connection per process; see
kernel/amqp/rpc_client.py for what a caller may rely on (timeouts, a lost broker, unknown
services, domain errors rebuilt as their kernel.errors classes) and kernel/amqp/__init__.py
for why the gateway does not use nameko's standalone proxy.
"""
from __future__ import annotations

from kernel.amqp.rpc_client import BrokerUnavailable, ReplyLost, RpcPool as _RpcPool

__all__ = ["BrokerUnavailable", "ReplyLost", "RpcPool"]

CALLER = "gateway"  # first element of the call id stack the services see; prefix of the reply queue


class RpcPool(_RpcPool):
    """One per gateway app (gateway/app.py): `with pool.client() as rpc: rpc.identity.login(...)`."""

    caller = CALLER
