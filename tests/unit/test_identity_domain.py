"""Identity rules: usernames, emails, password policy, hashing and login decisions."""
from __future__ import annotations

import pytest

from services.identity import domain
from services.identity.domain import (
    ACTIVE, INVITED, PENDING, SUSPENDED, PasswordPolicy, hash_password, loggable_login, login_refusal, normalize_email,
    password_problems, registration_problems, username_problem, verify_password,
)

POLICY = PasswordPolicy()
GOOD_PASSWORD = "violet kettle harbour 42"
LONG_LOWERCASE = "purplemountainsunsetwalk"


@pytest.mark.parametrize("username", ["alice", "a", "bob.smith", "j_doe", "mary-ann", "user42", "a" * 32,
                                      "x1.-_"])
def test_valid_usernames(username):
    assert username_problem(username) is None


@pytest.mark.parametrize("username", ["Alice", "ALICE", "1alice", "9", "a" * 33, "al ice", " alice", "alice ",
                                      "", None, "_alice", ".alice", "-alice", "alice@x", "élodie", "al\nice"])
def test_invalid_usernames(username):
    problem = username_problem(username)
    assert problem and "lowercase" in problem


@pytest.mark.parametrize("username", ["alice\n", "root\n", "a" * 32 + "\n"])
def test_trailing_newline_refused(username):
    assert username_problem(username) is not None


@pytest.mark.parametrize("username", ["root", "admin", "daemon", "nobody", "www-data"])
def test_reserved_usernames_refused(username):
    assert username_problem(username) == "is reserved for the system"


def test_email_is_normalised_to_lowercase():
    assert normalize_email("Alice.Smith@Example.COM") == ("alice.smith@example.com", None)
    assert normalize_email("bob@example.org") == ("bob@example.org", None)


@pytest.mark.parametrize("email", ["not-an-email", "a@@b.com", "@example.com", "alice@", "", None,
                                   "alice@exa mple.com"])
def test_malformed_email_refused_with_a_message(email):
    normalized, problem = normalize_email(email)
    assert normalized is None
    assert isinstance(problem, str) and problem.strip()


def test_short_password_names_the_minimum():
    problems = password_problems("short1!", POLICY)
    assert problems == ["must be at least 12 characters"]
    assert password_problems("x" * 9, PasswordPolicy(min_length=10)) == ["must be at least 10 characters"]


def test_minimum_length_is_inclusive():
    assert password_problems("q" * 11 + "z", POLICY) == []
    assert "must be at least 12 characters" in password_problems("qz" * 5 + "q", POLICY)


def test_password_longer_than_128_refused():
    assert password_problems("q" * 128, POLICY) == []
    assert password_problems("q" * 129, POLICY) == ["must be at most 128 characters"]


@pytest.mark.parametrize("password", ["password1234", "Password1234", "PASSWORDPASSWORD", "letmein12345"])
def test_common_password_refused_case_insensitively(password):
    assert "is a commonly used password" in password_problems(password, POLICY)


def test_password_containing_the_username_refused():
    assert password_problems("my-alice-is-great", POLICY, username="alice") == ["must not contain the username"]
    assert "must not contain the username" in password_problems("xxALICExx1234", POLICY, username="alice")
    assert password_problems("my-alice-is-great", POLICY, username="bob") == []


def test_good_passphrase_accepted():
    assert password_problems(GOOD_PASSWORD, POLICY, username="alice") == []


def test_no_composition_rules():
    assert LONG_LOWERCASE.islower() and LONG_LOWERCASE.isalpha()
    assert password_problems(LONG_LOWERCASE, POLICY, username="alice") == []


def test_several_problems_are_all_reported():
    problems = password_problems("alice", POLICY, username="alice")
    assert "must be at least 12 characters" in problems
    assert "must not contain the username" in problems


def test_registration_without_problems():
    assert registration_problems("alice", "Alice", "Smith", "alice@example.com", GOOD_PASSWORD, POLICY) == {}


def test_registration_problems_names_every_bad_field():
    problems = registration_problems("Root!", "", "x" * 65, "nope", "short", POLICY)
    assert set(problems) == {"username", "first_name", "last_name", "email", "password"}
    assert problems["first_name"] == "is required"
    assert problems["last_name"] == "must be at most 64 characters"
    assert "at least 12" in problems["password"]


def test_registration_blank_names_and_none_values():
    problems = registration_problems(None, "   ", None, None, None, POLICY)
    assert set(problems) == {"username", "first_name", "last_name", "email", "password"}
    assert problems["first_name"] == problems["last_name"] == "is required"


def test_registration_password_problems_are_joined():
    problems = registration_problems("alice", "Alice", "Smith", "alice@example.com", "alice", POLICY)
    assert set(problems) == {"password"}
    assert "at least 12" in problems["password"] and "username" in problems["password"]
    assert "; " in problems["password"]


def test_registration_reserved_username():
    problems = registration_problems("admin", "A", "B", "a@example.com", GOOD_PASSWORD, POLICY)
    assert problems == {"username": "is reserved for the system"}


def test_hash_uses_argon2id_with_owasp_parameters():
    hashed = hash_password(GOOD_PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD_PASSWORD not in hashed
    assert not domain.needs_rehash(hashed)


def test_hash_is_salted():
    assert hash_password(GOOD_PASSWORD) != hash_password(GOOD_PASSWORD)


def test_verify_round_trip_and_wrong_password():
    hashed = hash_password(GOOD_PASSWORD)
    assert verify_password(hashed, GOOD_PASSWORD) is True
    assert verify_password(hashed, GOOD_PASSWORD + "x") is False
    assert verify_password(hashed, "") is False


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$broken",
                                     "$2b$12$abcdefghijklmnopqrstuv"])
def test_garbage_hash_is_false_not_an_exception(garbage):
    assert verify_password(garbage, GOOD_PASSWORD) is False


def test_generated_passwords_pass_the_policy():
    password = domain.generate_password()
    assert len(password) == 24
    assert password_problems(password, POLICY) == []


@pytest.mark.parametrize("password_ok", [True, False])
def test_login_refused_for_unknown_user(password_ok):
    assert login_refusal(None, password_ok) == "unknown_user"


@pytest.mark.parametrize("status", [ACTIVE, PENDING, SUSPENDED, INVITED])
def test_login_refused_for_bad_password_whatever_the_status(status):
    assert login_refusal(status, False) == "bad_password"


@pytest.mark.parametrize("status", [PENDING, SUSPENDED, INVITED])
def test_login_refused_for_inactive_accounts(status):
    assert login_refusal(status, True) == f"status_{status}"


def test_login_allowed_for_active_account_with_good_password():
    assert login_refusal(ACTIVE, True) is None


@pytest.mark.parametrize("typed, recorded", [
    ("Alice", "alice"),
    ("alice@example.com", "alice@example.com"),
    ("Tr0ub4dor&3 is my secret!", "(not a username or email)"),
    ("", "(not a username or email)"),
])
def test_failed_login_records_only_what_looks_like_a_login(typed, recorded):
    assert loggable_login(typed) == recorded
