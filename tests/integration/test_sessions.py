"""Sessions, refresh tokens, sign-out, password change, login protection, and revocation
reaching every gateway worker, through the gateway on a real platform."""
import threading

import jwt

from tests.harness import PASSWORD, eventually

NEW_PASSWORD = "another quite long passphrase"
ME_PROBES = 24  # enough requests that both gateway workers (and their caches) answer some


def login(platform, name, password=PASSWORD, api=None, **headers):
    return (api or platform.api()).post("/api/v1/auth/login", json={"login": name, "password": password},
                                        headers=headers)


def all_me(api, expected_status, probes=ME_PROBES):
    """True when every one of many /me requests answers the status. Each comes on a new
    connection (a kept-alive one stays with one worker), so both workers answer some."""
    return all(api.get("/api/v1/me", headers={"Connection": "close"}).status_code == expected_status
               for _ in range(probes))


def refused_everywhere(api, message):
    """The token is refused promptly by every worker (events reach each process's cache)."""
    eventually(lambda: all_me(api, 401), timeout=3, interval=0.05, message=message)
    assert all_me(api, 401)  # and it stays refused


def audit_of(admin, action, user_id, check=lambda event: True):
    def found():
        return [e for e in admin.audit(action=action, resource_id=user_id) if check(e)]
    return eventually(found, timeout=15, message=f"audit {action} of {user_id}")


# --- sign-in and tokens ----------------------------------------------------------

def test_login_answers_access_and_refresh_tokens_and_records_the_device(platform, unique):
    user, _ = platform.create_user(f"s{unique}")
    api = platform.api()
    response = login(platform, user["username"], api=api, **{"User-Agent": "TestBrowser/1.0 " + "x" * 400})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert len(body["refresh_token"]) >= 40 and body["session_id"] and body["user"]["id"] == user["id"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "sid", "username", "iat", "exp", "iss"}
    assert claims["sid"] == body["session_id"]

    sessions = api.signed_in(body).get("/api/v1/me/sessions").json()
    assert sessions["total"] == 2 and sessions["next_cursor"] is None  # create_user signed in too
    (session,) = [s for s in sessions["items"] if s["current"]]
    assert session["id"] == body["session_id"]
    assert session["ip"] == api.client_ip
    assert session["user_agent"].startswith("TestBrowser/1.0") and len(session["user_agent"]) == 256
    assert session["expires_at"] > session["created_at"]


def test_refresh_rotates_and_a_reused_refresh_token_closes_the_session(platform, unique):
    user, first = platform.create_user(f"r{unique}")
    response = first.post("/api/v1/auth/refresh", json={"refresh_token": first.refresh_token})
    assert response.status_code == 200, response.text
    second = first.signed_in(response.json())
    assert second.refresh_token != first.refresh_token and second.session_id == first.session_id
    assert second.get("/api/v1/me").status_code == 200

    reused = first.post("/api/v1/auth/refresh", json={"refresh_token": first.refresh_token})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "refresh_token_reused"
    # The thief's use and the owner's are indistinguishable: the whole session ends.
    again = second.post("/api/v1/auth/refresh", json={"refresh_token": second.refresh_token})
    assert again.status_code == 401
    refused_everywhere(second, "access token of a session closed for refresh token reuse")
    audit_of(platform.admin(), "sessions_revoked", user["id"],
             lambda e: e["data"]["reason"] == "refresh_token_reuse" and e["data"]["session_ids"] == [first.session_id])


def test_two_concurrent_refreshes_exactly_one_wins(platform, unique):
    _, api = platform.create_user(f"c{unique}")
    results, start = [], threading.Barrier(4)

    def use():
        start.wait()
        results.append(api.post("/api/v1/auth/refresh", json={"refresh_token": api.refresh_token}).status_code)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 401, 401, 401]


def test_bad_refresh_tokens_are_refused(platform):
    api = platform.api()
    unknown = api.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"})
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "refresh_token_invalid"
    assert api.post("/api/v1/auth/refresh", json={}).status_code == 422


# --- sign-out and sessions: revocation reaches every worker ---------------------------

