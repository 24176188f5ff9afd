"""Every service on PostgreSQL (pg8000): through the gateway, and the kernel's concurrency on it.

A throwaway PostgreSQL server on a free loopback port serves this module; the
platform here runs on the session broker in its own vhost, so it never consumes
the queues of the session's SQLite platform.
"""
import importlib
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import sessionmaker

from kernel import SERVICES, migrate
from kernel.db import ServiceDatabase, create_engine, kernel_tables
from kernel.envelope import SYSTEM, Event, Resource, utc_now
from kernel.outbox import OutboxRelay
from services.identity import storage as identity_storage
from services.identity.domain import FIRST_UID_NUMBER
from tests import user_list_reference
from tests.harness import ADMIN_USERNAME, Platform, eventually, postgres_for_services, register
from tests.integration.test_slice import audit_of


@pytest.fixture(scope="module")
def postgres():
    """PostgreSQL with one database per service; stopped and deleted afterwards."""
    with postgres_for_services("gatehouse-pg-") as server:
        yield server


@pytest.fixture(scope="module")
def pg_platform(postgres, rabbit, tmp_path_factory):
    amqp_uri = rabbit.add_vhost(f"gatehouse-pg-{uuid.uuid4().hex[:8]}")
    env = {f"GATEHOUSE_{name.upper()}_DB_URL": postgres.url(name) for name in SERVICES}
    running = Platform(tmp_path_factory.mktemp("pg-platform"), amqp_uri, extra_env=env)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def fresh_database(postgres, prefix: str) -> str:
    return postgres.url(postgres.create_database(f"{prefix}_{uuid.uuid4().hex[:8]}"))


# --- through the gateway -----------------------------------------------------------------

def test_platform_runs_on_postgres_only(pg_platform, postgres):
    assert pg_platform.api().get("/readyz").status_code == 200
    assert not list((pg_platform.base_dir / "data").glob("*.db")), "a service fell back to SQLite"
    engine = create_engine(postgres.url("identity"))
    try:
        with engine.connect() as conn:
            admin = conn.execute(sa.text("SELECT is_first_admin FROM identity_users WHERE username = :u"),
                                 {"u": ADMIN_USERNAME}).scalar_one()
    finally:
        engine.dispose()
    assert admin is True


def test_register_on_postgres_creates_a_pending_user(pg_platform, unique):
    name = f"pg{unique}"
    response = register(pg_platform.api(), name)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    stored = pg_platform.admin().get(response.headers["Location"]).json()
    assert stored["uid_number"] >= 10000 and stored["username"] == name


def test_admin_login_and_me_on_postgres(pg_platform):
    me = pg_platform.admin().get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["username"] == ADMIN_USERNAME and me.json()["is_first_admin"] is True
    assert me.json()["last_login_at"] is not None


def test_audit_on_postgres_lists_registration_and_login(pg_platform, unique):
    name = f"pa{unique}"
    registered = register(pg_platform.api(), name)
    assert registered.status_code == 201, registered.text
    admin = pg_platform.admin()
    [registration] = audit_of(admin, name, "user_registered")
    assert registration["resource"]["id"] == registered.json()["id"]
    assert registration["source"] == "identity"
    [login, *_] = audit_of(admin, ADMIN_USERNAME, "login_succeeded")
    assert login["actor"]["username"] == ADMIN_USERNAME and login["outcome"] == "success"


def test_duplicate_username_on_postgres_is_a_conflict(pg_platform, unique):
    name = f"pd{unique}"
    assert register(pg_platform.api(), name).status_code == 201
    again = register(pg_platform.api(), name, email=f"other{unique}@example.com")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "user_exists"
    assert "username" in again.json()["error"]["details"]


