"""The LDAP sync figures: a full sync of n people against raw sequential ldap3 adds.

`measure` times, against one slapd:
  (a) raw: n inetOrgPerson+posixAccount entries added one after another with plain ldap3
      into a fresh OU (the primitive);
  (b) sync: read_all + plan_full + Directory.apply of the same n people (and their primary
      group) into fresh managed subtrees;
  (c) no-op: read_all + plan_full again, which must plan nothing (zero writes).
Every person carries one real argon2id hash (hashing n passwords would only time argon2).

`python -m bench.ldap_sync [--n N]` starts its own slapd in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid

import ldap3

from services.identity.domain import HASHER
from services.proxmox_sync.domain import Group, Person
from services.proxmox_sync.ldap_directory import Directory
from services.proxmox_sync.ldap_plan import LdapSettings, desired_person, plan_full

PRIMARY_GID = 5000


def people(n: int, password_hash: str) -> list[Person]:
    return [Person(user_id=f"bench-{i}", username=f"bench{i:06d}", first_name="Bench", last_name=f"User {i}",
                   email=f"bench{i:06d}@bench.test", uid_number=100_000 + i, status="active",
                   password_hash=password_hash) for i in range(n)]


def measure(slapd_url: str, bind_dn: str, password: str, base_dn: str, n: int = 10_000, library: bool = True) -> dict:
    """library=False: the primitive (a) only (the platform bench times the engine's own sync)."""
    run = uuid.uuid4().hex[:8]
    persons = people(n, HASHER.hash(f"bench password {run}"))
    groups = [Group("bench-ldapusers", "ldapusers", PRIMARY_GID, "every user", False,
                    frozenset(person.user_id for person in persons))]

    # (a) the primitive: the same entries, sequential adds on one plain ldap3 connection
    raw_base = f"ou=raw-{run},{base_dn}"
    raw_settings = LdapSettings(slapd_url, bind_dn, password, raw_base)
    entries = [desired_person(person, raw_settings, PRIMARY_GID) for person in persons]
    conn = ldap3.Connection(ldap3.Server(slapd_url, get_info=ldap3.NONE), bind_dn, password, auto_bind=True)
    conn.add(raw_base, attributes={"objectClass": ["organizationalUnit"], "ou": [f"raw-{run}"]})
    conn.add(raw_settings.people_dn, attributes={"objectClass": ["organizationalUnit"], "ou": ["people"]})
    started = time.perf_counter()
    for entry in entries:
        if not conn.add(entry.dn, attributes={name: list(values) for name, values in entry.attributes.items()}):
            raise RuntimeError(f"raw add of {entry.dn} failed: {conn.result['description']}")
    raw_seconds = time.perf_counter() - started
    if not library:
        conn.unbind()
        return {"n": n, "raw_add_seconds": round(raw_seconds, 3)}

    # (b) our full sync into fresh subtrees
    sync_base = f"ou=sync-{run},{base_dn}"
    conn.add(sync_base, attributes={"objectClass": ["organizationalUnit"], "ou": [f"sync-{run}"]})
    conn.unbind()
    settings = LdapSettings(slapd_url, bind_dn, password, sync_base)
    with Directory(settings) as directory:
        directory.ensure_subtrees()
        started = time.perf_counter()
        writes = directory.apply(plan_full(persons, groups, directory.read_all(), settings))
        sync_seconds = time.perf_counter() - started

        # (c) a no-op reconcile
        started = time.perf_counter()
        leftover = plan_full(persons, groups, directory.read_all(), settings)
        noop_seconds = time.perf_counter() - started
    if leftover:
        raise AssertionError(f"the no-op reconcile planned {len(leftover)} changes, e.g. {leftover[0]!r}")
    return {"n": n, "raw_add_seconds": round(raw_seconds, 3), "sync_seconds": round(sync_seconds, 3),
            "sync_writes": writes, "ratio": round(sync_seconds / raw_seconds, 3),
            "noop_seconds": round(noop_seconds, 3), "noop_changes": len(leftover)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ldap_sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="people synced")
    args = parser.parse_args(argv)
    from ops.slapd import Slapd

    with tempfile.TemporaryDirectory(prefix="gatehouse-ldap-bench-") as folder, Slapd(folder) as slapd:
        result = measure(slapd.url, slapd.admin_dn, slapd.admin_password, slapd.base_dn, args.n)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