def test_logout_refuses_the_token_on_every_worker(platform, unique):
    user, api = platform.create_user(f"l{unique}")
    assert all_me(api, 200)  # both workers have now cached this session
    response = api.post("/api/v1/auth/logout")
    assert response.status_code == 204 and response.content == b""
    refused_everywhere(api, "access token after logout")
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": api.refresh_token}).status_code == 401
    audit_of(platform.admin(), "logout", user["id"])


def test_my_sessions_one_ended_then_all_others(platform, unique):
    user, laptop = platform.create_user(f"m{unique}")
    phone, tablet = (platform.api().login(user["username"], PASSWORD) for _ in range(2))
    listing = laptop.get("/api/v1/me/sessions").json()
    assert listing["total"] == 3
    assert {s["id"]: s["current"] for s in listing["items"]} == {
        laptop.session_id: True, phone.session_id: False, tablet.session_id: False}
    assert laptop.get("/api/v1/me/sessions", params={"limit": 2}).json()["next_cursor"] is not None

    for api in (laptop, phone, tablet):
        assert all_me(api, 200)
    assert laptop.delete(f"/api/v1/me/sessions/{phone.session_id}").status_code == 204
    refused_everywhere(phone, "token of a session ended by its owner")
    assert all_me(tablet, 200) and all_me(laptop, 200)

    assert laptop.delete("/api/v1/me/sessions").status_code == 204
    refused_everywhere(tablet, "token of another session after 'end all others'")
    assert all_me(laptop, 200)
    assert [s["id"] for s in laptop.get("/api/v1/me/sessions").json()["items"]] == [laptop.session_id]


def test_someone_elses_session_is_not_found(platform, unique):
    _, alice_api = platform.create_user(f"a{unique}")
    _, bob_api = platform.create_user(f"b{unique}")
    response = alice_api.delete(f"/api/v1/me/sessions/{bob_api.session_id}")
    assert response.status_code == 404
    assert bob_api.get("/api/v1/me").status_code == 200


def test_admin_lists_and_ends_a_users_sessions(platform, unique):
    user, first = platform.create_user(f"d{unique}")
    apis = [first, platform.api().login(user["username"], PASSWORD)]
    admin = platform.admin()
    listing = admin.get(f"/api/v1/users/{user['id']}/sessions")
    assert listing.status_code == 200
    assert {s["id"] for s in listing.json()["items"]} == {api.session_id for api in apis}
    assert not any(s["current"] for s in listing.json()["items"])

    forbidden = apis[0].get(f"/api/v1/users/{user['id']}/sessions")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "permission_denied"
    assert apis[0].delete(f"/api/v1/users/{user['id']}/sessions").status_code == 403

    for api in apis:
        assert all_me(api, 200)
    assert admin.delete(f"/api/v1/users/{user['id']}/sessions").status_code == 204
    for api in apis:
        refused_everywhere(api, "token after an administrator ended every session")
    assert admin.get(f"/api/v1/users/{user['id']}/sessions").json()["total"] == 0
    audit_of(admin, "sessions_revoked", user["id"], lambda e: e["data"]["reason"] == "admin")
    assert admin.delete("/api/v1/users/0e7bd1c6-0000-4000-8000-000000000000/sessions").status_code == 404


# --- password change ------------------------------------------------------------

def test_password_change_checks_both_passwords_and_ends_other_sessions(platform, unique):
    user, here = platform.create_user(f"p{unique}")
    elsewhere = platform.api().login(user["username"], PASSWORD)

    wrong = here.post("/api/v1/me/password", json={"current_password": "wrong password!!", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    weak = here.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "tenchars!!"})  # the policy's 12
    assert weak.status_code == 422
    assert "at least" in weak.json()["error"]["details"]["new_password"]
    named = here.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                   "new_password": f"my name is {user['username']}!"})
    assert "username" in named.json()["error"]["details"]["new_password"]

    assert all_me(elsewhere, 200)
    changed = here.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    refused_everywhere(elsewhere, "other session's token after a password change")
    assert all_me(here, 200)
    assert login(platform, user["username"]).status_code == 401
    assert login(platform, user["username"], NEW_PASSWORD).status_code == 200
    admin = platform.admin()
    audit_of(admin, "password_changed", user["id"])
    audit_of(admin, "sessions_revoked", user["id"], lambda e: e["data"]["reason"] == "password_changed")
    audit_of(admin, "login_failed", user["id"], lambda e: e["data"]["via"] == "password_change")


