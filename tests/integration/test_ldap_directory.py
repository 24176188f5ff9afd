"""The LDAP adapter against a real slapd (the `slapd` fixture; no platform needed).

Each test works under its own base (`ou=t-<unique>,<suffix>`), as the managed subtrees are
taken wholesale. Binds are checked with OpenLDAP's ldapwhoami, not only with ldap3.
"""
import subprocess
import sys
import textwrap
from dataclasses import replace

import ldap3
import pytest

from services.identity.domain import HASHER
from ops.slapd import Slapd
from services.proxmox_sync.domain import Group, Person
from services.proxmox_sync.ldap_directory import Directory, DirectoryUnavailable, reader_problem
from services.proxmox_sync.ldap_plan import LdapChange, LdapSettings, plan_full, plan_people
from tests.ldap_tools import INVALID_CREDENTIALS, ldapwhoami

PRIMARY_GID = 5000
PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(slapd, unique) -> LdapSettings:
    base = f"ou=t-{unique},{slapd.base_dn}"
    with admin(slapd) as conn:
        assert conn.add(base, attributes={"objectClass": ["organizationalUnit"], "ou": [f"t-{unique}"]})
    return LdapSettings(slapd.url, slapd.admin_dn, slapd.admin_password, base)


@pytest.fixture
def directory(settings):
    with Directory(settings, timeout=5) as opened:
        opened.ensure_subtrees()
        yield opened


def admin(slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), slapd.admin_dn, slapd.admin_password,
                            auto_bind=True)


def person(name: str, uid_number: int, status: str = "active", password: str = PASSWORD, **changes) -> Person:
    return Person(user_id=f"id-{name}-{uid_number}", username=name, first_name=name.title(), last_name="Tester",
                  email=f"{name}@example.test", uid_number=uid_number, status=status,
                  password_hash=HASHER.hash(password), **changes)


def groups(people, ops=()) -> list[Group]:
    return [Group("g-all", "ldapusers", PRIMARY_GID, "everyone", False, frozenset(p.user_id for p in people)),
            Group("g-ops", "ops", 5001, "operators", False, frozenset(p.user_id for p in ops))]


def sync(directory: Directory, people, groups_) -> int:
    """A full reconcile; afterwards a second one must plan nothing."""
    writes = directory.apply(plan_full(people, groups_, directory.read_all(), directory.settings))
    assert plan_full(people, groups_, directory.read_all(), directory.settings) == []
    return writes


def dn(settings, name: str) -> str:
    return f"uid={name},{settings.people_dn}"


def read(slapd, dn_: str) -> dict | None:
    with admin(slapd) as conn:
        conn.search(dn_, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
        return dict(conn.entries[0].entry_attributes_as_dict) if conn.entries else None


def members(slapd, settings, cn: str) -> set[str]:
    return set(read(slapd, f"cn={cn},{settings.groups_dn}").get("memberUid", []))


def test_active_people_bind_with_their_platform_password_and_nobody_else_does(slapd, settings, directory):
    ada, bob, pat = person("ada", 10001), person("bob", 10002), person("pat", 10003, "pending")
    writes = sync(directory, [ada, bob, pat], groups([ada, bob, pat], ops=[ada]))
    assert writes == 5  # three people, two groups

    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == 0
    assert ldapwhoami(slapd.url, dn(settings, "bob"), PASSWORD) == 0
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD + "!") == INVALID_CREDENTIALS
    assert ldapwhoami(slapd.url, dn(settings, "pat"), PASSWORD) == INVALID_CREDENTIALS
    entry = read(slapd, dn(settings, "ada"))
    assert entry["uidNumber"] == ["10001"] and entry["gidNumber"] == [str(PRIMARY_GID)]
    assert entry["homeDirectory"] == ["/home/ada"] and entry["loginShell"] == ["/bin/bash"]
    assert read(slapd, dn(settings, "pat"))["shadowExpire"] == ["1"]
    assert members(slapd, settings, "ldapusers") == {"ada", "bob"}  # not the pending user
    assert members(slapd, settings, "ops") == {"ada"}

    # the ACL: nobody but the rootdn (and its owner) reads a password, not even the reader
    with reader(slapd) as conn:
        conn.search(settings.people_dn, "(uid=ada)", attributes=["*", "userPassword"])
        assert conn.entries and not conn.entries[0].entry_attributes_as_dict.get("userPassword")


def reader(slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), slapd.reader_dn, slapd.reader_password,
                            auto_bind=True)


