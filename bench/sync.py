"""The propagation figures.

`ldap_sync`: a Gatehouse of its own (own vhost, data and slapd) with `--ldap-users` people seeded
straight into identity and rbac; configuring the directory starts a full sync, timed by the
engine (desired state over RPC, read, plan, writes) and from outside. The primitive, measured
in the same run on the same slapd: raw sequential ldap3 adds of the same entries
(bench.ldap_sync). Then a reconcile with nothing to do: its time and its writes (must be 0).

`prepare_suspension_targets`: the main bench platform gets a slapd and a Proxmox VE stand-in,
so the suspension figure also times the LDAP bind refusal and the Proxmox user's `enable=0`.
"""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.figures import row
from bench.ldap_sync import people
from services.identity.domain import HASHER

LDAPUSERS_ID = "00000000-0000-0000-0000-000000005000"
TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!bench", "bench-token-secret"
ROOT_TOKEN, ROOT_SECRET = "root@pam!bench", "bench-root-secret"
REALM = "gatehouse"


def seed_people(platform, count: int) -> None:
    """`count` active people with one real argon2id hash, members of default and of ldapusers."""
    persons = people(count, HASHER.hash("bench password"))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    data = platform.base_dir / "data"
    with sqlite3.connect(data / "identity.db") as db:
        db.executemany(
            "INSERT INTO identity_users (id, username, email, first_name, last_name, company, status, uid_number, "
            "password_hash, must_change_password, is_first_admin, totp_enrolled, totp_required, search_text, "
            "version, created_at) VALUES (?,?,?,?,?,?,?,?,?,0,0,0,0,?,1,?)",
            [(p.user_id, p.username, p.email, p.first_name, p.last_name, "", p.status, p.uid_number, p.password_hash,
              p.username, now) for p in persons])
        db.executemany("INSERT INTO identity_memberships (user_id, tenant_id, member, is_default, confirmed, as_of) "
                       "VALUES (?, 'default', 1, 1, 1, '2026-01-01T00:00:00Z')", [(p.user_id,) for p in persons])
    with sqlite3.connect(data / "rbac.db") as db:
        db.executemany("INSERT INTO rbac_group_members (group_id, user_id, username, added_at) VALUES (?,?,?,?)",
                       [(LDAPUSERS_ID, p.user_id, p.username, now) for p in persons])


def _last_full(admin, after: str | None) -> dict | None:
    """The directory's status once a full run newer than `after` has finished and nothing waits."""
    item = next(i for i in admin.get("/api/v1/sync/status").json()["items"] if i["target"] == "ldap")
    run = item["last_run"]
    if (item["pending"] or item["running"] or not run or run["mode"] != "full" or not run["finished_at"]
            or (after is not None and run["started_at"] <= after)):
        return None
    return item


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


def ldap_sync(platform, workdir: Path, args) -> list[dict]:
    from bench.ldap_sync import measure
    from ops.slapd import Slapd

    slapd = Slapd(workdir / "slapd").start()
    try:
        raw = measure(slapd.url, slapd.admin_dn, slapd.admin_password, slapd.base_dn, args.ldap_users, library=False)
        seed_people(platform, args.ldap_users)
        admin = platform.admin()
        started = time.monotonic()
        answer = admin.put("/api/v1/settings/ldap", json={
            "url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password,
            "base_dn": slapd.base_dn})
        if answer.status_code != 200:
            raise RuntimeError(f"PUT /settings/ldap: {answer.status_code} {answer.text[:200]}")
        full = _wait(lambda: _last_full(admin, None), 900, "the full LDAP sync")
        wall = time.monotonic() - started
        engine_s = full["last_run"]["duration_ms"] / 1000
        if full["last_run"]["changes"] < args.ldap_users:
            raise RuntimeError(f"the full sync made {full['last_run']['changes']} changes for {args.ldap_users} people")
        before = full["last_run"]["started_at"]
        admin.post("/api/v1/sync/run", json={"targets": ["ldap"]})
        noop = _wait(lambda: _last_full(admin, before), 300, "the no-op reconcile")
    finally:
        slapd.stop()
    n, raw_s = args.ldap_users, raw["raw_add_seconds"]
    noop_s, noop_writes = noop["last_run"]["duration_ms"] / 1000, noop["last_run"]["changes"]
    return [
        row(f"Full LDAP sync of {n:,} users (engine: desired state over RPC, read, plan, write)",
            f"{engine_s:.1f} s (wall {wall:.1f} s incl. settings check)", f"raw ldap3 adds: {raw_s:.1f} s",
            engine_s / raw_s, "≤ 1.2× raw ldap3", engine_s / raw_s <= 1.2, engine_seconds=engine_s,
            wall_seconds=wall, raw_seconds=raw_s),
        row(f"No-op LDAP reconcile of {n:,} users", f"{noop_s:.2f} s, {noop_writes} writes",
            goal="< 3 s, 0 writes", met=noop_s < 3 and noop_writes == 0, seconds=noop_s, writes=noop_writes),
    ]


class SuspensionTargets:
    """A slapd and a Proxmox VE stand-in wired to the platform (directory, connection, realm)."""

    def __init__(self, platform, workdir: Path):
        from ops.slapd import Slapd
        from tests.pve_standin import PveStandin

        self.slapd = Slapd(workdir / "slapd-suspend").start()
        self.pve = PveStandin().start()
        self.pve.add_token(TOKEN_ID, TOKEN_SECRET)
        self.pve.add_token(ROOT_TOKEN, ROOT_SECRET)
        admin = platform.admin()
        steps = [
            admin.put("/api/v1/settings/ldap", json={"url": self.slapd.url, "bind_dn": self.slapd.admin_dn,
                                                     "password": self.slapd.admin_password,
                                                     "base_dn": self.slapd.base_dn,
                                                     # the realm searches as the reader (no anonymous reads)
                                                     "realm_bind_dn": self.slapd.reader_dn,
                                                     "realm_bind_password": self.slapd.reader_password}),
        ]
        connection = admin.post("/api/v1/connections", json={
            "name": "bench", "url": self.pve.url, "fingerprint": self.pve.fingerprint, "realm": REALM,
            "auth": {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}})
        steps.append(connection)
        steps.append(admin.post(f"/api/v1/connections/{connection.json()['id']}/realm", json={}))
        for step in steps:
            if step.status_code not in (200, 201):
                raise RuntimeError(f"wiring the suspension targets: {step.status_code} {step.text[:200]}")

    def ldap_binds(self, username: str, password: str) -> bool:
        import ldap3

        conn = ldap3.Connection(ldap3.Server(self.slapd.url, get_info=ldap3.NONE),
                                f"uid={username},ou=people,{self.slapd.base_dn}", password)
        try:
            return conn.bind()
        finally:
            conn.unbind()

    def pve_enabled(self, username: str) -> bool | None:
        import requests

        answer = requests.get(f"{self.pve.url}/api2/json/access/users/{username}@{REALM}", verify=False, timeout=10,
                              headers={"Authorization": f"PVEAPIToken={ROOT_TOKEN}={ROOT_SECRET}"})
        if answer.status_code != 200:
            return None
        return bool(answer.json()["data"].get("enable", 1))

    def stop(self) -> None:
        self.pve.stop()
        self.slapd.stop()