def test_wrong_current_passwords_count_toward_the_account_lock(platform, unique):
    user, api = platform.create_user(f"w{unique}")
    for _ in range(5):
        response = api.post("/api/v1/me/password", json={"current_password": "wrong password!!",
                                                         "new_password": NEW_PASSWORD})
        assert response.status_code == 401
    # Locked now: even the right current password is refused with the same answer.
    locked = api.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert locked.status_code == 401 and locked.json()["error"] == response.json()["error"]
    assert login(platform, user["username"]).json()["error"]["code"] == "invalid_credentials"


def test_must_change_password_allows_only_the_change(platform, unique):
    _, api = platform.create_user(f"f{unique}", must_change_password=True)  # by an administrator
    me = api.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    blocked = api.get("/api/v1/me/sessions")
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "password_change_required"
    assert api.get("/api/v1/audit/events").json()["error"]["code"] == "password_change_required"
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": api.refresh_token})
    assert refreshed.status_code == 200
    api = api.signed_in(refreshed.json())

    assert api.post("/api/v1/me/password", json={"current_password": api.password,
                                                 "new_password": NEW_PASSWORD}).status_code == 204
    assert all_me(api, 200)
    assert api.get("/api/v1/me").json()["must_change_password"] is False
    # Not cached while owed: every worker lets the user through right after the change.
    assert all(api.get("/api/v1/me/sessions").status_code == 200 for _ in range(ME_PROBES))
    assert api.post("/api/v1/auth/logout").status_code == 204


# --- login protection -----------------------------------------------------------

def test_a_locked_account_looks_exactly_like_a_wrong_password(platform, unique):
    user, _ = platform.create_user(f"k{unique}")
    attacker = platform.api()
    answers = [login(platform, user["username"], "wrong password!!", api=attacker) for _ in range(5)]
    assert {a.status_code for a in answers} == {401}
    # Locked: the right password, from another address, gets the wrong-password answer.
    locked = login(platform, user["username"])
    assert locked.status_code == 401 and locked.json() == answers[0].json()
    assert "Retry-After" not in locked.headers
    admin = platform.admin()
    audit_of(admin, "login_throttled", user["id"], lambda e: e["data"]["scope"] == "account")
    audit_of(admin, "login_failed", user["id"], lambda e: e["data"]["reason"] == "account_locked")

    assert platform.api().post(f"/api/v1/users/{user['id']}/unlock").status_code == 401
    assert admin.post(f"/api/v1/users/{user['id']}/unlock").status_code == 204
    assert login(platform, user["username"]).status_code == 200
    audit_of(admin, "account_unlocked", user["id"])


def test_unknown_names_are_throttled_like_known_ones(platform, unique):
    api = platform.api()
    answers = [login(platform, f"ghost{unique}", "wrong password!!", api=api) for _ in range(7)]
    assert {a.status_code for a in answers} == {401}
    assert len({str(a.json()) for a in answers}) == 1
    events = eventually(lambda: [e for e in platform.admin().audit(action="login_throttled")
                                 if e["resource"]["name"] == f"ghost{unique}"], timeout=15)
    assert events[0]["data"]["scope"] == "account"


def test_a_success_clears_the_account_count(platform, unique):
    user, _ = platform.create_user(f"o{unique}")
    for _ in range(2):
        for _ in range(4):
            assert login(platform, user["username"], "wrong password!!").status_code == 401
        assert login(platform, user["username"]).status_code == 200


def test_too_many_failures_from_one_address_get_429(platform, unique):
    user, _ = platform.create_user(f"i{unique}")
    attacker = platform.api()
    for n in range(50):  # different names: no account lock gets in the way
        assert login(platform, f"spray{n}{unique}", "wrong password!!", api=attacker).status_code == 401
    refused = login(platform, user["username"], api=attacker)  # even the right password
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # identity's int crosses RPC and the gateway as an int (nameko alone would make it the text "60")
    assert refused.json()["error"]["details"] == {"retry_after": int(refused.headers["Retry-After"])}
    assert login(platform, user["username"]).status_code == 200  # another address is not concerned
    audit_of(platform.admin(), "login_throttled", user["id"], lambda e: e["data"]["scope"] == "ip")
