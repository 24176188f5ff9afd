"""Operator commands of `gatehouse`: admins, sync, audit, status.

They talk RPC to the running services through the configured broker, as the gateway does,
and act as the actor "cli" (with the operating-system account that ran them), so the audit
trail shows what an operator did from the command line.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import time
from dataclasses import asdict

import click

from kernel import DEFAULT_TENANT_ID, EVERY_TENANT, OPERATOR, SERVICES
from kernel.config import Config
from kernel.envelope import Actor
from kernel.errors import GatehouseError
from ops import cli_format

ADMIN_ROLES = ("super_admin", "admin")
ROLE_WAIT = 30  # seconds rbac may take to grant a new admin's role (it reacts to identity's event)
EXPORT_PAGE = 1000
VERIFY_TIMEOUT = 600  # a long trail takes a while to walk


def cli_actor() -> dict:
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no account name (some containers)
        who = socket.gethostname()
    return asdict(Actor(username=OPERATOR, display_name=f"gatehouse CLI ({who})"))


@contextlib.contextmanager
def services(timeout: float | None = None, cfg: Config | None = None):
    """A nameko proxy of the cluster; refusals and outages end the command with a clear message."""
    from kombu import Connection
    from nameko.exceptions import RpcTimeout
    from nameko.standalone.rpc import ClusterRpcProxy

    from ops.broker import reachable

    cfg = cfg or Config.from_env()
    if not reachable(cfg.amqp_uri):
        raise click.ClickException(f"RabbitMQ at {Connection(cfg.amqp_uri).as_uri()} does not answer.")
    nameko = {k: v for k, v in cfg.nameko().items() if k != "GATEHOUSE"}
    try:
        with ClusterRpcProxy(nameko, timeout=timeout or cfg.number("GATEHOUSE_RPC_TIMEOUT")) as rpc:
            yield rpc
    except GatehouseError as error:
        raise click.ClickException(cli_format.describe_error(error)) from None
    except RpcTimeout:
        raise click.ClickException("A service did not answer in time: is Gatehouse running? "
                                   "(`gatehouse status`)") from None


# --- admin ------------------------------------------------------------------------------------


@click.group()
def admin():
    """Create super admins and reset administrators' passwords (break-glass)."""


@admin.command("create")
@click.argument("username")
@click.option("--email", required=True)
@click.option("--first-name", default="Super", show_default=True)
@click.option("--last-name", default="Admin", show_default=True)
def admin_create(username, email, first_name, last_name):
    """A new, active super admin with a generated password, shown once, to change at the first sign-in."""
    with services() as rpc:
        created = rpc.identity.create_user(cli_actor(), username, email, first_name, last_name, super_admin=True)
        user = created["user"]
        click.echo(f"Super admin {user['username']} created (id {user['id']}).")
        click.echo(f"Password: {created['password']}  (shown once; it must be changed at the first sign-in)")
        if not _wait(lambda: _is_super_admin(rpc, user["id"]), ROLE_WAIT):
            raise click.ClickException("The account exists but rbac has not granted super_admin yet: "
                                       "check `gatehouse status`.")


def _is_super_admin(rpc, user_id: str) -> bool:
    return rpc.rbac.authorize(user_id, "super_admin", DEFAULT_TENANT_ID)


@admin.command("reset-password")
@click.argument("username")
def admin_reset_password(username):
    """A new random password for an administrator (super admin, or admin of some tenant), shown once and to
    be changed at the next sign-in; every session of the account ends and a sign-in lock is lifted.
    Other users reset theirs by email, or an administrator resets it in the API."""
    with services() as rpc:
        user = _user_named(rpc, username)
        if not _is_administrator(rpc, user["id"]):
            raise click.ClickException(f"{username} is not an administrator; the CLI resets administrators only.")
        reset = rpc.identity.admin_reset_password(cli_actor(), user["id"], "random")
        rpc.identity.unlock_account(cli_actor(), user["id"])
    click.echo(f"New password of {username}: {reset['password']}  "
               "(shown once; it must be changed at the next sign-in). Every session of the account ended.")
    if user["status"] != "active":
        click.echo(f"Note: the account is {user['status']}; it cannot sign in until it is active.")


