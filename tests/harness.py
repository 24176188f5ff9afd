"""Drives a real Gatehouse for integration tests: processes, HTTP client, waiting."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import requests

from ops.broker import free_port
from ops.supervisor import PROCESSES, Supervisor

ADMIN_USERNAME = "rootadmin"
ADMIN_PASSWORD = "Integration-tests-admin-1"


def eventually(check, timeout: float = 10, interval: float = 0.1, message: str = "condition"):
    """Polls until check() returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(interval)


def random_client_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class Api:
    """A thin HTTP client of the gateway; `token` signs requests in.

    Each client comes from its own address (X-Forwarded-For; the test platform trusts one
    proxy), so the per-address sign-in throttle of one test never touches another.
    After `login`, `refresh_token` and `session_id` hold what the sign-in answered.
    """

    def __init__(self, base_url: str, token: str | None = None, client_ip: str | None = None):
        self.base_url = base_url
        self.token = token
        self.client_ip = client_ip or random_client_ip()
        self.refresh_token: str | None = None
        self.session_id: str | None = None
        self.http = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        headers.setdefault("X-Forwarded-For", self.client_ip)
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def login(self, login: str, password: str) -> "Api":
        response = self.post("/api/v1/auth/login", json={"login": login, "password": password})
        assert response.status_code == 200, response.text
        return self.signed_in(response.json())

    def signed_in(self, tokens: dict) -> "Api":
        """A client of the same address using the tokens of a login or refresh answer."""
        api = Api(self.base_url, tokens["access_token"], self.client_ip)
        api.refresh_token, api.session_id = tokens.get("refresh_token"), tokens.get("session_id")
        return api

    def audit(self, **filters) -> list[dict]:
        response = self.get("/api/v1/audit/events", params={"limit": 200, **filters})
        assert response.status_code == 200, response.text
        return response.json()["items"]


class Platform:
    """Five services and the gateway as real processes on a real broker."""

    def __init__(self, base_dir: Path, amqp_uri: str, extra_env: dict | None = None):
        self.base_dir = Path(base_dir)
        self.port = free_port()
        self.env = {
            **os.environ,
            "GATEHOUSE_DATA_DIR": str(self.base_dir / "data"),
            "GATEHOUSE_AMQP_URI": amqp_uri,
            "GATEHOUSE_HTTP_PORT": str(self.port),
            "GATEHOUSE_ADMIN_USERNAME": ADMIN_USERNAME,
            "GATEHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEHOUSE_RPC_TIMEOUT": "5",
            "GATEHOUSE_OUTBOX_POLL_INTERVAL": "0.5",
            "GATEHOUSE_GATEWAY_WORKERS": "2",
            "GATEHOUSE_TRUSTED_PROXIES": "1",  # each Api sends its own X-Forwarded-For address
            **(extra_env or {}),
        }
        self.env.pop("GATEHOUSE_FAILPOINTS", None)
        self.url = f"http://127.0.0.1:{self.port}"
        self.supervisor = Supervisor(env=self.env, log_dir=self.base_dir / "logs")

    def gatehouse(self, *args: str) -> str:
        """Runs the gatehouse CLI as an operator would."""
        result = subprocess.run([sys.executable, "-m", "ops.cli", *args], env=self.env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self) -> "Platform":
        self.gatehouse("migrate")
        self.gatehouse("setup-broker")
        self.supervisor.start_all()
        self.wait_ready()
        self.gatehouse("bootstrap-admin")
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready():
            try:
                return requests.get(self.url + "/readyz", timeout=3).status_code == 200
            except requests.RequestException:
                return False

        try:
            eventually(ready, timeout, 0.3, "readiness")
        except AssertionError:
            raise AssertionError(f"not ready; logs:\n{self.logs_tail()}") from None

    def restart(self, name: str, extra_env: dict | None = None) -> None:
        """Kills (if alive) and starts one process, e.g. with a failpoint."""
        process = self.supervisor.children.get(name)
        if process and process.poll() is None:
            self.supervisor.kill(name)
        self.supervisor.start(name, extra_env=extra_env)

    def process(self, name: str) -> subprocess.Popen:
        return self.supervisor.children[name]

    def api(self, client_ip: str | None = None) -> Api:
        return Api(self.url, client_ip=client_ip)

    def admin(self) -> Api:
        return self.api().login(ADMIN_USERNAME, ADMIN_PASSWORD)

    def logs_tail(self, lines: int = 15) -> str:
        out = []
        for name in PROCESSES:
            path = self.base_dir / "logs" / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        self.supervisor.stop_all()
