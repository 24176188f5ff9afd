"""Every event identity publishes, in one place."""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

USER_REGISTERED = "identity.user_registered"
USER_CREATED = "identity.user_created"
LOGIN_SUCCEEDED = "identity.login_succeeded"
LOGIN_FAILED = "identity.login_failed"

ALL = (USER_REGISTERED, USER_CREATED, LOGIN_SUCCEEDED, LOGIN_FAILED)


def _user(user) -> Resource:
    return Resource("user", user.id, user.username)


def _profile(user) -> dict:
    return {"username": user.username, "email": user.email, "first_name": user.first_name,
            "last_name": user.last_name, "status": user.status, "uid_number": user.uid_number}


def user_registered(user, actor: Actor) -> Event:
    return Event(type=USER_REGISTERED, source="identity", category="users", actor=actor,
                 resource=_user(user), data=_profile(user))


def user_created(user, actor: Actor, first_admin: bool = False) -> Event:
    return Event(type=USER_CREATED, source="identity", category="users", actor=actor,
                 resource=_user(user), data={**_profile(user), "first_admin": first_admin})


def login_succeeded(user, actor: Actor, session_id: str) -> Event:
    return Event(type=LOGIN_SUCCEEDED, source="identity", category="auth", actor=actor,
                 resource=_user(user), data={"session_id": session_id})


def login_failed(user, actor: Actor, login: str, reason: str) -> Event:
    resource = _user(user) if user else Resource("user", None, login[:64])
    return Event(type=LOGIN_FAILED, source="identity", category="auth", actor=actor, resource=resource,
                 outcome="failure", data={"reason": reason, "login": login[:64]})
