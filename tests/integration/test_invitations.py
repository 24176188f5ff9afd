"""Invitations by email and the settings they need, through the gateway, with a real SMTP server."""
import json
import threading

import pytest

from ops.broker import free_port
from tests.harness import PASSWORD, eventually
from tests.mailbox import Mailbox


@pytest.fixture
def admin(platform, mailbox):
    """The super admin, with SMTP pointing at the test mailbox."""
    admin = platform.admin()
    response = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings())
    assert response.status_code == 200, response.text
    return admin


def invite(admin, emails, role="viewer"):
    return admin.post("/api/v1/invitations", json={"emails": emails, "role": role})


def invited(admin, mailbox, email, role="viewer"):
    """Invites one address; returns (invitation, token from the mail)."""
    response = invite(admin, email, role)
    assert response.status_code == 201, response.text
    [invitation] = response.json()["items"]
    return invitation, Mailbox.link(mailbox.wait_for(email)[0])[1]


def register(api, token, name, **extra):
    return api.post("/api/v1/auth/register", json={
        "invitation_token": token, "username": name, "first_name": "Ivy", "last_name": "Invited",
        "password": PASSWORD, **extra})


def audit_text(admin):
    return json.dumps(admin.audit())


def logs_text(platform):
    return "".join(path.read_text(errors="replace") for path in (platform.base_dir / "logs").glob("*.log"))


def test_smtp_settings_keep_the_password_to_themselves(platform, mailbox, admin):
    secret = "smtp-Pass-7d1e"
    response = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(username="mailer", password=secret))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["configured"] and shown["password_set"] and shown["username"] == "mailer"
    assert "password" not in shown and secret not in response.text
    kept = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(username="mailer"))
    assert kept.json()["password_set"] is True  # no password given: the stored one stays
    got = admin.get("/api/v1/settings/smtp")
    assert got.status_code == 200 and got.json() == kept.json() and secret not in got.text

    def password_change_audited():
        return [e for e in admin.audit(action="settings_changed")
                if e["resource"]["id"] == "smtp" and "password" in e["data"]["fields"]]
    eventually(password_change_audited, 20, message="settings_changed naming the password")
    assert secret not in audit_text(admin)
    cleared = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(password=""))
    assert cleared.json()["password_set"] is False and cleared.json()["username"] is None


def test_smtp_settings_are_validated_and_guarded(platform, mailbox, admin):
    bad = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(tls_mode="ssl", port=0))
    assert bad.status_code == 422
    assert {"tls_mode", "port"} <= set(bad.json()["error"]["details"]["json"])
    wrong_host = admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(host="not a host"))
    assert wrong_host.status_code == 422 and "host" in wrong_host.json()["error"]["details"]["json"]
    assert platform.api().get("/api/v1/settings/smtp").status_code == 401
    assert platform.api().put("/api/v1/settings/password-policy", json={}).status_code == 401


def test_password_policy_settings_apply_to_registration(platform, admin, unique):
    try:
        response = admin.put("/api/v1/settings/password-policy", json={"min_length": 20})
        assert response.status_code == 200, response.text
        assert response.json() == {"min_length": 20, "max_length": 128, "refuse_common": True}
        assert admin.get("/api/v1/settings/password-policy").json()["min_length"] == 20
        name = f"pol{unique}"
        refused = platform.api().post("/api/v1/auth/register", json={
            "username": name, "first_name": "Po", "last_name": "Licy", "email": f"{name}@example.com",
            "password": "nineteen characters"})
        assert refused.status_code == 422
        assert "at least 20 characters" in refused.json()["error"]["details"]["password"]
        crossed = admin.put("/api/v1/settings/password-policy", json={"min_length": 30, "max_length": 20})
        assert crossed.status_code == 422 and "max_length" in crossed.json()["error"]["details"]["json"]
        assert admin.put("/api/v1/settings/password-policy", json={"min_length": 7}).status_code == 422
        eventually(lambda: [e for e in admin.audit(action="settings_changed")
                            if e["resource"]["id"] == "password_policy" and e["data"]["fields"] == ["min_length"]],
                   20, message="settings_changed of the policy")
    finally:
        assert admin.put("/api/v1/settings/password-policy", json={}).status_code == 200


