"""Two-factor authentication through the gateway on a real platform: enrollment, the two-step
sign-in, replays, recovery codes, the lock of the second step, the enrollment-only token,
super admins' row actions and their refusals, and the policy "Require 2FA for super_admin".

Codes come from pyotp with the secret the enrollment answered. The server refuses a code of
a step it already accepted, so the Authenticator below hands out codes of ever later steps
(the current one or the next, which the server accepts too) and waits only when both are spent.
"""
from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from kombu import Connection, Queue, binding

from kernel.topology import events_exchange
from services.identity import events as identity_events
from tests.harness import ADMIN_USERNAME, PASSWORD, eventually

LOGIN, SECOND_FACTOR = "/api/v1/auth/login", "/api/v1/auth/login/second-factor"
MY_2FA = "/api/v1/me/2fa"
ENROLLMENT, CONFIRM = "/api/v1/me/2fa/enrollment", "/api/v1/me/2fa/enrollment/confirm"
RECOVERY_CODES = "/api/v1/me/2fa/recovery-codes"
POLICY = "/api/v1/settings/2fa-policy"
NEW_PASSWORD = "another quite long passphrase"


class Authenticator:
    """The user's authenticator app."""

    def __init__(self, secret: str):
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None
        self.last_code: str | None = None

    def code(self) -> str:
        """A code the server has not accepted yet: of the current step or the next."""
        current = self.totp.timecode(time.time())
        step = current if self.last_step is None else max(self.last_step + 1, current)
        while step > self.totp.timecode(time.time()) + 1:
            time.sleep(0.5)
        self.last_step, self.last_code = step, self.totp.generate_otp(step)
        return self.last_code

    def wrong_code(self) -> str:
        """A well-formed code that no step near now has."""
        near = {self.totp.at(time.time(), counter_offset=offset) for offset in range(-2, 3)}
        return next(code for code in ("000000", "111111", "222222", "333333") if code not in near)


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def enroll(api, password: str = PASSWORD) -> tuple[Authenticator, list[str]]:
    started = api.post(ENROLLMENT, json={"password": password})
    assert started.status_code == 200, started.text
    authenticator = Authenticator(started.json()["secret"])
    confirmed = api.post(CONFIRM, json={"code": authenticator.code()})
    assert confirmed.status_code == 200, confirmed.text
    return authenticator, confirmed.json()["recovery_codes"]


