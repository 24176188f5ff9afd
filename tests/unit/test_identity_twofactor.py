"""Two-factor rules (services/identity/twofactor.py) and identity's 2FA queries on a real SQLite file."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from kernel import migrate
from kernel.crypto import SecretBox
from kernel.db import ServiceDatabase
from kernel.envelope import Actor
from services.identity import events, storage, storage_sessions, twofactor, views
from services.identity.models import LoginTicket, RecoveryCode, User, UserRole

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_800_000_015.0  # 15 s into a step
STEP = int(NOW // 30)
MOMENT = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc)


def code_at(step: int, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


# --- TOTP ---------------------------------------------------------------------------

def test_rfc6238_defaults_and_a_fresh_secret():
    secret = twofactor.new_secret()
    assert len(base64.b32decode(secret)) == 20  # 160 bits
    assert secret != twofactor.new_secret()
    totp = pyotp.TOTP(secret)
    assert (totp.digits, totp.interval, totp.digest().name) == (6, 30, "sha1")
    # RFC 6238 test vector (SHA-1, T = 59 s): 94287082, of which 6 digits are shown
    rfc_secret = base64.b32encode(b"12345678901234567890").decode()
    assert twofactor.matching_step(rfc_secret, "287082", 59) == 1


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_code_of_the_step_before_now_or_after_is_accepted_with_its_step(offset):
    assert twofactor.matching_step(SECRET, code_at(STEP + offset), NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_further_away_are_refused(offset):
    code = code_at(STEP + offset)
    if code not in {code_at(STEP + n) for n in (-1, 0, 1)}:  # a 1-in-10^6 collision is not a failure
        assert twofactor.matching_step(SECRET, code, NOW) is None


@pytest.mark.parametrize("typed", ["", None, "12345", "1234567", "abcdef", "12 34 5", "١٢٣٤٥٦"])
def test_malformed_codes_are_refused(typed):
    assert twofactor.matching_step(SECRET, typed, NOW) is None


def test_spaces_inside_a_code_are_ignored():
    code = code_at(STEP)
    assert twofactor.matching_step(SECRET, f" {code[:3]} {code[3:]} ", NOW) == STEP


def test_a_code_is_accepted_once_then_refused_as_reused():
    step, refusal = twofactor.check_code(SECRET, code_at(STEP), NOW, last_step=None)
    assert (step, refusal) == (STEP, None)
    assert twofactor.check_code(SECRET, code_at(STEP), NOW, last_step=step) == (None, twofactor.CODE_REUSED)
    # An earlier step's code is a replay too once a later one was used...
    assert twofactor.check_code(SECRET, code_at(STEP - 1), NOW, last_step=step) == (None, twofactor.CODE_REUSED)
    # ...the next step's code is fresh.
    assert twofactor.check_code(SECRET, code_at(STEP + 1), NOW, last_step=step) == (STEP + 1, None)


def test_a_wrong_code_is_invalid_not_reused():
    wrong = next(c for c in ("000000", "111111", "222222") if c not in {code_at(STEP + n) for n in (-1, 0, 1)})
    assert twofactor.check_code(SECRET, wrong, NOW, last_step=STEP + 5) == (None, twofactor.INVALID_CODE)


def test_the_otpauth_uri_names_issuer_and_account_and_the_qr_codes_render():
    uri = twofactor.provisioning_uri(SECRET, "alice")
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc, parsed.path) == ("otpauth", "totp", "/Gatehouse:alice")
    assert parse_qs(parsed.query) == {"secret": [SECRET], "issuer": ["Gatehouse"]}
    assert pyotp.parse_uri(uri).now() == pyotp.TOTP(SECRET).now()
    assert twofactor.qr_svg(uri).startswith("<svg")
    assert base64.b64decode(twofactor.qr_png_base64(uri)).startswith(b"\x89PNG\r\n\x1a\n")


# --- recovery codes ---------------------------------------------------------------------

def test_ten_distinct_recovery_codes_of_an_unambiguous_alphabet():
    codes = twofactor.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        first, second = code.split("-")
        assert len(first) == len(second) == 5
        assert not set(first + second) & set("01oli")
        assert set(first + second) <= set(twofactor.RECOVERY_ALPHABET)


def test_recovery_codes_are_normalized_as_typed():
    code = twofactor.new_recovery_codes(1)[0]
    stored = twofactor.normalize_recovery_code(code)
    assert stored == code.replace("-", "")
    for typed in (code.upper(), f"  {code} ", code.replace("-", " "), code.replace("-", "")):
        assert twofactor.normalize_recovery_code(typed) == stored


@pytest.mark.parametrize("typed", [None, "", "abcde", "abcde-fghjk-m", "0bcde-fghjk", "abcde_fghjk!"])
def test_what_cannot_be_a_recovery_code_is_refused(typed):
    assert twofactor.normalize_recovery_code(typed) is None


def test_fewer_than_three_left_is_low():
    assert [twofactor.recovery_codes_low(n) for n in (0, 2, 3, 10)] == [True, True, False, False]


# --- the second step's lock ---------------------------------------------------------------

def test_the_tenth_failure_in_a_row_locks_and_a_success_resets():
    state = twofactor.SecondFactorState()
    for _ in range(9):
        state = twofactor.after_failure(state, MOMENT)
    assert state.failures == 9 and not state.locked
    assert twofactor.after_success() == twofactor.SecondFactorState()
    locked = twofactor.after_failure(state, MOMENT)
    assert locked.locked and locked.locked_at == MOMENT
    # later failures keep the first lock time
    assert twofactor.after_failure(locked, MOMENT + timedelta(minutes=1)).locked_at == MOMENT


# --- enrollment and proof -----------------------------------------------------------------

def test_a_started_enrollment_expires_after_15_minutes():
    assert twofactor.enrollment_expired(None, MOMENT)
    assert not twofactor.enrollment_expired(MOMENT, MOMENT + timedelta(minutes=14))
    assert twofactor.enrollment_expired(MOMENT.replace(tzinfo=None), MOMENT + timedelta(minutes=15))


def test_a_first_enrollment_needs_the_password_a_change_the_password_or_a_code():
    assert "password" in twofactor.proof_problem(False, None, None)
    assert "password" in twofactor.proof_problem(False, None, "123456")  # no code exists yet
    assert twofactor.proof_problem(False, "pw", None) == {}
    assert "password" in twofactor.proof_problem(True, None, None)
    assert twofactor.proof_problem(True, None, "123456") == {}
    assert twofactor.proof_problem(True, "pw", None) == {}


# --- who must enroll, admin actions --------------------------------------------------------

@pytest.mark.parametrize("enrolled, required, policy, super_admin, must", [
    (False, False, False, False, False),
    (False, True, False, False, True),  # an administrator requires it
    (False, False, True, True, True),  # the policy, for a super admin
    (False, False, True, False, False),  # the policy spares others
    (False, False, False, True, False),  # no policy
    (True, True, True, True, False),  # enrolled: nothing owed
])
def test_must_enroll(enrolled, required, policy, super_admin, must):
    assert twofactor.must_enroll(enrolled, required, policy, super_admin) is must
    flags = twofactor.flags(enrolled, required, policy, super_admin)
    assert flags == {"totp_required_by_policy": policy and super_admin, "totp_enrollment_required": must}


def test_require_only_when_not_enrolled_and_not_yet_required():
    assert twofactor.require_problem(enrolled=False, required=False) is None
    assert twofactor.require_problem(enrolled=True, required=False) == "2fa_already_enrolled"
    assert twofactor.require_problem(enrolled=False, required=True) == "2fa_requirement_active"


def test_cancel_only_an_active_requirement():
    assert twofactor.cancel_problem(required=True) is None
    assert twofactor.cancel_problem(required=False) == "2fa_requirement_not_active"


@pytest.mark.parametrize("actor, enrolled, policy, super_admin, problem", [
    ("admin", True, False, False, None),
    ("admin", True, True, False, None),  # the policy spares users who are not super admins
    ("admin", True, False, True, None),  # and super admins while it is off
    ("admin", False, False, False, "2fa_not_enrolled"),
    ("target", True, False, False, "own_account"),
    ("admin", True, True, True, "2fa_required_by_policy"),
])
def test_admin_disable_refusals(actor, enrolled, policy, super_admin, problem):
    assert twofactor.admin_disable_problem(actor, "target", enrolled, policy, super_admin) == problem


def test_self_disable_refused_while_required():
    assert twofactor.self_disable_problem(True, False, False, False) is None
    assert twofactor.self_disable_problem(False, False, False, False) == "2fa_not_enrolled"
    assert twofactor.self_disable_problem(True, True, False, False) == "2fa_required"
    assert twofactor.self_disable_problem(True, False, True, True) == "2fa_required_by_policy"
    assert twofactor.self_disable_problem(True, True, True, True) == "2fa_required_by_policy"


def test_every_refusal_has_a_message():
    codes = {twofactor.ALREADY_ENROLLED, twofactor.NOT_ENROLLED, twofactor.REQUIREMENT_ACTIVE,
             twofactor.REQUIREMENT_NOT_ACTIVE, twofactor.REQUIRED_BY_POLICY, twofactor.REQUIRED_BY_ADMIN,
             twofactor.OWN_ACCOUNT}
    assert set(twofactor.REFUSALS) == codes


# --- events -------------------------------------------------------------------------------

def test_2fa_events_carry_no_secret_and_land_in_the_users_tenants():
    user = User(id="u1", username="alice", email="alice@example.com")
    actor = Actor(user_id="a1", username="root")
    made = [events.two_factor_enrolled(user, actor, re_enrollment=False),
            events.two_factor_disabled(user, actor, by="admin"),
            events.two_factor_login_failed(user, actor, "invalid_code", "totp", failures=3),
            events.two_factor_recovery_used(user, actor, remaining=2),
            events.two_factor_recovery_low(user, actor, remaining=2),
            events.two_factor_recovery_regenerated(user, actor, count=10),
            events.two_factor_required_for_user(user, actor),
            events.two_factor_requirement_cleared(user, actor),
            events.two_factor_challenged(user, actor, twofactor.METHODS)]
    assert {e.type for e in made} <= set(events.ALL)
    assert all(e.category == "auth" and e.resource.id == "u1" for e in made)
    placed = events.in_tenants(("default", "acme"), *made)
    assert all(e.tenant_ids == ("default", "acme") for e in placed)
    assert events.in_tenants(("acme", "default"), *placed)[0].tenant_ids == ("default", "acme")


def test_the_cache_relevant_2fa_events_are_declared():
    assert {events.TWO_FACTOR_ENROLLED, events.TWO_FACTOR_DISABLED, events.TWO_FACTOR_REQUIRED_FOR_USER,
            events.TWO_FACTOR_REQUIREMENT_CLEARED} <= set(events.ACCESS_CHANGING)
    assert events.EVERYONE_CHANGING == (events.TWO_FACTOR_POLICY_CHANGED,)


def test_recovery_code_digests_are_keyed():
    code = twofactor.normalize_recovery_code(twofactor.new_recovery_codes(1)[0])
    one, other = SecretBox("key one"), SecretBox("key two")
    assert one.keyed_digest(code) == SecretBox("key one").keyed_digest(code)
    assert one.keyed_digest(code) != other.keyed_digest(code)
    assert len(one.keyed_digest(code)) == 64 and code not in one.keyed_digest(code)


# --- storage: identity's 2FA queries on the migrated schema ---------------------------------

@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    migrate.upgrade("identity", url)
    database = ServiceDatabase("identity", url, storage.metadata)
    yield database
    database.dispose()


def add_user(session, name, **fields) -> User:
    user = User(username=name, email=f"{name}@example.com", status="active", created_at=MOMENT, **fields)
    session.add(user)
    session.flush()
    return user


def test_tenants_of_and_super_admins_come_from_the_role_read_model(db):
    with db.unit_of_work() as uow:
        alice, bob = add_user(uow.session, "alice"), add_user(uow.session, "bob")
        uow.session.add_all([UserRole(user_id=alice.id, tenant_id="t-b", role="viewer", as_of="1"),
                             UserRole(user_id=alice.id, tenant_id="t-a", role="super_admin", as_of="1"),
                             UserRole(user_id=alice.id, tenant_id="t-c", role=None, as_of="1"),  # unassigned
                             UserRole(user_id=bob.id, tenant_id="t-a", role="admin", as_of="1")])
        uow.commit()
        assert storage.tenants_of(uow.session, alice.id) == ("t-a", "t-b")
        assert storage.tenants_of(uow.session, "nobody") == ()
        assert storage.super_admin_ids(uow.session, [alice.id, bob.id]) == {alice.id}
        assert storage.is_super_admin(uow.session, alice.id) and not storage.is_super_admin(uow.session, bob.id)


def test_the_policy_shows_in_the_flags_of_super_admins_only(db):
    with db.unit_of_work() as uow:
        root, plain = add_user(uow.session, "root"), add_user(uow.session, "plain", totp_required=True)
        uow.session.add(UserRole(user_id=root.id, tenant_id="default", role="super_admin", as_of="1"))
        assert storage.two_factor_flags(uow.session, [root, plain]) == {
            root.id: {"totp_required_by_policy": False, "totp_enrollment_required": False},
            plain.id: {"totp_required_by_policy": False, "totp_enrollment_required": True}}
        storage.write_setting(uow.session, storage.TWO_FACTOR_POLICY, {"require_for_super_admin": True}, None)
        assert storage.two_factor_policy_on(uow.session)
        assert views.signed_in_user(uow.session, root)["totp_enrollment_required"] is True
        listed = views.admin_users(uow.session, [(root, "super_admin"), (plain, None)])
        assert [(u["username"], u["role"], u["totp_required_by_policy"]) for u in listed] == [
            ("root", "super_admin", True), ("plain", None, False)]


def test_a_recovery_code_is_spent_once_and_replacing_kills_the_old_ones(db):
    with db.unit_of_work() as uow:
        user = add_user(uow.session, "carol")
        storage_sessions.replace_recovery_codes(uow.session, user.id, ["d1", "d2", "d3"], MOMENT)
        assert storage_sessions.recovery_codes_left(uow.session, user.id) == 3
        assert storage_sessions.use_recovery_code(uow.session, user.id, "d2", MOMENT)
        assert not storage_sessions.use_recovery_code(uow.session, user.id, "d2", MOMENT)
        assert not storage_sessions.use_recovery_code(uow.session, "someone else", "d1", MOMENT)
        assert storage_sessions.recovery_codes_left(uow.session, user.id) == 2
        storage_sessions.replace_recovery_codes(uow.session, user.id, ["n1"], MOMENT)
        assert not storage_sessions.use_recovery_code(uow.session, user.id, "d1", MOMENT)
        assert storage_sessions.recovery_codes_left(uow.session, user.id) == 1


def test_a_step_is_remembered_only_forward(db):
    with db.unit_of_work() as uow:
        user = add_user(uow.session, "dave")
        assert storage_sessions.remember_step(uow.session, user.id, 100)
        assert not storage_sessions.remember_step(uow.session, user.id, 100)
        assert not storage_sessions.remember_step(uow.session, user.id, 99)
        assert storage_sessions.remember_step(uow.session, user.id, 101)


def test_login_tickets_are_single_use_and_old_ones_are_swept(db):
    with db.unit_of_work() as uow:
        user = add_user(uow.session, "erin")
        storage_sessions.add_login_ticket(uow.session, user.id, "t1", MOMENT, MOMENT + timedelta(minutes=5))
        storage_sessions.add_login_ticket(uow.session, user.id, "t2", MOMENT, MOMENT + timedelta(minutes=5))
        assert storage_sessions.use_login_ticket(uow.session, "t1", MOMENT)
        assert not storage_sessions.use_login_ticket(uow.session, "t1", MOMENT)
        later = MOMENT + timedelta(minutes=6)
        storage_sessions.add_login_ticket(uow.session, user.id, "t3", later, later + timedelta(minutes=5))
        uow.session.flush()
        assert {t.digest for t in uow.session.query(LoginTicket)} == {"t3"}  # t1 used, t2 expired


def test_removing_2fa_leaves_nothing_to_sign_in_with_but_keeps_the_requirement(db):
    with db.unit_of_work() as uow:
        user = add_user(uow.session, "frank", totp_enrolled=True, totp_required=True, totp_secret="sealed",
                        totp_last_step=5, second_factor_failures=10, second_factor_locked_at=MOMENT)
        storage_sessions.replace_recovery_codes(uow.session, user.id, ["d1"], MOMENT)
        storage_sessions.add_login_ticket(uow.session, user.id, "t1", MOMENT, MOMENT + timedelta(minutes=5))
        storage_sessions.remove_two_factor(uow.session, user)
        uow.session.flush()
        assert (user.totp_enrolled, user.totp_secret, user.totp_last_step, user.second_factor_locked_at) == (
            False, None, None, None)
        assert user.totp_required is True
        assert uow.session.query(RecoveryCode).count() == 0 and uow.session.query(LoginTicket).count() == 0


def test_time_steps_fit_the_column_for_centuries():
    assert pyotp.TOTP(SECRET).timecode(time.time() + 100 * 365 * 86400) < 2**31
