"""The Foundation's vertical slice, through the gateway on a real RabbitMQ."""
import time

import jwt
import pytest

from tests.harness import ADMIN_USERNAME, PASSWORD, eventually, register


def audit_of(admin, username, action, count=1):
    """Waits until the audit log holds `count` records of `action` about `username`."""
    def found():
        items = [e for e in admin.audit(action=action) if e["resource"]["name"] == username]
        return items if len(items) >= count else None
    return eventually(found, message=f"{count} audit record(s) {action} of {username}")


def test_health_and_readiness(platform):
    api = platform.api()
    assert api.get("/healthz").json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {name: "ok" for name in
                                      ("broker", "identity", "rbac", "tenancy", "audit", "proxmox_sync")}


def test_register_creates_a_pending_user(platform, unique):
    name = f"u{unique}"
    response = register(platform.api(), name)
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["status"] == "pending"
    assert user["username"] == name and user["email"] == f"{name}@example.com"
    assert "password" not in user and "password_hash" not in user
    assert "uid_number" not in user and "is_first_admin" not in user  # nothing an anonymous caller needs
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    admin = platform.admin()
    stored = admin.get(response.headers["Location"])
    assert stored.status_code == 200
    assert stored.json()["status"] == "pending" and stored.json()["uid_number"] >= 10000


