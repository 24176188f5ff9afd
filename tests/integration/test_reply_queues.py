"""A service instance killed with SIGKILL leaves no RPC reply queue behind for longer than
GATEHOUSE_REPLY_QUEUE_TTL (issue 20: they stayed, with messages in them)."""
from __future__ import annotations

import signal
import uuid
from urllib.parse import unquote, urlsplit

from tests.harness import Platform, eventually


def reply_queues(rabbit, vhost: str, service: str) -> list[str]:
    names = rabbit.ctl("list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name").split()
    return [name for name in names if name.startswith(f"rpc.reply-{service}-")]


def test_a_killed_instance_reply_queue_expires(rabbit, tmp_path):
    uri = rabbit.add_vhost(f"replies-{uuid.uuid4().hex[:8]}")
    vhost = unquote(urlsplit(uri).path[1:])
    platform = Platform(tmp_path, uri, extra_env={"GATEHOUSE_REPLY_QUEUE_TTL": "1"})
    try:
        platform.start()
        assert platform.admin().get("/api/v1/users").status_code == 200  # identity has asked rbac
        queues = eventually(lambda: reply_queues(rabbit, vhost, "identity"), message="identity's reply queue")
        platform.supervisor.kill("identity", signal.SIGKILL)
        eventually(lambda: not set(queues) & set(reply_queues(rabbit, vhost, "identity")), timeout=30,
                   message="the killed instance's reply queue expired")
    finally:
        platform.stop()
