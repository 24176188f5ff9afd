"""Rate limits of the endpoints that send mail or create accounts (issue 9), on a platform of
their own with small limits (the shared platform raises them out of the way of other tests)."""
import sqlite3
import uuid

import pytest

from tests.harness import Platform, eventually, register

LIMITS = {
    "GATEHOUSE_RESET_REQUESTS_PER_IP": "3",
    "GATEHOUSE_RESET_MAILS_PER_ACCOUNT": "1",
    "GATEHOUSE_ADMIN_RESETS_PER_USER": "1",
    "GATEHOUSE_ADMIN_RESETS_PER_ADMIN": "2",
    "GATEHOUSE_INVITATIONS_PER_ADMIN": "3",
    "GATEHOUSE_INVITATION_RESENDS_PER_ADDRESS": "1",
    "GATEHOUSE_REGISTRATIONS_PER_IP": "2",
}
ACCEPTED = {"message": "If an active account has this address, a reset link is on its way."}


@pytest.fixture(scope="module")
def limited(rabbit, tmp_path_factory, mailbox):
    amqp_uri = rabbit.add_vhost(f"limits-{uuid.uuid4().hex[:8]}")
    running = Platform(tmp_path_factory.mktemp("limits"), amqp_uri, extra_env=LIMITS)
    try:
        running.start()
        assert running.admin().put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
        yield running
    finally:
        running.stop()


def assert_limited(response, limit):
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == limit, error
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    # the service's int arrives as an int, through RPC and the gateway (not nameko's text "60")
    assert type(error["details"]["retry_after"]) is int
    assert error["details"]["retry_after"] == int(response.headers["Retry-After"])


def audited(platform, limit, check=lambda event: True):
    admin = platform.admin()

    def found():
        return [e for e in admin.audit(action="rate_limited") if e["data"]["limit"] == limit and check(e)]
    return eventually(found, 20, message=f"rate_limited {limit} audited")


def mail_jobs(platform, recipient) -> int:
    with sqlite3.connect(platform.base_dir / "data" / "identity.db", timeout=10) as db:
        return db.execute("SELECT count(*) FROM identity_mail_jobs WHERE recipient = ?", (recipient,)).fetchone()[0]


def reset(api, email):
    return api.post("/api/v1/auth/password-reset", json={"email": email})


def test_reset_requests_are_limited_per_client_address(limited, unique):
    api = limited.api()
    for n in range(3):
        assert reset(api, f"nobody{n}{unique}@example.com").json() == ACCEPTED
    assert_limited(reset(api, f"nobody{unique}@example.com"), "reset_requests_per_ip")
    assert reset(limited.api(), f"nobody{unique}@example.com").status_code == 202  # another address is not
    assert_limited(reset(api, f"nobody{unique}@example.com"), "reset_requests_per_ip")  # refused again
    [event] = audited(limited, "reset_requests_per_ip", lambda e: e["actor"]["ip"] == api.client_ip)
    assert event["outcome"] == "failure" and event["data"]["retry_after"] >= 1  # one record per window, not two


def test_reset_mails_beyond_the_accounts_limit_are_not_sent_and_the_answer_stays_the_same(limited, mailbox, unique):
    user, _ = limited.create_user(f"rl{unique}")
    assert reset(limited.api(), user["email"]).json() == ACCEPTED
    mailbox.wait_for(user["email"])
    again = reset(limited.api(), user["email"])  # from another address: the account's limit, not the address's
    assert again.status_code == 202 and again.json() == ACCEPTED
    [event] = eventually(lambda: [e for e in limited.admin().audit(action="rate_limited", resource_id=user["id"])],
                         20, message="reset mail refusal audited")
    assert event["data"]["limit"] == "reset_mails_per_account" and "no mail" in event["data"]["reason"]
    assert mail_jobs(limited, user["email"]) == 1


def test_admin_reset_mails_are_limited_per_user_and_per_admin(limited, unique):
    admin = limited.admin()
    users = [limited.create_user(f"ra{n}{unique}")[0] for n in range(3)]

    def email_reset(user):
        return admin.post(f"/api/v1/users/{user['id']}/password-reset", json={"method": "email"})

    assert email_reset(users[0]).status_code == 202
    assert_limited(email_reset(users[0]), "admin_resets_per_user")
    assert admin.post(f"/api/v1/users/{users[0]['id']}/password-reset",
                      json={"method": "random"}).status_code == 200  # no mail, no limit
    assert email_reset(users[1]).status_code == 202  # the refusal above did not count
    assert_limited(email_reset(users[2]), "admin_resets_per_admin")
    assert mail_jobs(limited, users[2]["email"]) == 0
    audited(limited, "admin_resets_per_admin", lambda e: e["resource"]["id"] == users[2]["id"])


def test_invitation_mails_are_limited_per_admin_and_resends_per_address(limited, unique):
    # A fresh admin of its own: its count starts at zero whatever other tests did.
    _, admin = limited.create_user(f"ri{unique}", role="admin")
    first = admin.post("/api/v1/invitations", json={"emails": [f"i0{unique}@example.com"], "role": "viewer"})
    assert first.status_code == 201, first.text
    invitation_id = first.json()["items"][0]["id"]
    assert admin.post(f"/api/v1/invitations/{invitation_id}/resend").status_code == 200  # 2 mails by the admin
    assert_limited(admin.post(f"/api/v1/invitations/{invitation_id}/resend"), "invitation_resends_per_address")

    batch = [f"i1{unique}@example.com", f"i2{unique}@example.com"]
    assert_limited(admin.post("/api/v1/invitations", json={"emails": batch, "role": "viewer"}),
                   "invitations_per_admin")  # 2 + 2 > 3: none of the batch is invited
    listed = admin.get("/api/v1/invitations", params={"limit": 200}).json()["items"]
    assert not {i["email"] for i in listed} & set(batch)
    assert admin.post("/api/v1/invitations", json={"emails": batch[:1], "role": "viewer"}).status_code == 201
    assert_limited(admin.post(f"/api/v1/invitations/{invitation_id}/resend"), "invitations_per_admin")
    audited(limited, "invitation_resends_per_address", lambda e: e["resource"]["id"] == invitation_id)


def test_a_batch_over_the_admins_whole_limit_is_refused_as_invalid_not_told_to_wait(limited, unique):
    _, admin = limited.create_user(f"rb{unique}", role="admin")
    batch = [f"b{n}{unique}@example.com" for n in range(4)]  # the limit is 3 per window
    answer = admin.post("/api/v1/invitations", json={"emails": batch, "role": "viewer"})
    assert answer.status_code == 422, answer.text
    assert "Retry-After" not in answer.headers
    assert answer.json()["error"]["details"] == {"emails": "at most 3 addresses"}
    assert admin.post("/api/v1/invitations", json={"emails": batch[:3], "role": "viewer"}).status_code == 201


def test_self_registrations_are_limited_per_client_address(limited, unique):
    api = limited.api()
    assert register(api, f"rg0{unique}").status_code == 201
    # Refused by identity's password policy (12), past the gateway's floor (8): a refused attempt counts too.
    assert register(api, f"rg1{unique}", password="tenchars!!").status_code == 422
    assert_limited(register(api, f"rg2{unique}"), "registrations_per_ip")
    assert register(limited.api(), f"rg3{unique}").status_code == 201
    audited(limited, "registrations_per_ip", lambda e: e["actor"]["ip"] == api.client_ip)