# --- the kernel on PostgreSQL, no broker -----------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_migrations_on_postgres_build_the_models_and_rerun_as_no_op(postgres, service):
    url = fresh_database(postgres, f"migrate_{service}")
    migrate.upgrade(service, url)
    metadata = importlib.import_module(f"services.{service}.storage").metadata
    outbox = metadata.tables[f"{service}_outbox"]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:  # a row that a rebuilt schema would lose
            conn.execute(sa.insert(outbox).values(event_id="sentinel", exchange="x", routing_key="y", body="{}",
                                                  created_at=sa.func.now()))
            version = conn.execute(sa.text(f"SELECT version_num FROM alembic_version_{service}")).scalar_one()

        migrate.upgrade(service, url)

        with engine.connect() as conn:
            versions = conn.execute(sa.text(f"SELECT version_num FROM alembic_version_{service}")).scalars().all()
            assert versions == [version]
            assert conn.execute(sa.select(outbox.c.event_id)).scalars().all() == ["sentinel"]
            assert set(sa.inspect(conn).get_table_names()) == {*metadata.tables, f"alembic_version_{service}"}
            context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{service}",
                                                             **migrate.comparison_options(conn)})
            assert compare_metadata(context, metadata) == [], f"{service}: migrations and models differ on PostgreSQL"
    finally:
        engine.dispose()


class SlowRecordingPublisher:
    """Stands in for AmqpPublisher: records message ids, a little slowly, like a broker round trip."""

    def __init__(self):
        self.ids = []

    def publish(self, exchange, routing_key, body, message_id):
        time.sleep(0.002)
        self.ids.append(message_id)

    def close(self):
        pass


def test_two_outbox_relays_on_postgres_share_the_work_without_doubles(postgres):
    url = fresh_database(postgres, "relay")
    metadata = sa.MetaData()
    kernel_tables(metadata, "svc")
    databases = [ServiceDatabase("svc", url, metadata) for _ in range(2)]  # two instances of one service
    metadata.create_all(databases[0].engine)
    events = [Event(type="svc.thing_happened", source="svc", category="system", actor=SYSTEM,
                    resource=Resource("thing", str(i))) for i in range(400)]
    with databases[0].unit_of_work() as uow:
        uow.emit(*events)
        uow.commit()

    publishers = [SlowRecordingPublisher() for _ in databases]
    relays = [OutboxRelay(db, publisher, batch_size=25) for db, publisher in zip(databases, publishers)]
    start = threading.Barrier(len(relays))
    errors = []

    def drain(relay):
        try:
            start.wait()
            while relay.db.outbox_backlog():  # rows locked by the other relay count until it commits
                relay.relay_once()
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        first, second = (set(publisher.ids) for publisher in publishers)
        assert all(len(set(p.ids)) == len(p.ids) for p in publishers), "a relay published an event twice"
        assert first and second, "the relays did not run concurrently"
        assert first | second == {event.id for event in events}
        assert first & second == set(), "SKIP LOCKED let both relays publish the same events"
        assert databases[0].outbox_backlog() == 0
    finally:
        for db in databases:
            db.dispose()


def allocate_concurrently(url, threads=4, per_thread=25):
    """Each thread allocates uid numbers, one transaction per number; returns them all."""
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    start = threading.Barrier(threads)
    numbers, errors = [], []

    def allocate():
        try:
            start.wait()
            for _ in range(per_thread):
                with sessions() as session:
                    number = identity_storage.allocate_uid_number(session)
                    session.commit()
                numbers.append(number)
        except Exception as error:
            errors.append(error)

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    engine.dispose()
    assert not errors, errors
    return numbers


def test_uid_numbers_from_concurrent_transactions_on_postgres_are_unique(postgres):
    url = fresh_database(postgres, "uids")
    migrate.upgrade("identity", url)
    engine = create_engine(url)
    with sessionmaker(engine)() as session:  # the counter row exists (the first admin's number)
        first = identity_storage.allocate_uid_number(session)
        session.commit()
    engine.dispose()
    numbers = allocate_concurrently(url)
    assert len(numbers) == 100
    assert len(set(numbers)) == len(numbers), "a uid number was handed out twice"
    assert set(numbers) == set(range(first + 1, first + 101))