def _user_named(rpc, username: str) -> dict:
    cursor = None
    while True:
        page = rpc.identity.list_users(tenant_id=None, q=username, limit=200, cursor=cursor)
        for user in page["items"]:
            if user["username"] == username:
                return user
        cursor = page["next_cursor"]
        if not cursor:
            raise click.ClickException(f"No user named {username}.")


def _is_administrator(rpc, user_id: str) -> bool:
    roles = rpc.rbac.user_access(user_id)["roles"]
    return any(entry["role"] in ADMIN_ROLES for entry in roles) or _is_super_admin(rpc, user_id)


# --- sync -------------------------------------------------------------------------------------


@click.group()
def sync():
    """Propagation to LDAP and Proxmox VE: see and start runs."""


@sync.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync_status(as_json):
    """Every sync target: state, last run, changes, error, work pending."""
    with services() as rpc:
        status = rpc.proxmox_sync.sync_status()
    click.echo(json.dumps(status, indent=2, sort_keys=True) if as_json else cli_format.sync_table(status))


@sync.command("run")
@click.argument("targets", nargs=-1)
def sync_run(targets):
    """Queue a full sync of TARGETS (`ldap`, `pve:<connection id>`), all targets by default."""
    with services() as rpc:
        queued = rpc.proxmox_sync.request_sync(cli_actor(), list(targets) or None)["queued"]
    click.echo(f"Queued: {', '.join(queued)}" if queued else "Nothing to sync: no targets.")


# --- audit ------------------------------------------------------------------------------------


@click.group()
def audit():
    """The audit trail: verify its hash chain, export it."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit_verify(as_json):
    """Recompute the hash chain; exit 0 when it holds, 2 (and the first broken record) when not."""
    with services(timeout=VERIFY_TIMEOUT) as rpc:
        result = rpc.audit.verify()
    text, code = cli_format.verify_report(result)
    click.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else text)
    sys.exit(code)


@audit.command("export")
@click.option("--format", "kind", type=click.Choice(("csv", "jsonl")), default="jsonl", show_default=True)
@click.option("--since", help="ISO-8601; records at or after")
@click.option("--until", help="ISO-8601; records before")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)")
def audit_export(kind, since, until, output):
    """Every record of every tenant, newest first, written page by page (as the API's export)."""
    from gateway.audit_export import WRITERS

    filters = {name: value for name, value in (("since", since), ("until", until)) if value}
    counted = [0]
    with services() as rpc:
        def pages():
            cursor = None
            while True:
                page = rpc.audit.list_events(EVERY_TENANT, filters, EXPORT_PAGE, cursor)
                counted[0] += len(page["items"])
                yield page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    return

        with _destination(output) as out:
            for chunk in WRITERS[kind](pages()):
                out.write(chunk)
    click.echo(f"{counted[0]} records exported" + (f" to {output}" if output else ""), err=True)


@contextlib.contextmanager
def _destination(path: str | None):
    """stdout, or the file: written beside it and renamed at the end, so a failed export leaves no half file."""
    if not path:
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = f"{path}.part"
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)


# --- status -----------------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json):
    """Broker, each service's health (outbox backlog) and each sync target; exit 1 when something is
    down, 3 when a sync target fails, 0 when all is well."""
    report = collect_status()
    click.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else cli_format.status_text(report))
    sys.exit(cli_format.status_exit_code(report))


def collect_status() -> dict:
    from ops.broker import reachable

    cfg = Config.from_env()
    down = {"status": "unavailable: broker"}
    if not reachable(cfg.amqp_uri):
        return {"broker": "unavailable", "services": {name: down for name in SERVICES}, "sync": None}
    report = {"broker": "ok", "services": {}, "sync": None}
    with services() as rpc:
        replies = {name: getattr(rpc, name).health.call_async() for name in SERVICES}
        for name, reply in replies.items():
            try:
                report["services"][name] = reply.result()
            except Exception as error:  # a service that does not answer (timeout) or fails
                report["services"][name] = {"status": f"unavailable: {type(error).__name__}"}
        if report["services"]["proxmox_sync"]["status"] == "ok":
            report["sync"] = rpc.proxmox_sync.sync_status()
    return report


def _wait(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


COMMANDS = (admin, sync, audit, status)
