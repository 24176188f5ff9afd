"""Drives a real Gatehouse for integration tests: processes, HTTP client, waiting."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy

from ops.broker import free_port
from kernel import SERVICES
from ops.supervisor import PROCESSES, Supervisor, metrics_port

ADMIN_USERNAME = "rootadmin"
ADMIN_PASSWORD = "Integration-tests-admin-1"
PASSWORD = "a long enough passphrase"  # what test users sign in with, unless the platform generated theirs


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


def ephemeral_ports_start() -> int:
    """The first port the kernel hands out for bind(0) and outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int) -> int:
    """The first of `count` consecutive ports that are free now, below the kernel's ephemeral range:
    ports of the range bound only later (a second instance's metrics) are never taken meanwhile by
    a server another test started on free_port()."""
    while True:
        base = random.randrange(10000, ephemeral_ports_start() - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


def metric(text: str, name: str, **labels) -> float:
    """The value of the sample `name` with exactly these labels in a Prometheus exposition text (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {key: str(value) for key, value in labels.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return sample.value
    return 0.0


def random_client_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def register(api: Api, name: str, **overrides) -> requests.Response:
    """Self-registration (the user is pending until approved), with PASSWORD unless overridden."""
    body = {"username": name, "first_name": "Test", "last_name": name.title(),
            "email": f"{name}@example.com", "password": PASSWORD, **overrides}
    return api.post("/api/v1/auth/register", json=body)


class Api:
    """A thin HTTP client of the gateway; `token` signs requests in.

    Each client comes from its own address (X-Forwarded-For; the test platform trusts one
    proxy), so the per-address sign-in throttle of one test never touches another.
    After `login`, `refresh_token` and `session_id` hold what the sign-in answered, and
    `password` the password it used.
    """

    def __init__(self, base_url: str, token: str | None = None, client_ip: str | None = None):
        self.base_url = base_url
        self.token = token
        self.client_ip = client_ip or random_client_ip()
        self.refresh_token: str | None = None
        self.session_id: str | None = None
        self.password: str | None = None
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
        api = self.signed_in(response.json())
        api.password = password
        return api

    def signed_in(self, tokens: dict) -> "Api":
        """A client of the same address using the tokens of a login or refresh answer."""
        api = Api(self.base_url, tokens["access_token"], self.client_ip)
        api.refresh_token, api.session_id = tokens.get("refresh_token"), tokens.get("session_id")
        api.password = self.password
        return api

    def audit(self, **filters) -> list[dict]:
        response = self.get("/api/v1/audit/events", params={"limit": 200, **filters})
        assert response.status_code == 200, response.text
        return response.json()["items"]


RATE_LIMIT_SETTINGS = ("GATEHOUSE_RESET_REQUESTS_PER_IP", "GATEHOUSE_RESET_MAILS_PER_ACCOUNT",
                       "GATEHOUSE_ADMIN_RESETS_PER_USER", "GATEHOUSE_ADMIN_RESETS_PER_ADMIN",
                       "GATEHOUSE_INVITATIONS_PER_ADMIN", "GATEHOUSE_INVITATION_RESENDS_PER_ADDRESS",
                       "GATEHOUSE_REGISTRATIONS_PER_IP", "GATEHOUSE_SMTP_TESTS_PER_ADMIN",
                       "GATEHOUSE_GROUP_NAMES_PER_ADMIN", "GATEHOUSE_CONNECTION_NAMES_PER_ADMIN",
                       "GATEHOUSE_CERT_FETCHES_PER_ADMIN")


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
            "GATEHOUSE_INVENTORY_INTERVAL": "1",  # inventory tests see Proxmox changes quickly
            "GATEHOUSE_GATEWAY_WORKERS": "2",
            "GATEHOUSE_TRUSTED_PROXIES": "1",  # each Api sends its own X-Forwarded-For address
            # Each service process serves metrics on its own port from here (two instances each).
            "GATEHOUSE_METRICS_PORT": str(free_port_range(2 * len(SERVICES))),
            # Tests share rootadmin (and the fuzzer one address): mail and sign-up limits out of the way,
            # except where a test's own platform sets them (test_rate_limits.py).
            **{env: "100000" for env in RATE_LIMIT_SETTINGS},
            **(extra_env or {}),
        }
        self.env.pop("GATEHOUSE_FAILPOINTS", None)
        self.url = f"http://127.0.0.1:{self.port}"
        self.supervisor = Supervisor(env=self.env, log_dir=self.base_dir / "logs")

    def gatehouse(self, *args: str) -> str:
        """Runs the gatehouse CLI as an operator would; it must succeed. Its standard output."""
        result = self.run_gatehouse(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def run_gatehouse(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """Runs the gatehouse CLI, whatever its exit code (`env` overrides some of the platform's settings)."""
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=120)

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

    def metrics_url(self, service: str, instance: int = 0) -> str:
        """Where a service process serves its Prometheus metrics."""
        port = metrics_port(int(self.env["GATEHOUSE_METRICS_PORT"]), service, instance)
        return f"http://127.0.0.1:{port}/metrics"

    def process(self, name: str) -> subprocess.Popen:
        return self.supervisor.children[name]

    def api(self, client_ip: str | None = None) -> Api:
        return Api(self.url, client_ip=client_ip)

    def admin(self) -> Api:
        return self.api().login(ADMIN_USERNAME, ADMIN_PASSWORD)

    def create_user(self, name: str, *, role: str | None = None, must_change_password: bool = False,
                    admin: Api | None = None) -> tuple[dict, Api]:
        """An active user of its own and a client signed in as it: (user as the admin API shows it, Api).

        By default the user registers with PASSWORD and an administrator approves it, so no
        password change is owed. With `must_change_password` an administrator creates it
        instead: it signs in with the generated password (`api.password`) and owes a change.
        `role` is its role in the administrator's tenant; `admin` approves or creates (rootadmin
        if not given).
        """
        admin = admin or self.admin()
        extra = {"role": role} if role else {}
        if must_change_password:
            response = admin.post("/api/v1/users", json={
                "username": name, "email": f"{name}@example.com", "first_name": "Test", "last_name": name.title(),
                **extra})
            assert response.status_code == 201, response.text
            user, password = response.json()["user"], response.json()["password"]
            assert user["must_change_password"] is True, user
        else:
            registered = register(self.api(), name)
            assert registered.status_code == 201, registered.text
            response = admin.patch(f"/api/v1/users/{registered.json()['id']}", json={"status": "active", **extra})
            assert response.status_code == 200, response.text
            user, password = response.json(), PASSWORD
        assert user["status"] == "active", user
        return user, self.api().login(name, password)

    def sql(self, service: str, statement: str, **params) -> list[tuple]:
        """Runs one SQL statement (`:name` parameters) on a service's database, whichever
        backend the platform runs on, and commits; the rows it returned."""
        from kernel.config import Config
        from kernel.db import create_engine

        engine = create_engine(Config.from_env(self.env).db_url(service))
        try:
            with engine.begin() as conn:
                result = conn.execute(sqlalchemy.text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def logs_tail(self, lines: int = 15) -> str:
        out = []
        for name in PROCESSES:
            path = self.base_dir / "logs" / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        self.supervisor.stop_all()


@contextlib.contextmanager
def postgres_for_services(prefix: str):
    """A PostgreSQL server with one database per service; stopped and deleted afterwards."""
    from kernel import SERVICES
    from ops.postgres import LocalPostgres

    # Not under pytest's tmp_path: that folder is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = LocalPostgres(base, free_port())
    try:
        server.start()
        for name in SERVICES:
            server.create_database(name)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
