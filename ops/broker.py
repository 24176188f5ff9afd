"""A private RabbitMQ node for one machine: the run command's default and the tests' broker."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from kombu import Connection

from ops.supervisor import stop_group


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(amqp_uri: str, timeout: float = 2.0) -> bool:
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


class LocalRabbit:
    """rabbitmq-server on loopback ports, with its own node name and data folder."""

    def __init__(self, base_dir: Path, port: int, dist_port: int | None = None):
        self.base_dir = Path(base_dir)
        self.port = port
        self.dist_port = dist_port or free_port()
        self.node = f"gatehouse{port}@localhost"
        self.process: subprocess.Popen | None = None

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 90) -> "LocalRabbit":
        # The real script, not Debian's wrapper: the wrapper switches to the rabbitmq
        # user, who cannot write our data folder.
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not os.path.exists(server):
            server = shutil.which("rabbitmq-server")
        if not server:
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        for sub in ("mnesia", "log"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        plugins = self.base_dir / "enabled_plugins"
        plugins.write_text("[].\n")
        self.env = {
            **os.environ,
            # Erlang keeps its cookie in HOME and drops crash dumps in the cwd: both stay here.
            "HOME": str(self.base_dir),
            "ERL_CRASH_DUMP": str(self.base_dir / "log" / "erl_crash.dump"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base_dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.base_dir / "rabbit.pid"),
        }
        log = open(self.base_dir / "log" / "server.out", "ab")
        self.process = subprocess.Popen([server], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited; see {self.base_dir / 'log'}")
            if reachable(self.amqp_uri, timeout=1):
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not answer on port {self.port} within {timeout}s")

    def add_vhost(self, name: str) -> str:
        """Creates virtual host `name` with full rights for guest; returns its AMQP URI.

        Two Gatehouses on one broker each need their own vhost, or they consume each other's queues.
        """
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(name, safe='')}"

    def ctl(self, *args: str) -> str:
        """Runs `rabbitmqctl ARGS` against this node; its standard output (raises if it fails)."""
        ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl"
        if not os.path.exists(ctl):
            ctl = shutil.which("rabbitmqctl")
        # The server's environment: its HOME holds the Erlang cookie.
        result = subprocess.run([ctl, "-n", self.node, *args], check=False, capture_output=True, text=True,
                                timeout=60, env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def stop(self, timeout: float = 30) -> None:
        stop_group(self.process, signal.SIGTERM, timeout)

    def restart(self, down_for: float = 0) -> "LocalRabbit":
        """Stops the node and starts it again: same name, port and data folder (durable queues survive)."""
        self.stop()
        time.sleep(down_for)
        return self.start()
