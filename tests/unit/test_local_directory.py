"""ops/directory.py: what `gatehouse up` / `use-directory` put in the directory settings."""
from __future__ import annotations

import pytest

from kernel.config import Config
from ops.directory import point_sync_at, reader_password

ACTOR = {"user_id": None, "username": "cli"}
ADMIN, READER = "cn=admin,dc=gatehouse,dc=local", "cn=reader,dc=gatehouse,dc=local"


class FakeSync:
    def __init__(self, settings):
        self.settings, self.puts = settings, []

    def get_directory_settings(self):
        return self.settings

    def put_directory_settings(self, actor, fields):
        self.puts.append(fields)


class FakeRpc:
    def __init__(self, settings):
        self.proxmox_sync = FakeSync(settings)


@pytest.fixture
def cfg(tmp_path):
    return Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_DIRECTORY_ADMIN_PASSWORD": "admin-pw"})


def stored(**changes) -> dict:
    return {"configured": True, "url": "ldap://127.0.0.1:1389", "bind_dn": ADMIN, "base_dn": "dc=gatehouse,dc=local",
            "start_tls": False, "verify_tls": True, "ca_pem": None, "login_shell": "/bin/bash", "realm_server": "ldap.x",
            "realm_bind_dn": None, "password_set": True, "realm_bind_password_set": False, **changes}


def test_a_platform_without_settings_gets_the_local_directory_and_its_reader(cfg, tmp_path):
    rpc = FakeRpc({"configured": False})
    assert point_sync_at(rpc, "ldap://127.0.0.1:1389", cfg, ACTOR) is True
    [put] = rpc.proxmox_sync.puts
    assert (put["bind_dn"], put["password"], put["realm_bind_dn"]) == (ADMIN, "admin-pw", READER)
    generated = (tmp_path / "directory" / "reader.secret").read_text().strip()
    assert put["realm_bind_password"] == generated == reader_password(cfg) and len(generated) >= 32


def test_settings_of_the_local_directory_from_before_the_reader_get_it(cfg):
    rpc = FakeRpc(stored())
    assert point_sync_at(rpc, "ldap://127.0.0.1:1389", cfg, ACTOR) is False
    [put] = rpc.proxmox_sync.puts
    assert "password" not in put  # the stored bind password stays
    assert put["realm_server"] == "ldap.x" and put["url"] == "ldap://127.0.0.1:1389"
    assert (put["realm_bind_dn"], put["realm_bind_password"]) == (READER, reader_password(cfg))


@pytest.mark.parametrize("settings", [stored(realm_bind_dn="cn=someone,dc=x"), stored(bind_dn="cn=admin,dc=other")])
def test_other_settings_are_left_as_they_are(cfg, settings):
    rpc = FakeRpc(settings)
    assert point_sync_at(rpc, "ldap://127.0.0.1:1389", cfg, ACTOR) is False
    assert rpc.proxmox_sync.puts == []


def test_the_reader_password_may_be_given(tmp_path):
    cfg = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_DIRECTORY_READER_PASSWORD": "given"})
    assert reader_password(cfg) == "given" and not (tmp_path / "directory" / "reader.secret").exists()
