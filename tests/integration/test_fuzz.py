"""Schemathesis fuzzes every operation of the running gateway's OpenAPI document, anonymously
and as a super admin (all phases: examples, coverage, fuzzing, stateful): no answer may be a
5xx, and each must match the spec (status documented, content type, body schema). It runs against a platform of its own (own vhost, own data), so
what the fuzzer creates, changes or deletes touches no other test.

The admin's token must survive the run: operations that end the caller's own sessions or
demand something of the caller before anything else (2FA policy) run last, each on a session
of its own, and fuzz_hooks.py keeps the admin's own id and active tenant out of generated paths.
"""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kernel import DEFAULT_TENANT_ID
from tests.harness import Platform

ROOT = Path(__file__).resolve().parents[2]  # so the CLI imports fuzz_hooks from this checkout
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "unsupported_method,allow_header_conformance")
MAX_EXAMPLES = "5"
# One worker: hypothesis describes strategies with ast.parse, which CPython 3.11 does not make
# thread-safe ("AST constructor recursion depth mismatch" with two workers).
WORKERS = "1"
# Operations that end, restrict or move (active tenant) the admin's own session: fuzzed after
# the rest, each group with a session of its own signed in beforehand (the fuzzer's wrong
# passwords lock the account: stateful links feed it the admin's username). Ending all other
# sessions comes last.
SELF_ENDING = (("/api/v1/auth/logout",), ("/api/v1/me/tenant",),
               ("/api/v1/settings/2fa-policy", "/api/v1/me/password"), ("/api/v1/me/sessions",))

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def fuzzed(rabbit, tmp_path_factory):
    amqp_uri = rabbit.add_vhost(f"fuzz-{uuid.uuid4().hex[:8]}")
    running = Platform(tmp_path_factory.mktemp("fuzz"), amqp_uri)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def fuzz(platform: Platform, *options: str, token: str | None = None, protected: tuple[str, ...] = ()) -> None:
    """One schemathesis run over the platform's spec; fails with schemathesis's report."""
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks",
           "GATEHOUSE_FUZZ_PROTECTED_IDS": ",".join(protected), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{platform.url}/api/v1/openapi.json",
         "--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--workers", WORKERS, "--request-timeout", "30",
         "--suppress-health-check", "all", "--no-color", *headers, *options],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-20000:]}\n{result.stderr[-3000:]}\n{platform.logs_tail(30)}"
    print(result.stdout[-2500:])  # the summary and warnings, with `pytest -s`


def still_acting(admin) -> None:
    """The run reached the routes' logic: the admin's session still passes every guard."""
    response = admin.get("/api/v1/users", params={"limit": 1})
    assert response.status_code == 200, response.text


def test_anonymous_answers_match_the_spec(fuzzed):
    fuzz(fuzzed)


def paths(prefixes) -> str:
    return f"^({'|'.join(prefixes)})"


def test_super_admin_answers_match_the_spec(fuzzed):
    admin = fuzzed.admin()
    spare_sessions = [fuzzed.admin() for _ in SELF_ENDING]
    me = admin.get("/api/v1/me").json()
    protected = (me["id"], me.get("tenant_id") or DEFAULT_TENANT_ID)
    fuzz(fuzzed, "--exclude-path-regex", paths(p for group in SELF_ENDING for p in group), token=admin.token,
         protected=protected)
    still_acting(admin)
    for group, session in zip(SELF_ENDING, spare_sessions):
        fuzz(fuzzed, "--include-path-regex", paths(group), token=session.token, protected=protected)


def test_spec_docs_and_the_servers_own_refusals_over_http(fuzzed):
    api = fuzzed.api()
    docs = api.get("/api/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["Content-Type"]
    assert '<script src="/assets/docs.js"' in docs.text  # Swagger UI from the gateway (gateway/console)
    assert "/api/v1/openapi.json" in api.get("/assets/docs.js").text
    spec = api.get("/api/v1/openapi.json")
    assert spec.status_code == 200 and spec.json()["paths"]
    assert spec.headers["X-Frame-Options"] == "DENY" and spec.headers["Cache-Control"] == "no-store"

    # gunicorn refuses an overlong URL itself: still the one error shape, still the headers.
    too_long = api.get("/api/v1/users", params={"cursor": "x" * 5000})
    assert too_long.status_code == 414
    assert too_long.headers["Content-Type"] == "application/json"
    assert too_long.headers["X-Content-Type-Options"] == "nosniff"
    assert too_long.json()["error"]["code"] == "uri_too_long"