def ldapsearch(slapd, base: str, *bind: str) -> subprocess.CompletedProcess:
    """OpenLDAP's ldapsearch of every entry under `base`: anonymous, or bound with -D DN -w PASSWORD."""
    return subprocess.run(["ldapsearch", "-x", "-LLL", "-H", slapd.url, *bind, "-b", base, "(objectClass=*)", "uid"],
                          capture_output=True, text=True, timeout=30, check=False)


def test_nobody_reads_the_directory_anonymously_users_bind_and_the_reader_searches(slapd, settings, directory):
    ada, bob = person("ada", 10081), person("bob", 10082)
    sync(directory, [ada, bob], groups([ada, bob]))

    anonymous = ldapsearch(slapd, settings.people_dn)
    assert anonymous.returncode == 48 and "anonymous bind disallowed" in anonymous.stderr  # inappropriateAuth
    assert "uid:" not in anonymous.stdout
    unbound = ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE))  # no bind at all
    unbound.open()
    assert not unbound.search(settings.people_dn, "(uid=*)") and not unbound.entries
    assert unbound.result["message"] == "authentication required"
    unbound.unbind()

    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == 0  # a simple bind still checks the password
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD + "!") == INVALID_CREDENTIALS
    as_ada = ("-D", dn(settings, "ada"), "-w", PASSWORD)  # a user reads their own entry, nobody else's
    assert "uid: ada" in ldapsearch(slapd, dn(settings, "ada"), *as_ada).stdout
    assert "uid:" not in ldapsearch(slapd, settings.people_dn, *as_ada).stdout

    as_reader = ldapsearch(slapd, settings.people_dn, "-D", slapd.reader_dn, "-w", slapd.reader_password)
    assert as_reader.returncode == 0 and {"uid: ada", "uid: bob"} <= set(as_reader.stdout.splitlines())
    assert ldapwhoami(slapd.url, slapd.reader_dn, "not the reader password") == INVALID_CREDENTIALS
    with reader(slapd) as conn:  # read-only
        assert not conn.delete(dn(settings, "bob")) and conn.result["result"] == 50  # insufficientAccessRights


def test_a_realm_account_that_cannot_read_the_people_is_named(slapd, settings, directory):
    works = replace(settings, bind_dn=slapd.reader_dn, password=slapd.reader_password)
    assert reader_problem(works) is None
    assert "refused the bind" in reader_problem(replace(works, password="wrong"))
    sync(directory, [person("ada", 10091)], groups([person("ada", 10091)]))
    as_user = replace(settings, bind_dn=dn(settings, "ada"), password=PASSWORD)
    assert reader_problem(as_user) == f"{dn(settings, 'ada')} may not read {settings.people_dn}"


def test_suspension_refuses_the_bind_and_drops_memberships_reactivation_restores_both(slapd, settings, directory):
    ada, bob = person("ada", 10011), person("bob", 10012)
    sync(directory, [ada, bob], groups([ada, bob], ops=[ada, bob]))

    suspended = replace(ada, status="suspended")
    sync(directory, [suspended, bob], groups([suspended, bob], ops=[suspended, bob]))
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == INVALID_CREDENTIALS
    entry = read(slapd, dn(settings, "ada"))
    assert "userPassword" not in entry and entry["shadowExpire"] == ["1"] and entry["uidNumber"] == ["10011"]
    assert members(slapd, settings, "ops") == {"bob"} and members(slapd, settings, "ldapusers") == {"bob"}

    sync(directory, [ada, bob], groups([ada, bob], ops=[ada, bob]))
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == 0
    assert "shadowExpire" not in read(slapd, dn(settings, "ada"))
    assert members(slapd, settings, "ops") == {"ada", "bob"}


def test_targeted_plans_change_a_password_and_suspend_without_touching_other_people(slapd, settings, directory):
    ada, bob = person("ada", 10021), person("bob", 10022)
    everyone = groups([ada, bob], ops=[ada, bob])
    sync(directory, [ada, bob], everyone)

    def targeted(who: Person) -> int:
        actual = directory.read_for_people([who.uid_number], [who.username], ["ldapusers", "ops"])
        plan = plan_people({who.uid_number: who}, {who.uid_number: {"ldapusers", "ops"}}, actual, settings,
                           PRIMARY_GID)
        assert all(change.dn != dn(settings, "bob") for change in plan)
        return directory.apply(plan)

    changed = replace(ada, password_hash=HASHER.hash("a brand new passphrase"))
    assert targeted(changed) == 1
    assert ldapwhoami(slapd.url, dn(settings, "ada"), "a brand new passphrase") == 0
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == INVALID_CREDENTIALS

    assert targeted(replace(changed, status="suspended")) == 3  # the entry and two groups
    assert ldapwhoami(slapd.url, dn(settings, "ada"), "a brand new passphrase") == INVALID_CREDENTIALS
    assert members(slapd, settings, "ops") == {"bob"}
    assert ldapwhoami(slapd.url, dn(settings, "bob"), PASSWORD) == 0
    # what the targeted plans did is what a full plan wants
    assert plan_full([replace(changed, status="suspended"), bob], everyone, directory.read_all(), settings) == []


