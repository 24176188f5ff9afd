"""identity's shared value rules: account statuses, name and profile rules, the sort keys of
the user list, and the SMTP and password-policy settings rules the gateway checks too.

Pure (stdlib and email_validator, a pure parsing library): identity's domain and mail rules
import these, so the gateway's answers are identity's.
"""
from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

PENDING, INVITED, ACTIVE, SUSPENDED = "pending", "invited", "active", "suspended"
STATUSES = (PENDING, INVITED, ACTIVE, SUSPENDED)

FIRST_UID_NUMBER = 10000

# A username becomes a Unix login and an LDAP uid.
USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
RESERVED_USERNAMES = frozenset("""
    root admin administrator daemon bin sys sync games man lp mail news uucp proxy
    www-data backup list irc gnats nobody nogroup adm wheel sudo staff users operator
    sshd messagebus postgres rabbitmq openldap ldap systemd-network systemd-resolve
    systemd-timesync _apt polkitd ftp guest support security system shadow tty disk
""".split())

# The bounds of any policy an admin sets: whatever it says, a password has 8 to 1024 characters.
PASSWORD_LENGTH_FLOOR, MIN_LENGTH_CEILING, PASSWORD_LENGTH_CEILING = 8, 128, 1024


def username_problem(username: str) -> str | None:
    if not USERNAME_PATTERN.fullmatch(username or ""):
        return ("must start with a lowercase letter and contain only lowercase letters, "
                "digits, '.', '_' or '-', at most 32 characters")
    if username in RESERVED_USERNAMES:
        return "is reserved for the system"
    return None


