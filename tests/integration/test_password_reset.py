"""Password resets by mailed link and by an administrator, through the gateway with a real SMTP server."""
import json

import pytest

from tests.harness import PASSWORD, eventually
from tests.mailbox import Mailbox

NEW_PASSWORD = "another quite long passphrase"
ACCEPTED = {"message": "If an active account has this address, a reset link is on its way."}


@pytest.fixture
def admin(platform, mailbox):
    admin = platform.admin()
    assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    return admin


@pytest.fixture
def member(platform, admin, unique):
    """An active user of its own, who has received no mail yet: (username, email, user id)."""
    user, _ = platform.create_user(f"rs{unique}", admin=admin)
    return user["username"], user["email"], user["id"]


def request_reset(api, email):
    return api.post("/api/v1/auth/password-reset", json={"email": email})


def confirm(api, token, password=NEW_PASSWORD):
    return api.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": password})


def login_status(api, login, password):
    return api.post("/api/v1/auth/login", json={"login": login, "password": password}).status_code


def test_reset_by_mailed_link(platform, mailbox, admin, member):
    username, email, user_id = member
    anonymous = platform.api()
    session = anonymous.login(username, PASSWORD)
    response = request_reset(anonymous, email)
    assert response.status_code == 202 and response.json() == ACCEPTED
    [message] = mailbox.wait_for(email)
    assert message["Subject"] == "Reset your Gatehouse password"
    link, token = Mailbox.link(message)
    assert link == f"{platform.url}/reset-password#token={token}"  # GATEHOUSE_PUBLIC_URL follows the port

    weak = confirm(anonymous, token, "tenchars!!")  # past the gateway's floor of 8, short of the policy's 12
    assert weak.status_code == 422 and "at least" in weak.json()["error"]["details"]["password"]
    assert confirm(anonymous, token).status_code == 204
    again = confirm(anonymous, token, "yet another long passphrase")
    assert again.status_code == 410 and again.json()["error"]["code"] == "reset_used"
    unknown = confirm(anonymous, "not-a-token-we-issued")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "reset_not_found"

    assert login_status(anonymous, username, PASSWORD) == 401
    assert login_status(anonymous, username, NEW_PASSWORD) == 200
    assert session.get("/api/v1/me").status_code == 401  # every earlier session ended

    eventually(lambda: admin.audit(action="password_reset_completed", resource_id=user_id), 20,
               message="password_reset_completed audited")
    revoked = eventually(lambda: admin.audit(action="sessions_revoked", resource_id=user_id), 20,
                         message="sessions_revoked audited")
    assert revoked[0]["data"]["reason"] == "password_reset"
    assert token not in json.dumps(admin.audit())


def test_the_answer_is_the_same_for_unknown_addresses_and_mails_are_throttled(platform, mailbox, admin, member,
                                                                                unique):
    _, email, user_id = member
    anonymous = platform.api()
    nobody = request_reset(anonymous, f"nobody{unique}@example.com")
    assert nobody.status_code == 202 and nobody.json() == ACCEPTED
    assert request_reset(anonymous, "not an address").json() == ACCEPTED
    first, second = request_reset(anonymous, email), request_reset(anonymous, email)
    assert first.json() == second.json() == ACCEPTED
    mailbox.wait_for(email)
    eventually(lambda: admin.audit(action="password_reset_requested", resource_id=user_id), 20,
               message="password_reset_requested audited")
    assert len(admin.audit(action="password_reset_requested", resource_id=user_id)) == 1  # one per minute
    assert len(mailbox.messages_to(email)) == 1  # one reset mail
    assert mailbox.messages_to(f"nobody{unique}@example.com") == []


def test_an_expired_reset_link_is_refused(platform, mailbox, admin, member):
    _, email, _ = member
    request_reset(platform.api(), email)
    token = Mailbox.link(mailbox.wait_for(email)[0])[1]
    platform.sql("identity", "UPDATE identity_password_resets SET expires_at = '2000-01-01 00:00:00' "
                 "WHERE user_id = (SELECT id FROM identity_users WHERE email = :email)", email=email)
    refused = confirm(platform.api(), token)
    assert refused.status_code == 410 and refused.json()["error"]["code"] == "reset_expired"


def test_an_admin_sends_a_reset_link(platform, mailbox, admin, member):
    username, email, user_id = member
    response = admin.post(f"/api/v1/users/{user_id}/password-reset", json={"method": "email"})
    assert response.status_code == 202, response.text
    token = Mailbox.link(mailbox.wait_for(email)[0])[1]
    assert confirm(platform.api(), token).status_code == 204
    assert login_status(platform.api(), username, NEW_PASSWORD) == 200
    requested = eventually(lambda: admin.audit(action="password_reset_requested", resource_id=user_id), 20,
                           message="password_reset_requested audited")
    assert requested[0]["data"]["by_admin"] is True


def test_an_admin_sets_a_random_password_shown_once(platform, admin, member):
    username, _, user_id = member
    session = platform.api().login(username, PASSWORD)
    response = admin.post(f"/api/v1/users/{user_id}/password-reset", json={"method": "random"})
    assert response.status_code == 200, response.text
    generated = response.json()["password"]
    assert len(generated) >= 16
    assert session.get("/api/v1/me").status_code == 401
    assert login_status(platform.api(), username, PASSWORD) == 401
    fresh = platform.api().post("/api/v1/auth/login", json={"login": username, "password": generated})
    assert fresh.status_code == 200
    assert admin.get(f"/api/v1/users/{user_id}").json()["status"] == "active"
    changed = eventually(lambda: admin.audit(action="password_changed", resource_id=user_id), 20,
                         message="password_changed audited")
    assert changed[0]["data"] == {"by_admin": True}
    assert generated not in json.dumps(admin.audit())


def test_admin_resets_are_validated(platform, admin, member):
    _, _, user_id = member
    assert admin.post(f"/api/v1/users/{user_id}/password-reset", json={"method": "choose"}).status_code == 422
    assert admin.post(f"/api/v1/users/{user_id}/password-reset",
                      json={"method": "random", "password": "mine"}).status_code == 422  # never chosen by an admin
    missing = admin.post("/api/v1/users/0e7bd1c6-0000-4000-8000-000000000000/password-reset",
                         json={"method": "random"})
    assert missing.status_code == 404
    assert platform.api().post(f"/api/v1/users/{user_id}/password-reset",
                               json={"method": "random"}).status_code == 401
