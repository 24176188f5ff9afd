"""The run command (`gatehouse up`, what scripts/run ends in) on a machine with no broker running:
it starts RabbitMQ and an LDAP directory of its own, and users bind there with their password."""
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests
import yaml

from tests.harness import eventually, free_port
from tests.ldap_tools import INVALID_CREDENTIALS, ldapwhoami
from tests.unit.test_compose import COMPOSE, directory_healthcheck_script

ADMIN_DN = "uid=superadmin,ou=people,dc=gatehouse,dc=local"


def start_up(env):
    process = subprocess.Popen([sys.executable, "-m", "ops.cli", "up"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("LDAP directory:"):  # the last line it prints
            return process, "".join(lines)
    process.kill()
    pytest.fail("gatehouse up did not print its directory:\n" + "".join(lines))


def stop(process):
    descendants = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(90) == 0
    gone, alive = psutil.wait_procs(descendants, timeout=30)
    assert not [p for p in alive if p.name() != "epmd"], f"left running: {alive}"


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # exited (or a zombie not yet reaped) between listing and reading
        return []


def login(url, password):
    return requests.post(f"{url}/api/v1/auth/login", json={"login": "superadmin", "password": password}, timeout=30)


def test_up_runs_everything_and_reuses_its_data(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(GATEHOUSE_DATA_DIR=str(tmp_path / "data"), GATEHOUSE_HTTP_PORT=str(port),
               GATEHOUSE_BROKER_PORT=str(free_port()), GATEHOUSE_DIRECTORY_PORT=str(free_port()))
    url = f"http://127.0.0.1:{port}"
    ldap_url = f"ldap://127.0.0.1:{env['GATEHOUSE_DIRECTORY_PORT']}"

    process, output = start_up(env)
    try:
        assert "Starting RabbitMQ" in output
        # the console's address (GATEHOUSE_PUBLIC_URL follows the port) and the first admin's credentials
        assert re.search(rf"^Console: {re.escape(url)}/ ", output, re.M), output
        password = re.search(r"^First admin: superadmin  password: (\S+)", output, re.M).group(1)
        assert requests.get(f"{url}/", timeout=30).status_code == 200  # the console answers there
        assert login(url, password).status_code == 200
        assert f"LDAP directory: {ldap_url}" in output
        # the first admin reaches the directory with their Gatehouse password (argon2 in slapd)
        eventually(lambda: ldapwhoami(ldap_url, ADMIN_DN, password) == 0, timeout=30, interval=0.5,
                   message="the first admin binding to the local directory")
        assert ldapwhoami(ldap_url, ADMIN_DN, password + "x") == INVALID_CREDENTIALS
        anonymous = subprocess.run(["ldapsearch", "-x", "-H", ldap_url, "-b", "dc=gatehouse,dc=local", "uid"],
                                   capture_output=True, text=True, timeout=30)
        assert anonymous.returncode == 48 and "uid:" not in anonymous.stdout  # anonymous bind disallowed
        token = login(url, password).json()["access_token"]
        settings = requests.get(f"{url}/api/v1/settings/ldap", headers={"Authorization": f"Bearer {token}"},
                                timeout=30).json()
        assert settings["realm_bind_dn"] == "cn=reader,dc=gatehouse,dc=local", settings
        assert settings["realm_bind_password_set"] is True and "realm_bind_password" not in settings
        [identity] = [p for p in psutil.Process(process.pid).children()
                      if "ops.serve identity" in " ".join(_cmdline(p))]
        identity.kill()  # a crashed service comes back by itself

        def restarted():
            return [p for p in psutil.Process(process.pid).children()
                    if p.pid != identity.pid and "ops.serve identity" in " ".join(_cmdline(p))]

        eventually(restarted, timeout=30, message="a new identity process")
        eventually(lambda: login(url, password).status_code == 200, timeout=60, interval=0.5,
                   message="login after identity was restarted")
    finally:
        stop(process)

    process, output = start_up(env)  # a second start keeps users and keys
    try:
        assert "exists" in output and password not in output
        assert login(url, password).status_code == 200
        assert "keeps the directory settings it has" in output
        assert ldapwhoami(ldap_url, ADMIN_DN, password) == 0  # the directory kept its data
    finally:
        stop(process)


def test_directory_command_serves_slapd_until_sigterm(tmp_path):
    """`gatehouse directory`: the compose file's directory container."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(GATEHOUSE_DATA_DIR=str(tmp_path / "data"), GATEHOUSE_DIRECTORY_HOST="0.0.0.0",
               GATEHOUSE_DIRECTORY_PORT=str(port), GATEHOUSE_DIRECTORY_BASE_DN="dc=example,dc=org",
               GATEHOUSE_DIRECTORY_ADMIN_PASSWORD="directory-admin-pw",
               GATEHOUSE_DIRECTORY_READER_PASSWORD="directory-reader-pw")
    process = subprocess.Popen([sys.executable, "-m", "ops.cli", "directory"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert process.stdout.readline().startswith(f"LDAP directory on 0.0.0.0:{port}")
        url = f"ldap://127.0.0.1:{port}"
        assert ldapwhoami(url, "cn=admin,dc=example,dc=org", "directory-admin-pw") == 0
        assert ldapwhoami(url, "cn=admin,dc=example,dc=org", "wrong") == INVALID_CREDENTIALS
        assert ldapwhoami(url, "cn=reader,dc=example,dc=org", "directory-reader-pw") == 0
        # the compose file's healthcheck, run as the container would: healthy, and not with a wrong password
        healthcheck = directory_healthcheck_script(yaml.safe_load(COMPOSE.read_text())["services"])
        assert subprocess.run(["sh", "-c", healthcheck], env=env, capture_output=True, timeout=30).returncode == 0
        wrong = {**env, "GATEHOUSE_DIRECTORY_READER_PASSWORD": "wrong"}
        assert subprocess.run(["sh", "-c", healthcheck], env=wrong, capture_output=True, timeout=30).returncode != 0
        slapd = [p for p in psutil.Process(process.pid).children() if p.name() == "slapd"]
        assert slapd, "slapd runs as the command's child"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in slapd), "slapd left running"