def normalize_email(email: str) -> tuple[str | None, str | None]:
    """(normalized address, None) or (None, what is wrong).

    An address must be one the LDAP directory can hold: `mail` is an IA5 (ASCII) string. So the
    local part is ASCII (no SMTPUTF8 addresses), and an internationalized domain is kept in its
    ASCII (IDNA) form: `ada@exämple.com` is stored as `ada@xn--exmple-cua.com`."""
    try:
        valid = validate_email(email or "", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        return None, str(error)
    return (valid.ascii_email or valid.normalized).lower(), None


# --- profiles ------------------------------------------------------------------

PROFILE_FIELDS = ("username", "email", "first_name", "last_name", "company")
_FIELD_LIMITS = {"first_name": 64, "last_name": 64, "company": 128}
_REQUIRED = frozenset({"first_name", "last_name"})


def profile_problems(fields: dict) -> dict[str, str]:
    """What is wrong with each profile field present in `fields` (a partial update checks only those)."""
    problems = {}
    if "username" in fields and (problem := username_problem(fields["username"])):
        problems["username"] = problem
    if "email" in fields and (problem := normalize_email(fields["email"])[1]):
        problems["email"] = problem
    for field, limit in _FIELD_LIMITS.items():
        if field not in fields:
            continue
        value = (fields[field] or "").strip()
        if field in _REQUIRED and not value:
            problems[field] = "is required"
        elif len(value) > limit:
            problems[field] = f"must be at most {limit} characters"
        elif (char := unwritable_char(value)) is not None:
            problems[field] = f"must not contain control or text-direction characters (U+{ord(char):04X})"
    return problems


# Names go into the directory's cn, givenName and sn and onto every page that lists users: no
# control characters (NUL, ESC, CR, LF...), no line or paragraph separators, no text-direction
# overrides that make a name read as something else (U+202E), no lone surrogates. Joiners
# (U+200C/U+200D), which some scripts need, stay allowed.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unwritable_char(value: str) -> str | None:
    """The first character a name must not hold, else None."""
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            return char
    return None


# The user list: sort keys as the API names them.
USER_SORTS = ("name", "username", "email", "role", "status", "totp_enrolled", "last_login_at", "created_at")
ORDERS = ("asc", "desc")


# --- settings: SMTP and the password policy -------------------------------------------

TLS_MODES = ("none", "starttls", "tls")
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$")
IPV6 = re.compile(r"^\[?[0-9A-Fa-f:.]+\]?$")


def smtp_problems(settings: dict) -> dict[str, str]:
    """Field -> what is wrong, for the SMTP settings an admin submits."""
    problems = {}
    host = (settings.get("host") or "").strip()
    if not host:
        problems["host"] = "is required"
    elif not (HOSTNAME.fullmatch(host) or IPV6.fullmatch(host)):
        problems["host"] = "must be a host name or IP address"
    port = settings.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems["port"] = "must be a number from 1 to 65535"
    if settings.get("tls_mode") not in TLS_MODES:
        problems["tls_mode"] = f"must be one of {', '.join(TLS_MODES)}"
    username = settings.get("username") or ""
    if len(username) > 254:
        problems["username"] = "must be at most 254 characters"
    if settings.get("password") and not username:
        problems["password"] = "needs a username"
    if problem := normalize_email(settings.get("from_address") or "")[1]:
        problems["from_address"] = problem
    return problems


def password_policy_problems(values: dict) -> dict[str, str]:
    problems = {}
    minimum, maximum = values.get("min_length"), values.get("max_length")
    if (not isinstance(minimum, int) or isinstance(minimum, bool)
            or not PASSWORD_LENGTH_FLOOR <= minimum <= MIN_LENGTH_CEILING):
        problems["min_length"] = f"must be a number from {PASSWORD_LENGTH_FLOOR} to {MIN_LENGTH_CEILING}"
    if not isinstance(maximum, int) or isinstance(maximum, bool) or not maximum <= PASSWORD_LENGTH_CEILING:
        problems["max_length"] = f"must be a number of at most {PASSWORD_LENGTH_CEILING}"
    elif "min_length" not in problems and maximum < minimum:
        problems["max_length"] = "must be at least min_length"
    if not isinstance(values.get("refuse_common"), bool):
        problems["refuse_common"] = "must be true or false"
    return problems


# --- settings: self-registration ------------------------------------------------------

MAX_ALLOWED_EMAIL_DOMAINS = 100


def normalize_email_domain(domain: str) -> tuple[str | None, str | None]:
    """(the domain as stored addresses hold it: lower-case, ASCII/IDNA form, None) or (None,
    what is wrong). A leading "@" is dropped: "@example.com" means "example.com"."""
    text = (domain if isinstance(domain, str) else "").strip().lower().removeprefix("@")
    if not text:
        return None, "must not be empty"
    address, problem = normalize_email(f"x@{text}")
    if problem:
        return None, f"{text!r} is not a valid email domain"
    return address.split("@", 1)[1], None


def registration_settings_problems(values: dict) -> dict[str, str]:
    """Field -> what is wrong, for the self-registration settings an admin submits."""
    problems = {}
    if not isinstance(values.get("self_registration"), bool):
        problems["self_registration"] = "must be true or false"
    domains = values.get("allowed_email_domains", [])
    if not isinstance(domains, list):
        problems["allowed_email_domains"] = "must be a list of domains (empty: any domain)"
    elif len(domains) > MAX_ALLOWED_EMAIL_DOMAINS:
        problems["allowed_email_domains"] = f"must hold at most {MAX_ALLOWED_EMAIL_DOMAINS} domains"
    else:
        wrong = [problem for problem in (normalize_email_domain(domain)[1] for domain in domains) if problem]
        if wrong:
            problems["allowed_email_domains"] = "; ".join(dict.fromkeys(wrong))
    return problems


def email_domain_allowed(email: str, allowed_domains: list[str]) -> bool:
    """Whether a (normalized) address is in one of the allowed domains: the same domain exactly,
    not a subdomain. An empty list allows any domain."""
    return not allowed_domains or email.rsplit("@", 1)[-1].lower() in allowed_domains