def test_first_uid_allocations_racing_on_postgres_both_succeed(postgres):
    url = fresh_database(postgres, "uids")
    migrate.upgrade("identity", url)
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    outcome = {}

    def second_allocation():
        with sessions() as session:
            try:
                outcome["number"] = identity_storage.allocate_uid_number(session)
                session.commit()
            except Exception as error:
                outcome["error"] = error

    try:
        with sessions() as first:
            first_number = identity_storage.allocate_uid_number(first)  # counter row inserted, not committed
            racer = threading.Thread(target=second_allocation)
            racer.start()
            eventually(lambda: waiting_on_a_lock(engine), message="second allocation waiting on the first")
            first.commit()
        racer.join(30)
    finally:
        engine.dispose()
    if "error" in outcome:
        raise outcome["error"]
    assert {first_number, outcome["number"]} == {FIRST_UID_NUMBER, FIRST_UID_NUMBER + 1}


def test_rate_counters_on_postgres_lose_no_count_and_refuse_beyond_the_limit(postgres):
    from datetime import datetime, timezone

    from services.identity import limits

    url = fresh_database(postgres, "rates")
    migrate.upgrade("identity", url)
    engine = create_engine(url, pool_size=8)
    sessions = sessionmaker(engine)
    limit = limits.Limit("invitations_per_admin", 90, 3600)
    start, end = limits.window_bounds(datetime.now(timezone.utc), limit.window_seconds)
    taken = []

    def take_many():
        for _ in range(25):
            with sessions() as session:
                taken.append(identity_storage.take_rate(session, limit.key("admin"), start, end, 1,
                                                        lambda count: limits.allows(count, limit)))
                session.commit()

    try:
        threads = [threading.Thread(target=take_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(identity_storage.RateCounter.count)).scalar_one()
    finally:
        engine.dispose()
    assert sorted(taken) == [False] * 10 + [True] * 90  # 100 tries, 90 allowed, the refused counted back
    assert stored == 90


def waiting_on_a_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )).scalar_one())


def test_user_administration_on_postgres(pg_platform, unique):
    """The user list's page query (NULLS LAST, subquery) and row-locked edits on PostgreSQL."""
    admin = pg_platform.admin()
    ids = []
    for i, first in enumerate(("Bea", "Al", "Cid")):
        created = admin.post("/api/v1/users", json={"username": f"pu{i}{unique}", "email": f"pu{i}{unique}@example.com",
                                                   "first_name": first, "last_name": f"Pg{unique}"})
        assert created.status_code == 201, created.text
        ids.append(created.json()["user"]["id"])
    assert admin.patch(f"/api/v1/users/{ids[0]}", json={"role": "viewer"}).status_code == 200
    edited = admin.patch(f"/api/v1/users/{ids[2]}", headers={"If-Match": '"1"'}, json={"status": "suspended"})
    assert edited.status_code == 200 and edited.headers["ETag"] == '"2"', edited.text

    def page(**params):
        return admin.get("/api/v1/users", params={"q": f"pg{unique}", **params}).json()

    assert [u["first_name"] for u in page(sort="name", order="asc")["items"]] == ["Al", "Bea", "Cid"]
    eventually(lambda: [u["role"] for u in page(sort="role", order="desc")["items"]] == ["viewer", None, None],
               20, message="role column on postgres")
    first = page(sort="name", limit=2)
    assert first["total"] == 3 and len(first["items"]) == 2
    assert len(page(sort="name", limit=2, cursor=first["next_cursor"])["items"]) == 1
    assert admin.delete(f"/api/v1/users/{ids[1]}").status_code == 204
    assert page()["total"] == 2


@pytest.mark.parametrize("cap", [6, 1000])
def test_user_list_on_postgres_matches_the_reference(postgres, monkeypatch, cap):
    """Every sort both ways, filters and pages, on users made before the sort indexes (the upgrade
    indexes them); a small cap makes totals stop counting early."""
    monkeypatch.setattr(identity_storage, "TOTAL_CAP", cap)
    db = user_list_reference.people_migrated_to_head(fresh_database(postgres, "userlist"))
    try:
        with db.sessions() as session:
            for tenant_id in ("default", "other", None):
                assert user_list_reference.assert_list_matches_reference(session, tenant_id) > 0
    finally:
        db.dispose()


