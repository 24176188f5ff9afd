"""Self-registration settings and the SMTP test mail, through the gateway (super admins only),
with a real SMTP server. The platform is shared: each test puts the settings back."""
import uuid

import pytest

from tests.harness import PASSWORD, eventually
from tests.integration.test_invitations import admin, invited, register as register_invited  # noqa: F401 - fixture

OPEN = {"self_registration": True, "allowed_email_domains": []}


def self_register(api, email):
    name = "r" + uuid.uuid4().hex[:10]
    return api.post("/api/v1/auth/register", json={"username": name, "first_name": "Reg", "last_name": "Istrant",
                                                    "email": email, "password": PASSWORD})


@pytest.fixture
def restored(admin):  # noqa: F811 - the fixture imported above
    yield admin
    assert admin.put("/api/v1/settings/registration", json=OPEN).status_code == 200


def test_registration_closed_and_domains_then_open_again(platform, mailbox, restored):
    admin, anonymous = restored, platform.api()
    assert admin.get("/api/v1/settings/registration").json() == OPEN  # the default: open to any domain
    assert anonymous.get("/api/v1/auth/registration").json() == OPEN

    closed = admin.put("/api/v1/settings/registration", json={"self_registration": False})
    assert closed.status_code == 200 and closed.json() == {"self_registration": False, "allowed_email_domains": []}
    assert anonymous.get("/api/v1/auth/registration").json()["self_registration"] is False
    refused = self_register(anonymous, f"{uuid.uuid4().hex[:8]}@example.com")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "registration_closed"
    # invitations still create accounts
    email = f"inv-{uuid.uuid4().hex[:8]}@example.com"
    _, token = invited(admin, mailbox, email)
    accepted = register_invited(anonymous, token, "i" + uuid.uuid4().hex[:10])
    assert accepted.status_code == 201 and accepted.json()["status"] == "active"

    limited = admin.put("/api/v1/settings/registration",
                        json={"self_registration": True, "allowed_email_domains": ["Allowed.Example"]})
    assert limited.json() == {"self_registration": True, "allowed_email_domains": ["allowed.example"]}
    outside = self_register(anonymous, f"{uuid.uuid4().hex[:8]}@elsewhere.example")
    assert outside.status_code == 422
    assert outside.json()["error"]["details"]["email"] == "must be an address of allowed.example"
    inside = self_register(anonymous, f"{uuid.uuid4().hex[:8]}@allowed.example")
    assert inside.status_code == 201, inside.text

    bad = admin.put("/api/v1/settings/registration", json={"self_registration": True,
                                                          "allowed_email_domains": ["not a domain"]})
    assert bad.status_code == 422 and "allowed_email_domains" in bad.json()["error"]["details"]["json"]
    def audited():  # events reach audit a moment later; they name fields, not values
        changes = admin.audit(action="settings_changed", resource_id="registration")
        return {tuple(change["data"]["fields"]) for change in changes} >= {
            ("self_registration",), ("self_registration", "allowed_email_domains")} and changes
    assert all("allowed.example" not in str(change["data"]) for change in eventually(audited, 20, 0.3, "audit"))


def test_only_super_admins_see_or_change_registration_and_send_test_mails(platform, admin):  # noqa: F811
    _, outsider = platform.create_user("ta" + uuid.uuid4().hex[:8], role="admin")  # a tenant admin
    anonymous = platform.api()
    for method, path, body in (("GET", "/api/v1/settings/registration", None),
                               ("PUT", "/api/v1/settings/registration", {"self_registration": False}),
                               ("POST", "/api/v1/settings/smtp/test", {"to": "x@example.com"})):
        assert anonymous.request(method, path, json=body).status_code == 401
        assert outsider.request(method, path, json=body).status_code == 403
    assert anonymous.get("/api/v1/auth/registration").json()["self_registration"] is True


def test_the_smtp_test_mail_arrives_or_says_why_not(platform, mailbox, admin):  # noqa: F811
    to = f"test-{uuid.uuid4().hex[:8]}@example.com"
    sent = admin.post("/api/v1/settings/smtp/test", json={"to": to})
    assert sent.status_code == 200 and sent.json() == {"sent": True, "to": to, "error": None}
    assert mailbox.wait_for(to)[0]["Subject"] == "Gatehouse test mail"
    assert admin.post("/api/v1/settings/smtp/test", json={"to": "nope"}).status_code == 422

    secret = "Sm7p-" + uuid.uuid4().hex
    mailbox.stop()
    try:
        assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(username="mailer", password=secret)
                         ).status_code == 200
        failed = admin.post("/api/v1/settings/smtp/test", json={"to": to})
        assert failed.status_code == 200 and failed.json()["sent"] is False
        assert failed.json()["error"] and secret not in failed.text
        def both_audited():  # events reach audit a moment later
            records = admin.audit(action="smtp_test_sent")
            seen = {(record["data"]["to"], record["data"]["sent"], record["outcome"]) for record in records}
            return seen >= {(to, True, "success"), (to, False, "failure")} and records
        assert secret not in str(eventually(both_audited, 20, 0.3, "smtp_test_sent records"))
    finally:
        mailbox.start()
        admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(password=""))