def password_step(platform, name: str, password: str = PASSWORD, api=None) -> dict:
    """The first sign-in step of an account with 2FA: a ticket, no tokens."""
    response = (api or platform.api()).post(LOGIN, json={"login": name, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["second_factor_required"] is True, body
    return body


def second_step(api, ticket: str, **factor):
    return api.post(SECOND_FACTOR, json={"login_ticket": ticket, **factor})


def sign_in(platform, name: str, **factor):
    """Both steps; the signed-in client."""
    api = platform.api()
    response = second_step(api, password_step(platform, name, api=api)["login_ticket"], **factor)
    assert response.status_code == 200, response.text
    return api.signed_in(response.json())


def audited(admin, action: str, user_id: str, **match) -> dict:
    """The audit record of `action` about the user whose data holds `match` (waits for it)."""
    def found():
        return [e for e in admin.audit(action=action, resource_id=user_id)
                if all(e["data"].get(key) == value for key, value in match.items())]
    return eventually(found, 20, 0.2, f"audit {action} of {user_id} with {match}")[0]


def refused_for_enrollment(api, method: str, path: str, **kwargs) -> bool:
    response = api.request(method, path, **kwargs)
    return response.status_code == 403 and response.json()["error"]["code"] == "2fa_enrollment_required"


class EventTap:
    """Identity's events of some types as the broker delivers them (to check their tenant_ids)."""

    def __init__(self, platform, *types: str):
        self.connection = Connection(platform.env["GATEHOUSE_AMQP_URI"], connect_timeout=10)
        self.queue = Queue(f"test.twofactor-tap.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True,
                           bindings=[binding(events_exchange("identity"), routing_key=t) for t in types])
        self.seen: list[dict] = []

    def __enter__(self) -> "EventTap":
        self.consumer = self.connection.Consumer(self.queue, callbacks=[self._collect], accept=["json"])
        self.consumer.consume()  # bound from here on: nothing published later is missed
        return self

    def __exit__(self, *exc_info):
        self.connection.release()

    def _collect(self, body, message):
        self.seen.append(json.loads(body) if isinstance(body, (str, bytes)) else body)
        message.ack()

    def event(self, type_: str, resource_id: str) -> dict:
        def found():
            try:
                self.connection.drain_events(timeout=0.2)
            except socket.timeout:
                pass
            return [e for e in self.seen if e["type"] == type_ and e["resource"]["id"] == resource_id]
        return eventually(found, 20, 0, f"event {type_} about {resource_id}")[0]


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


# --- enrollment and the two-step sign-in ------------------------------------------------------

def test_enrollment_shows_the_secret_once_and_a_code_of_it_turns_2fa_on(platform, admin, unique):
    user, api = platform.create_user(f"e{unique}")
    assert api.get(MY_2FA).json() == {
        "enrolled": False, "enrolled_at": None, "required": False, "required_by_policy": False,
        "enrollment_required": False, "enrollment_pending": False, "recovery_codes_left": 0,
        "second_factor_locked": False}

    # A session alone cannot plant a factor: the first enrollment needs the password.
    error_of(api.post(ENROLLMENT, json={}), 422, "proof_required")
    error_of(api.post(ENROLLMENT, json={"code": "123456"}), 422, "proof_required")
    wrong = error_of(api.post(ENROLLMENT, json={"password": "not the password!"}), 401, "invalid_credentials")
    assert wrong["details"] == {"password": "is not correct"}

    started = api.post(ENROLLMENT, json={"password": PASSWORD})
    assert started.status_code == 200, started.text
    body = started.json()
    uri = urlparse(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", f"/Gatehouse:{user['username']}")
    assert parse_qs(uri.query) == {"secret": [body["secret"]], "issuer": ["Gatehouse"]}
    assert (body["algorithm"], body["digits"], body["period"]) == ("SHA1", 6, 30)
    assert body["qr_svg"].startswith("<svg") and "</svg>" in body["qr_svg"]
    assert base64.b64decode(body["qr_png"]).startswith(b"\x89PNG")
    status = api.get(MY_2FA).json()
    assert status["enrollment_pending"] is True and status["enrolled"] is False

    authenticator = Authenticator(body["secret"])
    error_of(api.post(CONFIRM, json={"code": authenticator.wrong_code()}), 422, "invalid_code")
    assert api.get(MY_2FA).json()["enrolled"] is False
    confirmed = api.post(CONFIRM, json={"code": authenticator.code()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    error_of(api.post(CONFIRM, json={"code": authenticator.code()}), 409, "2fa_enrollment_not_started")

    status = api.get(MY_2FA).json()
    assert status["enrolled"] is True and status["recovery_codes_left"] == 10 and status["enrolled_at"]
    shown = admin.get(f"/api/v1/users/{user['id']}")
    assert shown.json()["totp_enrolled"] is True
    enrolled = audited(admin, "2fa_enrolled", user["id"], re_enrollment=False)
    assert enrolled["category"] == "auth" and enrolled["actor"]["user_id"] == user["id"]
    # The secret and the codes are nowhere but in the answers above.
    trail = json.dumps(admin.audit(resource_id=user["id"])) + shown.text
    assert body["secret"] not in trail and not any(code in trail for code in codes)


def test_sign_in_with_2fa_takes_a_ticket_then_a_code_each_code_works_once(platform, admin, unique):
    user, api = platform.create_user(f"s{unique}")
    authenticator, recovery_codes = enroll(api)
    sessions_before = api.get("/api/v1/me/sessions").json()["total"]

    client = platform.api()
    challenge = password_step(platform, user["username"], api=client)
    assert not {"access_token", "refresh_token", "session_id", "user"} & set(challenge)
    assert 0 < challenge["expires_in"] <= 300 and challenge["methods"] == ["totp", "recovery_code"]
    assert api.get("/api/v1/me/sessions").json()["total"] == sessions_before  # never a session
    audited(admin, "2fa_challenged", user["id"])

    # Exactly one factor per attempt.
    assert second_step(client, challenge["login_ticket"]).status_code == 422
    assert second_step(client, challenge["login_ticket"], code="123456", recovery_code="abcde-fghjk").status_code == 422

    code = authenticator.code()
    signed_in = second_step(client, challenge["login_ticket"], code=code)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["user"]["id"] == user["id"] and tokens["refresh_token"] and tokens["enrollment_required"] is False
    assert client.signed_in(tokens).get("/api/v1/me").status_code == 200
    audited(admin, "login_succeeded", user["id"], session_id=tokens["session_id"], second_factor="totp")

    # The ticket was spent; the code too, even within its 30-second window.
    error_of(second_step(client, challenge["login_ticket"], code="123456"), 401, "login_ticket_invalid")
    replay = password_step(platform, user["username"], api=client)["login_ticket"]
    error_of(second_step(client, replay, code=code), 401, "code_reused")
    audited(admin, "2fa_login_failed", user["id"], reason="code_reused", method="totp")
    # A refused code does not spend the ticket.
    assert second_step(client, replay, recovery_code=recovery_codes[0]).status_code == 200

    stranger = platform.api()
    error_of(second_step(stranger, "not-a-ticket", code="123456"), 401, "login_ticket_invalid")
    eventually(lambda: [e for e in admin.audit(action="2fa_login_failed")
                        if e["actor"]["ip"] == stranger.client_ip and e["data"]["reason"] == "ticket_invalid"],
               20, 0.2, "audit of an invalid ticket")


def test_a_recovery_code_works_once_and_running_low_is_audited(platform, admin, unique):
    user, api = platform.create_user(f"r{unique}")
    _, codes = enroll(api)

    typed = codes[0].upper().replace("-", " ")  # as someone may type it
    assert sign_in(platform, user["username"], recovery_code=typed).get("/api/v1/me").status_code == 200
    ticket = password_step(platform, user["username"])["login_ticket"]
    error_of(second_step(platform.api(), ticket, recovery_code=codes[0]), 401, "recovery_code_invalid")
    audited(admin, "2fa_recovery_used", user["id"], remaining=9)
    audited(admin, "login_succeeded", user["id"], second_factor="recovery_code")
    audited(admin, "2fa_login_failed", user["id"], reason="recovery_code_invalid", method="recovery_code")

    for code in codes[1:8]:
        sign_in(platform, user["username"], recovery_code=code)
    assert api.get(MY_2FA).json()["recovery_codes_left"] == 2
    low = audited(admin, "2fa_recovery_low", user["id"], remaining=2)
    assert low["category"] == "auth"
    assert not [e for e in admin.audit(action="2fa_recovery_low", resource_id=user["id"])
                if e["data"]["remaining"] >= 3]


def test_ten_wrong_codes_lock_the_second_step_until_an_admin_unlocks(platform, admin, unique):
    user, api = platform.create_user(f"k{unique}")
    authenticator, codes = enroll(api)
    client = platform.api()
    ticket = password_step(platform, user["username"], api=client)["login_ticket"]
    for _ in range(9):
        error_of(second_step(client, ticket, code=authenticator.wrong_code()), 401, "invalid_code")
    error_of(second_step(client, ticket, code=authenticator.wrong_code()), 403, "second_factor_locked")

    # Locked: the right code, a recovery code, and the password step itself are refused.
    next_code = authenticator.totp.at(time.time(), counter_offset=1)  # right, and never used
    error_of(second_step(client, ticket, code=next_code), 403, "second_factor_locked")
    error_of(second_step(client, ticket, recovery_code=codes[0]), 403, "second_factor_locked")
    error_of(client.post(LOGIN, json={"login": user["username"], "password": PASSWORD}), 403, "second_factor_locked")
    assert api.get(MY_2FA).json()["second_factor_locked"] is True
    audited(admin, "2fa_login_failed", user["id"], reason="invalid_code", failures=9, locked=False)
    audited(admin, "2fa_login_failed", user["id"], reason="invalid_code", failures=10, locked=True)
    audited(admin, "2fa_login_failed", user["id"], reason="locked", method=None)

    assert admin.post(f"/api/v1/users/{user['id']}/unlock").status_code == 204
    assert sign_in(platform, user["username"], code=authenticator.code()).get("/api/v1/me").status_code == 200
    assert api.get(MY_2FA).json()["second_factor_locked"] is False


# --- changing one's own 2FA -------------------------------------------------------------------

def test_replacing_the_factor_and_new_recovery_codes_need_the_password_or_a_code(platform, admin, unique):
    user, api = platform.create_user(f"c{unique}")
    old, old_codes = enroll(api)

    # A stolen session alone cannot replace the factor.
    error_of(api.post(ENROLLMENT, json={}), 422, "proof_required")
    error_of(api.post(ENROLLMENT, json={"password": "not the password!"}), 401, "invalid_credentials")
    error_of(api.post(ENROLLMENT, json={"code": old.wrong_code()}), 401, "invalid_code")
    restarted = api.post(ENROLLMENT, json={"code": old.code()})
    assert restarted.status_code == 200, restarted.text
    new = Authenticator(restarted.json()["secret"])
    assert api.get(MY_2FA).json()["enrolled"] is True  # the old factor holds until the confirmation
    confirmed = api.post(CONFIRM, json={"code": new.code()})
    assert confirmed.status_code == 200, confirmed.text
    new_codes = confirmed.json()["recovery_codes"]
    audited(admin, "2fa_enrolled", user["id"], re_enrollment=True)

    ticket = password_step(platform, user["username"])["login_ticket"]
    error_of(second_step(platform.api(), ticket, code=old.totp.now()), 401, "invalid_code")
    error_of(second_step(platform.api(), ticket, recovery_code=old_codes[0]), 401, "recovery_code_invalid")

    error_of(api.post(RECOVERY_CODES, json={}), 422, "proof_required")
    error_of(api.post(RECOVERY_CODES, json={"password": "not the password!"}), 401, "invalid_credentials")
    regenerated = api.post(RECOVERY_CODES, json={"password": PASSWORD})
    assert regenerated.status_code == 200, regenerated.text
    fresh = regenerated.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(new_codes)
    error_of(second_step(platform.api(), ticket, recovery_code=new_codes[0]), 401, "recovery_code_invalid")
    assert second_step(platform.api(), ticket, recovery_code=fresh[0]).status_code == 200
    audited(admin, "2fa_recovery_regenerated", user["id"], count=10)

    error_of(api.delete(MY_2FA, json={}), 422, "proof_required")
    error_of(api.delete(MY_2FA, json={"code": old.totp.now()}), 401, "invalid_code")
    assert api.delete(MY_2FA, json={"code": new.code()}).status_code == 204
    assert api.get(MY_2FA).json()["enrolled"] is False
    error_of(api.delete(MY_2FA, json={"password": PASSWORD}), 409, "2fa_not_enrolled")
    audited(admin, "2fa_disabled", user["id"], by="self")
    # Without 2FA the password alone signs in again.
    plain = platform.api().post(LOGIN, json={"login": user["username"], "password": PASSWORD})
    assert plain.status_code == 200 and plain.json()["access_token"]


# --- an administrator's requirement -----------------------------------------------------------

def test_a_required_user_can_do_nothing_but_enroll(platform, admin, unique):
    user, api = platform.create_user(f"q{unique}", role="viewer")
    uid = user["id"]
    eventually(lambda: admin.get("/api/v1/users", params={"q": user["username"]}).json()["items"][0]["role"]
               == "viewer", 20, 0.2, "the role read model")  # so the user's tenant is known to identity
    _, tenant_admin = platform.create_user(f"qa{unique}", role="admin")
    error_of(tenant_admin.post(f"/api/v1/users/{uid}/2fa/requirement"), 403, "permission_denied")

    with EventTap(platform, identity_events.TWO_FACTOR_REQUIRED_FOR_USER,
                  identity_events.TWO_FACTOR_REQUIREMENT_CLEARED) as tap:
        required = admin.post(f"/api/v1/users/{uid}/2fa/requirement")
        assert required.status_code == 200, required.text
        assert (required.json()["totp_required"], required.json()["totp_enrollment_required"]) == (True, True)
        error_of(admin.post(f"/api/v1/users/{uid}/2fa/requirement"), 409, "2fa_requirement_active")
        event = tap.event(identity_events.TWO_FACTOR_REQUIRED_FOR_USER, uid)
        assert event["category"] == "auth" and event["actor"]["username"] == ADMIN_USERNAME
        assert event["tenant_ids"] == ["default"]

        [row] = admin.get("/api/v1/users", params={"q": user["username"]}).json()["items"]
        assert (row["totp_enrolled"], row["totp_required"], row["totp_enrollment_required"]) == (False, True, True)

        # The session the user already had is held to enrollment at once, on every worker.
        eventually(lambda: all(refused_for_enrollment(api, "GET", "/api/v1/me/sessions",
                                                      headers={"Connection": "close"}) for _ in range(12)),
                   10, 0.1, "the existing session held to enrollment")

        # A new sign-in: tokens that can do nothing but enroll.
        signed_in = platform.api().post(LOGIN, json={"login": user["username"], "password": PASSWORD})
        assert signed_in.status_code == 200 and signed_in.json()["enrollment_required"] is True
        assert signed_in.json()["user"]["totp_enrollment_required"] is True
        enrolling = platform.api().signed_in(signed_in.json())
        for method, path, body in [("GET", "/api/v1/me/sessions", None), ("DELETE", "/api/v1/me/sessions", None),
                                   ("GET", "/api/v1/permissions", None), ("GET", "/api/v1/me/permissions", None),
                                   ("GET", f"/api/v1/users/{uid}", None), ("GET", "/api/v1/audit/events", None),
                                   ("POST", "/api/v1/me/password",
                                    {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
                                   ("POST", RECOVERY_CODES, {"password": PASSWORD}),
                                   ("DELETE", MY_2FA, {"password": PASSWORD})]:
            assert refused_for_enrollment(enrolling, method, path, json=body), (method, path)
        assert enrolling.get("/api/v1/me").json()["totp_enrollment_required"] is True
        assert enrolling.get(MY_2FA).json()["enrollment_required"] is True
        owing = platform.api().signed_in(platform.api().post(
            LOGIN, json={"login": user["username"], "password": PASSWORD}).json())
        assert owing.post("/api/v1/auth/logout").status_code == 204  # signing out is always allowed

        enroll(enrolling)
        assert enrolling.get("/api/v1/me/sessions").status_code == 200
        assert api.get("/api/v1/me/sessions").status_code == 200
        [row] = admin.get("/api/v1/users", params={"q": user["username"]}).json()["items"]
        assert (row["totp_enrolled"], row["totp_required"], row["totp_enrollment_required"]) == (True, True, False)

        # The requirement stands after enrollment: 2FA cannot be turned off while it does.
        error_of(admin.post(f"/api/v1/users/{uid}/2fa/requirement"), 409, "2fa_already_enrolled")
        error_of(enrolling.delete(MY_2FA, json={"password": PASSWORD}), 409, "2fa_required")
        assert admin.delete(f"/api/v1/users/{uid}/2fa/requirement").status_code == 204
        error_of(admin.delete(f"/api/v1/users/{uid}/2fa/requirement"), 409, "2fa_requirement_not_active")
        cleared = tap.event(identity_events.TWO_FACTOR_REQUIREMENT_CLEARED, uid)
        assert cleared["tenant_ids"] == ["default"] and cleared["category"] == "auth"
    assert enrolling.delete(MY_2FA, json={"password": PASSWORD}).status_code == 204

    record = audited(admin, "2fa_required_for_user", uid)
    assert record["category"] == "auth" and record["actor"]["username"] == ADMIN_USERNAME
    assert audited(admin, "2fa_requirement_cleared", uid)["resource"]["id"] == uid


def test_a_user_owing_enrollment_and_a_password_change_enrolls_first(platform, admin, unique):
    user, api = platform.create_user(f"b{unique}", must_change_password=True)
    assert admin.post(f"/api/v1/users/{user['id']}/2fa/requirement").status_code == 200
    error_of(api.post("/api/v1/me/password", json={"current_password": api.password, "new_password": NEW_PASSWORD}),
             403, "2fa_enrollment_required")
    enroll(api, password=api.password)
    error_of(api.get("/api/v1/me/sessions"), 403, "password_change_required")
    changed = api.post("/api/v1/me/password", json={"current_password": api.password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    assert api.get("/api/v1/me/sessions").status_code == 200


# --- super admins disable a user's 2FA ---------------------------------------------------------

def test_a_super_admin_disables_a_users_2fa_but_never_their_own(platform, admin, unique):
    user, api = platform.create_user(f"d{unique}", role="viewer")
    eventually(lambda: admin.get("/api/v1/users", params={"q": user["username"]}).json()["items"][0]["role"]
               == "viewer", 20, 0.2, "the role read model")
    error_of(admin.delete(f"/api/v1/users/{user['id']}/2fa"), 409, "2fa_not_enrolled")
    enroll(api)
    _, tenant_admin = platform.create_user(f"da{unique}", role="admin")
    error_of(tenant_admin.delete(f"/api/v1/users/{user['id']}/2fa"), 403, "permission_denied")

    chief, chief_api = platform.create_user(f"dc{unique}", role="super_admin")
    enroll(chief_api)
    error_of(chief_api.delete(f"/api/v1/users/{chief['id']}/2fa"), 409, "own_account")

    with EventTap(platform, identity_events.TWO_FACTOR_DISABLED) as tap:
        assert chief_api.delete(f"/api/v1/users/{user['id']}/2fa").status_code == 204
        event = tap.event(identity_events.TWO_FACTOR_DISABLED, user["id"])
    assert event["tenant_ids"] == ["default"] and event["actor"]["user_id"] == chief["id"]
    assert api.get(MY_2FA).json() | {"enrolled_at": None} == {
        "enrolled": False, "enrolled_at": None, "required": False, "required_by_policy": False,
        "enrollment_required": False, "enrollment_pending": False, "recovery_codes_left": 0,
        "second_factor_locked": False}
    record = audited(admin, "2fa_disabled", user["id"], by="admin")
    assert record["category"] == "auth" and record["actor"]["username"] == chief["username"]
    plain = platform.api().post(LOGIN, json={"login": user["username"], "password": PASSWORD})
    assert plain.status_code == 200 and plain.json()["access_token"]


# --- the policy "Require 2FA for super_admin" ----------------------------------------------------

def test_the_policy_holds_super_admins_without_totp_to_enrollment(platform, admin, unique):
    """rootadmin is a super admin without TOTP: while the policy is on it may do nothing but
    enroll. So a super admin with TOTP turns the policy on and off (in `finally`), and rootadmin
    is not used in between."""
    keeper, keeper_api = platform.create_user(f"pk{unique}", role="super_admin")
    enroll(keeper_api)
    enrolled_chief, enrolled_chief_api = platform.create_user(f"pe{unique}", role="super_admin")
    enroll(enrolled_chief_api)
    newcomer, newcomer_api = platform.create_user(f"pn{unique}", role="super_admin")
    _, plain_api = platform.create_user(f"pp{unique}", role="viewer")
    _, tenant_admin = platform.create_user(f"pa{unique}", role="admin")
    eventually(lambda: all(u["role"] for u in admin.get("/api/v1/users", params={"q": unique}).json()["items"]),
               20, 0.2, "the role read model")
    assert admin.get(POLICY).json() == {"require_for_super_admin": False}
    error_of(tenant_admin.get(POLICY), 403, "permission_denied")

    try:  # every change of the policy inside: whatever fails, `finally` turns it off again
        error_of(tenant_admin.put(POLICY, json={"require_for_super_admin": True}), 403, "permission_denied")
        for invalid in ("yes", 1, None):
            assert keeper_api.put(POLICY, json={"require_for_super_admin": invalid}).status_code == 422
        assert keeper_api.get(POLICY).json() == {"require_for_super_admin": False}
        turned_on = keeper_api.put(POLICY, json={"require_for_super_admin": True})
        assert turned_on.status_code == 200 and turned_on.json() == {"require_for_super_admin": True}

        # At once, on every worker: the super admin without TOTP can only enroll; others carry on.
        eventually(lambda: all(refused_for_enrollment(newcomer_api, "GET", "/api/v1/me/sessions",
                                                      headers={"Connection": "close"}) for _ in range(12)),
                   10, 0.1, "a super admin without TOTP held to enrollment")
        assert plain_api.get("/api/v1/me/sessions").status_code == 200
        assert keeper_api.get("/api/v1/me/sessions").status_code == 200
        signed_in = platform.api().post(LOGIN, json={"login": newcomer["username"], "password": PASSWORD})
        assert signed_in.json()["enrollment_required"] is True
        status = newcomer_api.get(MY_2FA).json()
        assert (status["required"], status["required_by_policy"], status["enrollment_required"]) == (False, True, True)
        rows = {u["username"]: u for u in keeper_api.get("/api/v1/users", params={"q": unique}).json()["items"]}
        assert rows[newcomer["username"]]["totp_required_by_policy"] is True
        assert rows[newcomer["username"]]["totp_enrollment_required"] is True
        assert rows[enrolled_chief["username"]]["totp_required_by_policy"] is True
        assert rows[enrolled_chief["username"]]["totp_enrollment_required"] is False
        assert rows[f"pp{unique}"]["totp_required_by_policy"] is False

        # Disabling would force a super admin straight back into enrollment: refused, by anyone.
        error_of(keeper_api.delete(f"/api/v1/users/{enrolled_chief['id']}/2fa"), 409, "2fa_required_by_policy")
        error_of(enrolled_chief_api.delete(MY_2FA, json={"password": PASSWORD}), 409, "2fa_required_by_policy")

        enroll(newcomer_api)
        assert newcomer_api.get("/api/v1/me/sessions").status_code == 200
    finally:
        turned_off = keeper_api.put(POLICY, json={"require_for_super_admin": False})
        assert turned_off.status_code == 200, turned_off.text

    assert admin.get("/api/v1/me/sessions").status_code == 200  # rootadmin is free again
    assert keeper_api.delete(f"/api/v1/users/{enrolled_chief['id']}/2fa").status_code == 204
    changes = eventually(lambda: [e for e in admin.audit(action="2fa_policy_changed")
                                  if e["actor"]["user_id"] == keeper["id"]], 20, 0.2, "policy audit")
    assert sorted(e["data"]["require_for_super_admin"] for e in changes) == [False, True]
    assert all(e["category"] == "settings" for e in changes)
