"""Addresses with an internationalized domain, through the gateway: stored in ASCII (IDNA) form as
the LDAP directory holds them, and found typed in either form at sign-in and for a reset."""
import pytest

from tests.harness import PASSWORD, register


@pytest.fixture
def admin(platform, mailbox):
    admin = platform.admin()
    assert admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    return admin


def registered(platform, admin, name) -> dict:
    """An active user who registered with `name`@exämple.com."""
    response = register(platform.api(), name, email=f"{name}@exämple.com")
    assert response.status_code == 201, response.text
    approved = admin.patch(f"/api/v1/users/{response.json()['id']}", json={"status": "active"})
    assert approved.status_code == 200, approved.text
    return approved.json()


def test_an_idn_address_signs_in_and_asks_for_a_reset_typed_in_either_form(platform, mailbox, admin, unique):
    first, second = registered(platform, admin, f"idna{unique}"), registered(platform, admin, f"idnb{unique}")
    assert first["email"] == f"idna{unique}@xn--exmple-cua.com"
    anonymous = platform.api()
    for typed in (f"idna{unique}@exämple.com", f"IDNA{unique}@EXÄMPLE.com", f"idna{unique}@xn--exmple-cua.com"):
        signed_in = anonymous.post("/api/v1/auth/login", json={"login": typed, "password": PASSWORD})
        assert signed_in.status_code == 200, (typed, signed_in.text)
    wrong = anonymous.post("/api/v1/auth/login", json={"login": f"idna{unique}@example.com", "password": PASSWORD})
    assert wrong.status_code == 401

    for user, typed in ((first, f"idna{unique}@exämple.com"), (second, f"idnb{unique}@xn--exmple-cua.com")):
        asked = anonymous.post("/api/v1/auth/password-reset", json={"email": typed})
        assert asked.status_code == 202, asked.text
        [message] = mailbox.wait_for(user["email"])
        assert message["Subject"] == "Reset your Gatehouse password"

    # the form that sends the whole profile back changes nothing and is not refused
    unchanged = admin.patch(f"/api/v1/users/{first['id']}", json={"email": first["email"], "first_name": "Idn"})
    assert unchanged.status_code == 200 and unchanged.json()["email"] == first["email"]
