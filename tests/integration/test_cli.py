"""The operator CLI (`gatehouse admin|sync|audit|status`) run as a subprocess against the platform."""
import csv
import io
import json
import re

from ops.broker import free_port
from tests.harness import PASSWORD, eventually

NEW_PASSWORD = "a brand new passphrase for the cli"


def printed_password(output: str) -> str:
    return re.search(r"[Pp]assword(?: of \S+)?: (\S+)", output).group(1)


def create_admin(platform, name):
    output = platform.gatehouse("admin", "create", name, "--email", f"{name}@example.com",
                                "--first-name", "Ops", "--last-name", "Person")
    return printed_password(output)


def test_admin_create_makes_a_super_admin_who_must_change_the_password(platform, unique):
    name = f"cli{unique}"
    password = create_admin(platform, name)

    api = platform.api().login(name, password)
    me = api.get("/api/v1/me").json()
    assert me["must_change_password"] is True and me["status"] == "active"
    assert api.get("/api/v1/users").json()["error"]["code"] == "password_change_required"
    changed = api.post("/api/v1/me/password", json={"current_password": password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    api = platform.api().login(name, NEW_PASSWORD)
    assert api.get("/api/v1/tenants").status_code == 200  # super admins only

    admin = platform.admin()
    [created] = eventually(lambda: admin.audit(action="user_created", resource_id=me["id"]), timeout=20,
                           message="the creation in the audit trail")
    assert created["actor"]["username"] == "cli" and "gatehouse CLI" in created["actor"]["display_name"]
    assert password not in json.dumps(created)


def test_admin_create_refuses_a_taken_name(platform, unique):
    name = f"cli{unique}"
    create_admin(platform, name)
    again = platform.run_gatehouse("admin", "create", name, "--email", f"other{unique}@example.com")
    assert again.returncode == 1 and "already in use" in again.stderr


def test_admin_reset_password_replaces_it_and_ends_sessions(platform, unique):
    name = f"cli{unique}"
    old = create_admin(platform, name)
    session = platform.api().login(name, old)

    output = platform.gatehouse("admin", "reset-password", name)
    new = printed_password(output)
    assert new != old
    assert platform.api().post("/api/v1/auth/login", json={"login": name, "password": old}).status_code == 401
    assert session.get("/api/v1/me").status_code == 401
    assert platform.api().login(name, new).get("/api/v1/me").json()["must_change_password"] is True


def test_admin_reset_password_refuses_ordinary_users_and_unknown_names(platform, unique):
    platform.create_user(f"plain{unique}")
    refused = platform.run_gatehouse("admin", "reset-password", f"plain{unique}")
    assert refused.returncode == 1 and "not an administrator" in refused.stderr
    assert platform.api().login(f"plain{unique}", PASSWORD)  # unchanged
    missing = platform.run_gatehouse("admin", "reset-password", f"nobody{unique}")
    assert missing.returncode == 1 and "No user named" in missing.stderr


def test_sync_run_queues_and_status_shows_targets(platform):
    status = json.loads(platform.gatehouse("sync", "status", "--json"))
    assert "items" in status and "directory_configured" in status
    output = platform.gatehouse("sync", "run")
    assert output.startswith("Queued:") or output.startswith("Nothing to sync")
    unknown = platform.run_gatehouse("sync", "run", "pve:no-such-connection")
    assert unknown.returncode == 1 and "No such sync target" in unknown.stderr
    assert platform.gatehouse("sync", "status").splitlines()[0].split()[0] in ("TARGET", "No")


def test_audit_verify_and_export(platform, unique, tmp_path):
    create_admin(platform, f"cli{unique}")  # at least one fresh record
    verified = platform.run_gatehouse("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified" in verified.stdout
    assert json.loads(platform.gatehouse("audit", "verify", "--json"))["valid"] is True

    def exported():
        records = [json.loads(line) for line in platform.gatehouse("audit", "export", "--format", "jsonl")
                   .splitlines()]
        return [r for r in records if r["resource"]["name"] == f"cli{unique}"] and records

    records = eventually(exported, timeout=20, interval=0.5, message="the new admin in the export")
    assert [r["seq"] for r in records] == sorted((r["seq"] for r in records), reverse=True)

    target = tmp_path / "audit.csv"
    since = records[0]["recorded_at"]
    platform.gatehouse("audit", "export", "--format", "csv", "--since", since, "-o", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [path.name for path in tmp_path.iterdir()] == ["audit.csv"]  # no partial file left
    assert rows and all(row["recorded_at"] >= since for row in rows)

    bad = platform.run_gatehouse("audit", "export", "--since", "yesterday")
    assert bad.returncode == 1 and "since" in bad.stderr


def test_status_lists_every_service(platform):
    result = platform.run_gatehouse("status", "--json")
    report = json.loads(result.stdout)
    assert report["broker"] == "ok"
    assert set(report["services"]) == {"identity", "rbac", "tenancy", "audit", "proxmox_sync"}
    assert all(health["status"] == "ok" for health in report["services"].values()), report
    assert result.returncode in (0, 3)  # 3: a sync target of another test is failing
    text = platform.run_gatehouse("status").stdout
    assert all(name in text for name in report["services"])


def test_status_names_a_silent_service_and_exits_1(platform):
    platform.supervisor.kill("tenancy")
    try:
        result = platform.run_gatehouse("status", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["services"]["tenancy"]["status"].startswith("unavailable")
        assert report["services"]["identity"]["status"] == "ok"
    finally:
        platform.restart("tenancy")
        platform.wait_ready()


def test_the_gateway_cannot_ask_for_a_super_admin(platform, unique):
    response = platform.admin().post("/api/v1/users", json={
        "username": f"gw{unique}", "email": f"gw{unique}@example.com", "first_name": "G", "last_name": "W",
        "super_admin": True})
    assert response.status_code == 422, response.text


def test_without_a_broker_status_says_so_and_commands_fail_clearly(platform, unique):
    nowhere = {"GATEHOUSE_AMQP_URI": f"amqp://guest:secret-{unique}@127.0.0.1:{free_port()}/"}
    result = platform.run_gatehouse("status", env=nowhere)
    assert result.returncode == 1 and "broker        unavailable" in result.stdout
    created = platform.run_gatehouse("admin", "create", f"cli{unique}", "--email", f"cli{unique}@example.com",
                                     env=nowhere)
    assert created.returncode == 1 and "does not answer" in created.stderr
    assert f"secret-{unique}" not in created.stderr  # the broker's password is masked
