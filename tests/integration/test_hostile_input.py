"""Hostile bodies and odd requests through the real gateway and services: each is a 4xx that
names the problem, and none leaves a traceback in any log (they were 500s: issue 20)."""
from __future__ import annotations

import pytest


def raw(api, method, path, body: str):
    """Sends `body` as it is (json= would refuse a lone surrogate or re-encode the number)."""
    return api.request(method, path, data=body.encode("utf-8", "surrogatepass"),
                       headers={"Content-Type": "application/json"})


def no_trace_of(platform, answers) -> None:
    """No process logged an error for these requests (a 500 logs `unhandled error` with its id)."""
    ids = {answer.headers["X-Request-ID"] for answer in answers}
    logs = "\n".join((platform.base_dir / "logs" / f"{name}.log").read_text(errors="replace")
                     for name in ("gateway", "identity", "rbac", "tenancy"))
    bad = [line for line in logs.splitlines()
           if any(request_id in line for request_id in ids) and ('"level": "ERROR"' in line or "Traceback" in line)]
    assert bad == []


def test_anonymous_hostile_bodies_are_4xx(platform):
    api = platform.api()
    deep = raw(api, "POST", "/api/v1/auth/login", "[" * 1000 + "]" * 1000)
    assert deep.status_code == 400, deep.text
    assert deep.json()["error"]["details"] == {"body": "nested more than 32 levels"}
    huge = raw(api, "POST", "/api/v1/auth/login", '{"login": ' + "1" * 5000 + ', "password": "x"}')
    assert huge.status_code == 422, huge.text
    assert list(huge.json()["error"]["details"]) == ["login"]
    lone = raw(api, "POST", "/api/v1/auth/register",
               '{"username": "surro", "first_name": "\\ud800", "last_name": "X", "email": "s@example.com", '
               '"password": "Correct-Horse-9-Battery"}')
    assert lone.status_code == 422, lone.text
    assert lone.json()["error"]["details"] == {"first_name": "not valid Unicode (a lone surrogate)"}
    no_trace_of(platform, [deep, huge, lone])


def test_administrator_hostile_bodies_are_4xx(platform, unique):
    admin = platform.admin()
    user, _ = platform.create_user(f"hos{unique}")
    surname = raw(admin, "PATCH", f"/api/v1/users/{user['id']}", '{"last_name": "\\udfff"}')
    assert surname.status_code == 422, surname.text
    assert surname.json()["error"]["details"] == {"last_name": "not valid Unicode (a lone surrogate)"}
    gid = raw(admin, "POST", "/api/v1/groups", '{"name": "g' + unique + '", "gid_number": ' + "7" * 5000 + "}")
    assert gid.status_code == 422, gid.text
    assert list(gid.json()["error"]["details"]) == ["gid_number"]
    flag = admin.post("/api/v1/roles", json={"name": f"r{unique}", "permissions": ["users.read"], "global": 1})
    assert flag.status_code == 422, flag.text  # 1 was taken for true: a role of every tenant
    assert "global" in flag.json()["error"]["details"]["json"]
    assert admin.get(f"/api/v1/users/{user['id']}").json()["last_name"] == user["last_name"]  # nothing changed
    no_trace_of(platform, [surname, gid, flag])


@pytest.mark.parametrize("method, path", [("DELETE", "/api/v1/auth/login"), ("PUT", "/api/v1/users")])
def test_a_wrong_method_is_a_405_with_allow(platform, method, path):
    answer = platform.admin().request(method, path)
    assert answer.status_code == 405
    assert "Allow" in answer.headers and method not in answer.headers["Allow"]
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_an_encoded_slash_in_an_id_is_a_json_404(platform):
    answer = platform.admin().get("/api/v1/groups/%2F/members", allow_redirects=False)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("field, value", [("first_name", "Ada\x1b[2J"), ("last_name", "Love\nlace"),
                                          ("last_name", "\u202egnp.exe"), ("company", "Acme\x00Corp")])
def test_names_the_directory_would_carry_refuse_control_characters(platform, unique, field, value):
    if field != "company":  # sign-up takes no company
        body = {"username": f"cc{unique}", "first_name": "Ada", "last_name": "Lovelace",
                "email": f"cc{unique}@example.com", "password": "Correct-Horse-9-Battery", field: value}
        answer = platform.api().post("/api/v1/auth/register", json=body)
        assert answer.status_code == 422, answer.text
        assert "control or text-direction" in answer.json()["error"]["details"]["json"][field][0]
    user, _ = platform.create_user(f"cp{unique}")
    changed = platform.admin().patch(f"/api/v1/users/{user['id']}", json={field: value})
    assert changed.status_code == 422, changed.text
    assert "control or text-direction" in changed.json()["error"]["details"]["json"][field][0]


def test_an_email_the_directory_cannot_hold_is_refused_and_an_idn_domain_kept_in_ascii(platform, unique):
    refused = platform.api().post("/api/v1/auth/register", json={
        "username": f"um{unique}", "first_name": "U", "last_name": "M", "email": f"üser{unique}@exämple.com",
        "password": "Correct-Horse-9-Battery"})
    assert refused.status_code == 422, refused.text
    assert "email" in refused.json()["error"]["details"]["json"]
    kept = platform.api().post("/api/v1/auth/register", json={
        "username": f"idn{unique}", "first_name": "I", "last_name": "D", "email": f"idn{unique}@exämple.com",
        "password": "Correct-Horse-9-Battery"})
    assert kept.status_code == 201, kept.text
    assert kept.json()["email"] == f"idn{unique}@xn--exmple-cua.com"


@pytest.mark.parametrize("scope", [{"vms": ["*"]}, {"vms": ["-1"]}, {"vms": ["9" * 100]}, {"nodes": ["../x"]},
                                   {"connections": ["a b"]}])
def test_scope_values_are_what_a_scope_can_name(platform, unique, scope):
    user, _ = platform.create_user(f"sc{unique}")
    answer = platform.admin().put(f"/api/v1/users/{user['id']}/roles/default", json={"role": "viewer", "scope": scope})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_scope"
    assert list(answer.json()["error"]["details"]) == list(scope)  # rbac names the key it refused