def test_user_lookup_needs_a_sign_in_and_names_unknown_ids(platform):
    assert platform.api().get("/api/v1/users/some-id").status_code == 401
    missing = platform.admin().get("/api/v1/users/0e7bd1c6-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_uid_numbers_are_unique_and_increasing(platform, unique):
    admin = platform.admin()

    def uid_of(name):
        return admin.get(register(platform.api(), name).headers["Location"]).json()["uid_number"]

    first, second = uid_of(f"a{unique}"), uid_of(f"b{unique}")
    assert second > first >= 10000


def test_duplicate_username_or_email_is_a_conflict(platform, unique):
    name = f"d{unique}"
    assert register(platform.api(), name).status_code == 201
    again = register(platform.api(), name, email=f"other{unique}@example.com")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "user_exists"
    assert "username" in again.json()["error"]["details"]
    same_mail = register(platform.api(), f"e{unique}", email=f"{name.upper()}@EXAMPLE.com")
    assert same_mail.status_code == 409
    assert "email" in same_mail.json()["error"]["details"]


@pytest.mark.parametrize("overrides, field", [
    ({"username": "root"}, "username"),
    ({"username": "Has Upper"}, "username"),
    ({"username": "x" * 33}, "username"),
    ({"email": "not-an-address"}, "email"),
    ({"password": "short"}, "password"),
    ({"password": "passwordpassword"}, "password"),
    ({"first_name": " "}, "first_name"),
])
def test_invalid_registration_names_the_field(platform, unique, overrides, field):
    response = register(platform.api(), f"v{unique}", **overrides)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in str(error["details"])


def test_malformed_requests_get_clear_4xx(platform):
    api = platform.api()
    unknown = api.post("/api/v1/auth/register", json={"username": "x", "surprise": 1})
    assert unknown.status_code == 422
    assert "surprise" in unknown.json()["error"]["details"]["json"]
    missing = api.post("/api/v1/auth/login", json={})
    assert missing.status_code == 422
    assert set(missing.json()["error"]["details"]["json"]) == {"login", "password"}
    broken = api.post("/api/v1/auth/login", data="{not json", headers={"Content-Type": "application/json"})
    assert 400 <= broken.status_code < 500 and "error" in broken.json()
    huge = api.post("/api/v1/auth/login", json={"login": "a", "password": "x" * 300_000})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    assert api.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"


def test_admin_login_and_me(platform):
    admin = platform.admin()
    me = admin.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["username"] == ADMIN_USERNAME
    assert me.json()["is_first_admin"] is True
    assert me.json()["last_login_at"] is not None


def test_login_by_email_works(platform):
    response = platform.api().post("/api/v1/auth/login",
                                   json={"login": f"{ADMIN_USERNAME}@localhost", "password": platform.env["GATEHOUSE_ADMIN_PASSWORD"]})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0


def test_wrong_password_and_unknown_user_look_the_same(platform):
    api = platform.api()
    wrong = api.post("/api/v1/auth/login", json={"login": ADMIN_USERNAME, "password": "not the password!"})
    unknown = api.post("/api/v1/auth/login", json={"login": "nobody-here", "password": "not the password!"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"]


def test_pending_user_cannot_sign_in(platform, unique):
    name = f"p{unique}"
    register(platform.api(), name)
    response = platform.api().post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "account_not_active"


def test_me_needs_a_valid_token(platform):
    api = platform.api()
    assert api.get("/api/v1/me").json()["error"]["code"] == "token_missing"
    api.token = "garbage"
    assert api.get("/api/v1/me").json()["error"]["code"] == "token_invalid"
    secret = (platform.base_dir / "data" / "jwt.key").read_text().strip()
    now = int(time.time())
    admin_id = platform.admin().get("/api/v1/me").json()["id"]
    claims = {"iss": "gatehouse", "sub": admin_id, "sid": "x", "iat": now - 100, "exp": now - 10}
    api.token = jwt.encode(claims, secret, algorithm="HS256")
    expired = api.get("/api/v1/me")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    api.token = jwt.encode({**claims, "exp": now + 100}, "another-key-entirely-000000000000", algorithm="HS256")
    assert api.get("/api/v1/me").json()["error"]["code"] == "token_invalid"
    api.token = jwt.encode({**claims, "exp": now + 100}, secret, algorithm="HS256")
    forged_session = api.get("/api/v1/me")
    assert forged_session.status_code == 401 and forged_session.json()["error"]["code"] == "session_invalid"


def test_audit_lists_registration_and_logins(platform, unique):
    name = f"w{unique}"
    api = platform.api()
    registered = register(api, name)
    assert registered.status_code == 201
    api.post("/api/v1/auth/login", json={"login": name, "password": "wrong wrong wrong"},
             headers={"X-Request-ID": f"req-{unique}"})
    admin = platform.admin()

    [registration] = audit_of(admin, name, "user_registered")
    assert registration["category"] == "users"
    assert registration["type"] == "identity.user_registered"
    assert registration["source"] == "identity"
    assert registration["resource"] == {"type": "user", "id": registered.json()["id"], "name": name}
    assert registration["actor"]["ip"] == api.client_ip  # the harness gives each client its own address
    assert registration["occurred_at"].endswith("Z")
    assert registration["data"]["status"] == "pending"

    [failure] = audit_of(admin, name, "login_failed")
    assert failure["category"] == "auth" and failure["outcome"] == "failure"
    assert failure["data"]["reason"] == "bad_password"
    assert failure["request_id"] == f"req-{unique}"

    [success, *_] = audit_of(admin, ADMIN_USERNAME, "login_succeeded")
    assert success["outcome"] == "success"
    assert success["actor"]["username"] == ADMIN_USERNAME


def test_unknown_user_login_is_audited_with_the_reason(platform, unique):
    platform.api().post("/api/v1/auth/login", json={"login": f"ghost{unique}", "password": "whatever it is"})
    [failure] = audit_of(platform.admin(), f"ghost{unique}", "login_failed")
    assert failure["data"]["reason"] == "unknown_user"
    assert failure["actor"]["user_id"] is None


def test_audit_events_carry_no_secrets(platform, unique):
    register(platform.api(), f"s{unique}")
    for event in platform.admin().audit():
        text = str(event).lower()
        assert PASSWORD not in text and "$argon2" not in text


def test_audit_needs_a_signed_in_user(platform):
    response = platform.api().get("/api/v1/audit/events")
    assert response.status_code == 401


def test_audit_filters_and_cursor_paging(platform, unique):
    for i in range(3):
        register(platform.api(), f"c{i}{unique}")
    admin = platform.admin()
    eventually(lambda: len([e for e in admin.audit(action="user_registered")
                            if e["resource"]["name"].endswith(unique)]) == 3)
    first = admin.get("/api/v1/audit/events", params={"limit": 2, "action": "user_registered"}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = admin.get("/api/v1/audit/events",
                       params={"limit": 2, "action": "user_registered", "cursor": first["next_cursor"]}).json()
    seqs = [e["seq"] for e in first["items"] + second["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    assert all(e["action"] == "user_registered" for e in first["items"] + second["items"])
    bad = admin.get("/api/v1/audit/events", params={"outcome": "maybe"})
    assert bad.status_code == 422 and "outcome" in str(bad.json()["error"]["details"])


def test_first_admin_is_super_admin_through_rbac_events(platform):
    admin = platform.admin()
    me = admin.get("/api/v1/me").json()
    # by resource: on the shared platform, other tests' role assignments may fill a page before it
    [assigned, *_] = eventually(lambda: [e for e in admin.audit(action="role_assigned", resource_id=me["id"])
                                         if e["resource"]["id"] == me["id"]])
    assert assigned["data"]["role"] == "super_admin"
    assert assigned["source"] == "rbac"


def test_request_id_is_returned(platform):
    response = platform.api().get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert response.headers["X-Request-ID"] == "trace-123"
    generated = platform.api().get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces" and len(generated.headers["X-Request-ID"]) == 32


def test_bootstrap_admin_is_idempotent(platform):
    output = platform.gatehouse("bootstrap-admin")
    assert "exists" in output and ADMIN_USERNAME in output
    assert platform.env["GATEHOUSE_ADMIN_PASSWORD"] not in output


def test_openapi_spec_lists_the_slice(platform):
    spec = platform.api().get("/api/v1/openapi.json").json()
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/me", "/api/v1/users/{user_id}",
                 "/api/v1/audit/events"):
        assert path in spec["paths"]