def test_an_invited_user_registers_through_the_mailed_link(platform, mailbox, admin, unique):
    email = f"ivy{unique}@example.com"
    response = invite(admin, email, role="admin")
    assert response.status_code == 201, response.text
    [invitation] = response.json()["items"]
    assert response.headers["Location"] == f"/api/v1/invitations/{invitation['id']}"
    assert invitation["status"] == "pending" and invitation["email"] == email and invitation["role"] == "admin"
    assert not {"token", "token_hash"} & set(invitation)
    placeholder = admin.get(f"/api/v1/users/{invitation['user_id']}").json()
    assert placeholder["status"] == "invited" and placeholder["email"] == email

    [message] = mailbox.wait_for(email)
    assert message["Subject"] == "You are invited to Gatehouse"
    link, token = Mailbox.link(message)
    assert link == f"{platform.url}/invite#token={token}"  # GATEHOUSE_PUBLIC_URL follows the port
    anonymous = platform.api()
    preview = anonymous.post("/api/v1/invitations/preview", json={"token": token})
    assert preview.status_code == 200
    assert preview.json() == {"email": email, "role": "admin", "expires_at": invitation["expires_at"]}

    wrong_email = register(anonymous, token, f"ivy{unique}", email=f"other{unique}@example.com")
    assert wrong_email.status_code == 422 and "email" in wrong_email.json()["error"]["details"]
    registered = register(anonymous, token, f"ivy{unique}")
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert user["status"] == "active" and user["email"] == email and user["id"] == invitation["user_id"]
    again = register(anonymous, token, f"ivy2{unique}")
    assert again.status_code == 410 and again.json()["error"]["code"] == "invitation_used"
    assert anonymous.post("/api/v1/invitations/preview", json={"token": token}).status_code == 410

    ivy = anonymous.login(f"ivy{unique}", PASSWORD)
    # The invited role is granted by rbac on invitation_accepted: the admin role opens user administration.
    eventually(lambda: ivy.get(f"/api/v1/users/{user['id']}").status_code == 200, 20, message="invited role")
    accepted = admin.get(f"/api/v1/invitations/{invitation['id']}").json()
    assert accepted["status"] == "accepted" and accepted["accepted_at"] and accepted["sent_at"]
    eventually(lambda: admin.audit(action="invitation_accepted", resource_id=invitation["id"]), 20,
               message="invitation_accepted audited")
    assert token not in audit_text(admin)
    assert token not in logs_text(platform)