def test_a_rename_keeps_the_uid_number_and_memberships_and_the_old_dn_is_gone(slapd, settings, directory):
    ada, bob = person("ada", 10031), person("bob", 10032)
    sync(directory, [ada, bob], groups([ada, bob], ops=[ada]))

    renamed = replace(ada, username="lovelace")
    sync(directory, [renamed, bob], groups([renamed, bob], ops=[renamed]))
    assert read(slapd, dn(settings, "ada")) is None
    entry = read(slapd, dn(settings, "lovelace"))
    assert entry["uidNumber"] == ["10031"] and entry["uid"] == ["lovelace"]
    assert entry["homeDirectory"] == ["/home/lovelace"]
    assert members(slapd, settings, "ops") == {"lovelace"}
    assert members(slapd, settings, "ldapusers") == {"lovelace", "bob"}
    assert ldapwhoami(slapd.url, dn(settings, "lovelace"), PASSWORD) == 0


def test_drift_behind_the_planners_back_is_repaired_exactly(slapd, settings, directory):
    people = [person(name, 10040 + i) for i, name in enumerate(("ada", "bob", "cy", "dee"))]
    everyone = groups(people, ops=people[:2])
    sync(directory, people, everyone)

    with admin(slapd) as conn:
        assert conn.modify(dn(settings, "ada"), {"mail": [(ldap3.MODIFY_REPLACE, ["evil@example.test"])],
                                                 "userPassword": [(ldap3.MODIFY_REPLACE, ["{CLEARTEXT}x"])]})
        assert conn.delete(dn(settings, "bob"))
        assert conn.add(dn(settings, "intruder"), attributes={
            "objectClass": ["inetOrgPerson"], "cn": "Intruder", "sn": "Intruder", "uid": "intruder"})
        assert conn.modify(f"cn=ops,{settings.groups_dn}", {"memberUid": [(ldap3.MODIFY_ADD, ["intruder"])]})

    plan = plan_full(people, everyone, directory.read_all(), settings)
    assert sorted((change.op, change.dn.split(",")[0], tuple(change.describe().get("attributes", ())))
                  for change in plan) == [
        ("add", "uid=bob", ("cn", "gidNumber", "givenName", "homeDirectory", "loginShell", "mail", "objectClass",
                            "sn", "uid", "uidNumber", "userPassword")),
        ("delete", "uid=intruder", ()),
        ("modify", "cn=ops", ("memberUid",)),
        ("modify", "uid=ada", ("mail",)),
        ("modify", "uid=ada", ("userPassword",)),  # access in a modify of its own (revoke phase)
    ]
    assert directory.apply(plan) == 5
    assert plan_full(people, everyone, directory.read_all(), settings) == []
    assert ldapwhoami(slapd.url, dn(settings, "ada"), PASSWORD) == 0
    assert ldapwhoami(slapd.url, dn(settings, "bob"), PASSWORD) == 0


def test_a_refused_write_names_the_dn_and_the_ldap_result(settings, directory):
    orphan = f"uid=orphan,ou=nowhere,{settings.base_dn}"
    change = LdapChange("add", orphan, attributes={"objectClass": ("inetOrgPerson",), "cn": ("o",), "sn": ("o",),
                                                   "userPassword": ("{ARGON2}$argon2id$secret-looking",)})
    with pytest.raises(DirectoryUnavailable) as refused:
        directory.apply([change])
    assert refused.value.code == "ldap_error"
    assert orphan in refused.value.message and "noSuchObject" in refused.value.message
    assert "secret-looking" not in str(refused.value.as_dict())


def test_a_wrong_bind_password_is_authentication_failed(settings):
    wrong = replace(settings, password="not-the-admin-password")
    with Directory(wrong) as directory, pytest.raises(DirectoryUnavailable) as refused:
        directory.read_all()
    assert refused.value.code == "authentication_failed"
    assert "not-the-admin-password" not in str(refused.value.as_dict()) and "not-the-admin" not in repr(wrong)