def test_two_factor_sign_in_on_postgres(pg_platform, unique):
    """The second step's row locks and single-use updates (ticket, code step, recovery code) on PostgreSQL."""
    from tests.integration.test_twofactor import enroll, error_of, password_step, second_step

    user, api = pg_platform.create_user(f"pt{unique}")
    authenticator, codes = enroll(api)
    client = pg_platform.api()
    ticket = password_step(pg_platform, user["username"], api=client)["login_ticket"]
    error_of(second_step(client, ticket, code=authenticator.wrong_code()), 401, "invalid_code")
    code = authenticator.code()
    assert second_step(client, ticket, code=code).status_code == 200
    error_of(second_step(client, ticket, code=code), 401, "login_ticket_invalid")
    again = password_step(pg_platform, user["username"], api=client)["login_ticket"]
    error_of(second_step(client, again, code=code), 401, "code_reused")
    assert second_step(client, again, recovery_code=codes[0]).status_code == 200
    assert api.get("/api/v1/me/2fa").json()["recovery_codes_left"] == 9
    assert pg_platform.admin().delete(f"/api/v1/users/{user['id']}/2fa").status_code == 204
    assert api.get("/api/v1/me/2fa").json()["enrolled"] is False


def test_concurrent_inventory_replacements_of_one_connection_on_postgres_never_clash(postgres):
    # The poller and a power action's refresh both replace a connection's rows: on PostgreSQL the
    # second's delete does not see the first's new rows, so unserialized its inserts clashed.
    from services.proxmox_sync import storage as sync_storage

    url = fresh_database(postgres, "inventory")
    migrate.upgrade("proxmox_sync", url)
    engine = create_engine(url, pool_size=8)
    sessions = sessionmaker(engine)
    now = utc_now()
    rows = [{"kind": "node", "key": f"n{i}", "node": f"n{i}", "name": None, "vmid": None, "status": "online",
             "data": {}, "seen_at": now} for i in range(20)]
    start, errors = threading.Barrier(4), []

    def replace_many():
        try:
            start.wait()
            for _ in range(10):
                with sessions() as session:
                    sync_storage.replace_inventory(session, "c1", "default", rows)
                    session.commit()
        except Exception as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=replace_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(sync_storage.InventoryItem)).scalar_one()
    finally:
        engine.dispose()
    assert not errors, errors[:1]
    assert stored == 20


def test_concurrent_sync_work_of_one_target_on_postgres_never_clashes(postgres):
    # Events of several workers mark work for the same target and subject while a run finishes
    # it: read-then-write, they used to insert the row twice or update a row just deleted.
    from services.proxmox_sync import storage as sync_storage

    url = fresh_database(postgres, "syncwork")
    migrate.upgrade("proxmox_sync", url)
    engine = create_engine(url, pool_size=8)
    sessions = sessionmaker(engine)
    start, errors = threading.Barrier(4), []

    def mark_many():
        try:
            start.wait()
            for n in range(15):
                with sessions() as session:
                    for target in ("ldap", "pve:c1"):
                        sync_storage.ensure_target(session, target, None)
                        sync_storage.enqueue(session, target, "user-1", utc_now(), {"former": [f"u{n}"]})
                    session.commit()
        except Exception as error:
            errors.append(error)

    def finish_many():
        try:
            start.wait()
            for _ in range(15):
                with sessions() as session:
                    done = {(row.target, row.subject): row.generation
                            for row in sync_storage.due_work(session, "ldap", utc_now())}
                    sync_storage.finish_work(session, done)
                    session.commit()
        except Exception as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=mark_many) for _ in range(3)] + [threading.Thread(target=finish_many)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        engine.dispose()
    assert not errors, errors[:1]
