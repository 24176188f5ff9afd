"""A pool of nameko RPC clients that threads can share.

nameko's standalone proxy is not thread-safe, so each call checks one out. The
pool belongs to one process: after a fork (gunicorn) a fresh one is built lazily.
A client that failed on its connection or timed out is thrown away, not reused, and
so is every idle client older than that failure: they share the broker's fate, and
after a broker restart an idle client's reply queue is gone, so its next call would
publish a request whose answer the broker drops (a timeout per stale client).
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy

from kernel.errors import GatehouseError


class RpcPool:
    def __init__(self, nameko_config: dict, size: int, timeout: float, context=None):
        self.nameko_config = {k: v for k, v in nameko_config.items() if k != "GATEHOUSE"}
        self.size = size
        self.timeout = timeout
        self.context = context  # () -> dict sent with each call as nameko context data (log fields)
        self._pid = None
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue | None = None
        self._slots: threading.BoundedSemaphore | None = None
        self._failed_at = float("-inf")  # when a client last failed on the broker or timed out

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._idle = queue.LifoQueue()
                    self._slots = threading.BoundedSemaphore(self.size)
                    self._pid = os.getpid()

    @contextlib.contextmanager
    def client(self):
        """Yields a cluster proxy: `with pool.client() as rpc: rpc.identity.login(...)`."""
        self._ensure_process()
        if not self._slots.acquire(timeout=self.timeout):
            raise RpcTimeout("no RPC client free")
        try:
            runner = self._checkout()
            if self.context:  # the client's calls carry this caller's context (read by kernel/calllog.py)
                runner._worker_ctx.data = {key: str(value) for key, value in self.context().items() if value}
            try:
                yield runner.proxy
            except GatehouseError:
                self._idle.put(runner)  # a domain answer: the client is fine
                raise
            except BaseException:
                self._failed_at = time.monotonic()
                _stop_quietly(runner)
                raise
            else:
                self._idle.put(runner)
        finally:
            self._slots.release()

    def _checkout(self):
        """An idle client started after the last failure, or a new one."""
        while True:
            try:
                runner = self._idle.get_nowait()
            except queue.Empty:
                break
            if runner.started_at > self._failed_at:
                return runner
            _stop_quietly(runner)
        runner = ClusterRpcProxy(self.nameko_config, timeout=self.timeout)
        runner.started_at = time.monotonic()
        runner.proxy = runner.start()
        return runner

    def close(self) -> None:
        if self._idle is not None:
            while not self._idle.empty():
                _stop_quietly(self._idle.get_nowait())


def _stop_quietly(runner) -> None:
    try:
        runner.stop()
    except Exception:  # its connection is already gone
        pass