def test_a_stopped_server_is_unreachable_and_the_directory_recovers(slapd, settings, directory):
    ada = person("ada", 10051)
    sync(directory, [ada], groups([ada]))
    slapd.stop()
    slapd.start()
    # the pooled connections died with the server: a read replaces them
    assert plan_full([ada], groups([ada]), directory.read_all(), settings) == []

    slapd.stop()
    try:
        with pytest.raises(DirectoryUnavailable) as down:
            directory.read_all()
        assert down.value.code == "unreachable"
        with pytest.raises(DirectoryUnavailable) as down:
            directory.apply(plan_full([ada], groups([ada]), {}, settings))
        assert down.value.code == "unreachable"
        with Directory(settings, timeout=2) as fresh, pytest.raises(DirectoryUnavailable) as down:
            fresh.ensure_subtrees()  # a new connection, refused
        assert down.value.code == "unreachable" and settings.password not in down.value.message
    finally:
        slapd.start()
    assert plan_full([ada], groups([ada]), directory.read_all(), settings) == []


def test_five_hundred_people_sync_then_a_no_op_reconcile_plans_nothing(slapd, settings, directory):
    password_hash = HASHER.hash(PASSWORD)  # one real hash: hashing 500 would only time argon2
    people = [Person(f"id-{i}", f"bulk{i:04d}", "Bulk", f"User {i}", f"bulk{i}@example.test", 20000 + i,
                     "active" if i % 10 else "suspended", password_hash) for i in range(500)]
    everyone = groups(people, ops=people[:100])
    reported = []
    writes = directory.apply(plan_full(people, everyone, directory.read_all(), settings), reported.append)
    assert writes == 502 and reported and reported[-1] == 502 and reported == sorted(reported)
    assert plan_full(people, everyone, directory.read_all(), settings) == []
    assert len(members(slapd, settings, "ldapusers")) == 450
    assert ldapwhoami(slapd.url, dn(settings, "bulk0499"), PASSWORD) == 0
    assert ldapwhoami(slapd.url, dn(settings, "bulk0490"), PASSWORD) == INVALID_CREDENTIALS


def test_apply_works_under_eventlet_monkey_patching(slapd, settings):
    """The sync engine runs in a nameko (eventlet) service: the pool becomes green threads."""
    script = textwrap.dedent(f"""
        import eventlet
        eventlet.monkey_patch()
        from services.proxmox_sync.domain import Group, Person
        from services.proxmox_sync.ldap_directory import Directory
        from services.proxmox_sync.ldap_plan import LdapSettings, plan_full
        settings = LdapSettings({settings.url!r}, {settings.bind_dn!r}, {settings.password!r}, {settings.base_dn!r})
        people = [Person(f"id{{i}}", f"green{{i}}", "G", "R", None, 30000 + i, "active") for i in range(40)]
        groups = [Group("g", "ldapusers", 5000, "", False, frozenset(p.user_id for p in people))]
        with Directory(settings, workers=4) as directory:
            directory.ensure_subtrees()
            print(directory.apply(plan_full(people, groups, directory.read_all(), settings)))
            print(len(plan_full(people, groups, directory.read_all(), settings)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["41", "0"]


@pytest.fixture
def tls_slapd(tmp_path):
    """A slapd of its own serving StartTLS and ldaps:// with a certificate from a private CA."""
    from tests.pve_standin import _make_certificates

    ca_pem, _, _, certfile, keyfile = _make_certificates(tmp_path)
    server = Slapd(tmp_path / "slapd", tls=(certfile, keyfile)).start()
    yield server, ca_pem
    server.stop()


@pytest.mark.parametrize("scheme", ["ldaps", "starttls"])
def test_tls_with_the_given_ca_and_refused_without_it(tls_slapd, scheme):
    server, ca_pem = tls_slapd
    url = server.ldaps_url if scheme == "ldaps" else server.url
    settings = LdapSettings(url, server.admin_dn, server.admin_password, server.base_dn,
                            start_tls=scheme == "starttls", ca_pem=ca_pem)
    ada = person("ada", 10061)
    with Directory(settings) as directory:
        assert directory.ensure_subtrees() == 2
        sync(directory, [ada], groups([ada]))
    assert ldapwhoami(server.url, dn(settings, "ada"), PASSWORD) == 0

    with Directory(replace(settings, ca_pem=None)) as untrusted, pytest.raises(DirectoryUnavailable) as refused:
        untrusted.read_all()  # the system's CAs do not know the private CA
    assert refused.value.code == "unreachable"
    with Directory(replace(settings, ca_pem=None, verify_tls=False)) as unverified:
        assert len(unverified.read_all()) == 3
