"""A private PostgreSQL server for one machine: the tests' database and the benchmarks'.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` system
user, so `base_dir` must be reachable by that user (e.g. a folder from
tempfile.mkdtemp(), not one inside pytest's root-only tmp_path).
"""
from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import pg8000.native

from ops import binaries
from ops.supervisor import stop_group

BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


def _binary(name: str) -> str:
    return binaries.find(name, BIN_DIRS, "apt-get install postgresql")


class LocalPostgres:
    """postgres on 127.0.0.1:`port`, data and unix socket under `base_dir`.

    Local (socket) connections are trusted; TCP connections use `user`/`password`
    with scram-sha-256, as a production server would.
    """

    def __init__(self, base_dir: Path, port: int, user: str = "gatehouse", password: str = "gatehouse",
                 settings: dict | None = None):
        self.base_dir = Path(base_dir)
        self.port = port
        self.user = user
        self.password = password
        self.settings = {"max_connections": "200", **(settings or {})}  # -c name=value
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.process: subprocess.Popen | None = None
        # Root may not run PostgreSQL: drop to the postgres system user.
        self._run_as = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}

    def url(self, dbname: str) -> str:
        return f"postgresql+pg8000://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 60) -> "LocalPostgres":
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        command = [_binary("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
                   "-k", str(self.socket_dir)]
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        log = open(self.base_dir / "postgres.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir,
                                        start_new_session=True, **self._run_as)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.base_dir / 'postgres.log'}")
            try:
                self._connect().close()
                return self
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postgres did not answer on port {self.port} within {timeout}s")

    def create_database(self, name: str) -> str:
        """Creates database `name` owned by `user` (if new); returns the name."""
        conn = self._connect()
        try:  # pg8000.native runs in autocommit mode, as CREATE DATABASE needs
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :name", name=name):
                conn.run(f"CREATE DATABASE {pg8000.native.identifier(name)}")
        finally:
            conn.close()
        return name

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown: open sessions are ended, then the server stops cleanly."""
        stop_group(self.process, signal.SIGINT, timeout)

    def _connect(self) -> pg8000.native.Connection:
        return pg8000.native.Connection(self.user, password=self.password, host="127.0.0.1", port=self.port,
                                        database="postgres", timeout=5)

    def _prepare_dirs(self) -> None:
        for folder in (self.base_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if not self._run_as:
            return
        owner = pwd.getpwnam("postgres")
        for folder in (self.base_dir, self.socket_dir):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        for parent in self.base_dir.resolve().parents:
            mode = os.stat(parent).st_mode
            if not mode & stat.S_IXOTH:
                raise RuntimeError(f"the postgres user cannot reach {self.base_dir} ({parent} is private); "
                                   "use a folder such as tempfile.mkdtemp()")

    def _initdb(self) -> None:
        pwfile = self.base_dir / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            result = subprocess.run(
                [_binary("initdb"), "-D", str(self.data_dir), "-U", self.user, f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                 "--no-sync"],
                check=False, capture_output=True, text=True, cwd=self.base_dir, timeout=120, **self._run_as)
        finally:
            pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