def test_two_concurrent_acceptances_have_one_winner(platform, mailbox, admin, unique):
    _, token = invited(admin, mailbox, f"duo{unique}@example.com")
    answers = []

    def accept(name):
        answers.append(register(platform.api(), token, name).status_code)

    threads = [threading.Thread(target=accept, args=(f"duo{n}{unique}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 410]


def test_malformed_and_taken_addresses_are_named_each_and_nothing_is_sent(platform, mailbox, admin, unique):
    fresh = f"fresh{unique}@example.com"
    malformed = invite(admin, f"{fresh}, nope, two@@ats.com")
    assert malformed.status_code == 422
    error = malformed.json()["error"]
    assert error["code"] == "invalid_emails" and set(error["details"]) == {"nope", "two@@ats.com"}

    registered = f"reg{unique}@example.com"
    assert platform.api().post("/api/v1/auth/register", json={
        "username": f"reg{unique}", "first_name": "Reg", "last_name": "Istered", "email": registered,
        "password": PASSWORD}).status_code == 201
    pending = f"pending{unique}@example.com"
    assert invite(admin, pending).status_code == 201
    taken = invite(admin, [registered.upper(), pending, fresh])
    assert taken.status_code == 409
    error = taken.json()["error"]
    assert error["code"] == "email_taken"
    assert error["details"] == {registered: "is already registered", pending: "has a pending invitation"}
    listed = admin.get("/api/v1/invitations", params={"status": "pending", "limit": 200}).json()
    assert fresh not in [item["email"] for item in listed["items"]]  # all or nothing
    assert listed["total"] >= 1 and "next_cursor" in listed


def test_the_role_is_checked_by_rbac(platform, admin, unique):
    response = invite(admin, f"role{unique}@example.com", role="emperor")
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_role"


def test_invitations_need_smtp_configured(platform, mailbox, admin, unique):
    try:
        assert admin.delete("/api/v1/settings/smtp").status_code == 204
        assert admin.get("/api/v1/settings/smtp").json()["configured"] is False
        refused = invite(admin, f"nosmtp{unique}@example.com")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "smtp_not_configured"
        assert "PUT /api/v1/settings/smtp" in refused.json()["error"]["message"]
    finally:
        assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    assert invite(admin, f"nosmtp{unique}@example.com").status_code == 201


def test_resend_replaces_the_link(platform, mailbox, admin, unique):
    email = f"again{unique}@example.com"
    invitation, first_token = invited(admin, mailbox, email)
    resent = admin.post(f"/api/v1/invitations/{invitation['id']}/resend")
    assert resent.status_code == 200 and resent.json()["status"] == "pending"
    second_token = Mailbox.link(mailbox.wait_for(email, count=2)[1])[1]
    assert second_token != first_token
    anonymous = platform.api()
    old = anonymous.post("/api/v1/invitations/preview", json={"token": first_token})
    assert old.status_code == 404 and old.json()["error"]["code"] == "invitation_not_found"
    assert anonymous.post("/api/v1/invitations/preview", json={"token": second_token}).status_code == 200
    assert register(anonymous, first_token, f"again{unique}").status_code == 404
    assert register(anonymous, second_token, f"again{unique}").status_code == 201


def test_revoking_removes_the_placeholder_and_kills_the_link(platform, mailbox, admin, unique):
    invitation, token = invited(admin, mailbox, f"gone{unique}@example.com")
    assert admin.delete(f"/api/v1/invitations/{invitation['id']}").status_code == 204
    assert admin.get(f"/api/v1/invitations/{invitation['id']}").json()["status"] == "revoked"
    assert admin.get(f"/api/v1/users/{invitation['user_id']}").status_code == 404
    refused = platform.api().post("/api/v1/invitations/preview", json={"token": token})
    assert refused.status_code == 410 and refused.json()["error"]["code"] == "invitation_used"
    again = admin.delete(f"/api/v1/invitations/{invitation['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_not_pending"
    eventually(lambda: admin.audit(action="invitation_revoked", resource_id=invitation["id"]), 20,
               message="invitation_revoked audited")
    assert invite(admin, f"gone{unique}@example.com").status_code == 201  # the address is free again


def test_an_expired_link_is_refused_and_swept(platform, mailbox, admin, unique):
    invitation, token = invited(admin, mailbox, f"late{unique}@example.com")
    platform.sql("identity", "UPDATE identity_invitations SET expires_at = '2000-01-01 00:00:00' WHERE id = :id",
                 id=invitation["id"])
    refused = platform.api().post("/api/v1/invitations/preview", json={"token": token})
    assert refused.status_code == 410 and refused.json()["error"]["code"] == "invitation_expired"
    assert register(platform.api(), token, f"late{unique}").status_code == 410
    eventually(lambda: admin.get(f"/api/v1/invitations/{invitation['id']}").json()["status"] == "expired", 20,
               message="the sweep expiring the invitation")
    assert admin.get(f"/api/v1/users/{invitation['user_id']}").status_code == 404


def test_a_mail_that_failed_is_delivered_after_a_restart(platform, mailbox, admin, unique):
    email = f"retry{unique}@example.com"
    try:
        closed_port = free_port()  # nothing listens there
        assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(port=closed_port)).status_code == 200
        response = invite(admin, email)
        assert response.status_code == 201
        [invitation] = response.json()["items"]
        eventually(lambda: [e for e in admin.audit(action="mail_failed") if e["data"]["ref_id"] == invitation["id"]],
                   30, message="a failed delivery audited")
        platform.restart("identity")
        platform.wait_ready()
    finally:
        assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    [message] = mailbox.wait_for(email, timeout=60)
    token = Mailbox.link(message)[1]
    assert platform.api().post("/api/v1/invitations/preview", json={"token": token}).status_code == 200
    assert token not in audit_text(admin)
