"""The `gatehouse` command."""
from __future__ import annotations

import os
import signal
import sys
import time

import click
import requests

from kernel import SERVICES
from kernel.config import Config, markdown_table
from ops.operator import COMMANDS, services


@click.group()
def main():
    """Gatehouse: users, roles, tenants and audit, propagated to LDAP and Proxmox VE."""


for command in COMMANDS:  # admin, sync, audit, status: ops/operator.py
    main.add_command(command)


@main.command()
def config():
    """Print every setting with its default (Markdown)."""
    click.echo(markdown_table())


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
def migrate(services):
    """Bring service databases to the latest schema (all by default)."""
    from kernel import migrate as migrations

    cfg = Config.from_env()
    for name in services or SERVICES:
        migrations.upgrade(name, cfg.db_url(name))
        click.echo(f"{name}: schema up to date")


@main.command("db-revision")
@click.argument("service", type=click.Choice(SERVICES))
@click.option("-m", "--message", required=True)
def db_revision(service, message):
    """Autogenerate a migration of SERVICE from its storage.py."""
    from kernel import migrate as migrations

    migrations.revision(service, Config.from_env().db_url(service), message)


@main.command("setup-broker")
@click.option("--recreate-empty", is_flag=True,
              help="Delete and redeclare queues of another type (GATEHOUSE_QUEUE_TYPE) if empty and unused.")
def setup_broker(recreate_empty):
    """Declare every exchange and queue (before producers start)."""
    from kernel import topology
    from kernel.config import ConfigError
    from ops.serve import all_service_classes

    cfg = Config.from_env()
    try:
        names = topology.declare(cfg.amqp_uri, all_service_classes(), cfg, recreate_empty=recreate_empty)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for name in names:
        click.echo(f"queue {name} ({cfg.queue_type})")


@main.command()
@click.argument("process", type=click.Choice((*SERVICES, "gateway")))
def serve(process):
    """Run one service or the gateway in the foreground."""
    os.execv(sys.executable, [sys.executable, "-m", "ops.serve", process])


@main.command("bootstrap-admin")
@click.option("--username", default=None, help="Default: GATEHOUSE_ADMIN_USERNAME")
def bootstrap_admin_command(username):
    """Create the first super admin if there is none (password from GATEHOUSE_ADMIN_PASSWORD or random)."""
    cfg = Config.from_env()
    result = bootstrap_admin(cfg, username or cfg["GATEHOUSE_ADMIN_USERNAME"], cfg["GATEHOUSE_ADMIN_PASSWORD"])
    click.echo(describe_admin(result))


def bootstrap_admin(cfg: Config, username: str, password: str | None) -> dict:
    with services(timeout=60, cfg=cfg) as rpc:
        return rpc.identity.bootstrap_admin(username, password or None)


def describe_admin(result: dict) -> str:
    name = result["user"]["username"]
    if not result["created"]:
        return f"First admin: {name} (exists; reset its password with the CLI if lost)"
    if result["password"]:
        return f"First admin: {name}  password: {result['password']}  (shown once; change it after signing in)"
    return f"First admin: {name}  password: from GATEHOUSE_ADMIN_PASSWORD"


@main.command()
def up():
    """Run everything: broker (unless GATEHOUSE_AMQP_URI), migrations, services, gateway, first admin."""
    from kernel import migrate as migrations
    from kernel import topology
    from kernel.config import ConfigError
    from ops.broker import LocalRabbit, reachable
    from ops.serve import all_service_classes
    from ops.supervisor import Supervisor

    from ops import directory as local_directory
    from ops.operator import cli_actor, services

    cfg = Config.from_env()
    try:
        cfg.check()  # before anything starts: a wrong setting is named once
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    data_dir = cfg.data_dir
    broker = directory = None
    if not cfg["GATEHOUSE_AMQP_URI"] and not reachable(cfg.amqp_uri):
        click.echo(f"Starting RabbitMQ on 127.0.0.1:{cfg['GATEHOUSE_BROKER_PORT']} (data in {data_dir / 'rabbitmq'})")
        broker = LocalRabbit(data_dir / "rabbitmq", cfg.integer("GATEHOUSE_BROKER_PORT")).start()
    elif not _wait(lambda: reachable(cfg.amqp_uri), 30):
        raise click.ClickException(f"RabbitMQ at {cfg.amqp_uri} does not answer")
    env = {**os.environ, "GATEHOUSE_DATA_DIR": str(data_dir), "GATEHOUSE_AMQP_URI": cfg.amqp_uri}
    cfg = Config.from_env(env)
    _ = cfg.jwt_secret  # created once here, before gateway workers race for it
    supervisor = Supervisor(env=env, log_dir=data_dir / "logs", restart=True)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT may arrive ignored when started in the background
        signal.signal(sig, lambda *_: stopping.append(1))
    try:
        if cfg.local_directory:
            directory = _start_local_directory(cfg)
        for name in SERVICES:
            migrations.upgrade(name, cfg.db_url(name))
        try:
            topology.declare(cfg.amqp_uri, all_service_classes(), cfg)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        supervisor.start_all()
        url = f"http://{cfg['GATEHOUSE_HTTP_HOST']}:{cfg['GATEHOUSE_HTTP_PORT']}"
        if not _wait(lambda: _ready(url), 90):
            raise click.ClickException(f"Gatehouse did not become ready; logs are in {data_dir / 'logs'}")
        admin = bootstrap_admin(cfg, cfg["GATEHOUSE_ADMIN_USERNAME"], cfg["GATEHOUSE_ADMIN_PASSWORD"])
        console = cfg["GATEHOUSE_PUBLIC_URL"] + "/"
        click.echo(f"\nGatehouse is running (gateway on {cfg['GATEHOUSE_HTTP_HOST']}:{cfg['GATEHOUSE_HTTP_PORT']}).")
        click.echo(f"Console: {console}  (open it in a browser and sign in as the first admin)")
        click.echo(describe_admin(admin))
        if directory:
            with services(timeout=60, cfg=cfg) as rpc:
                pointed = local_directory.point_sync_at(rpc, directory.url, cfg, cli_actor())
            click.echo(f"LDAP directory: {directory.url}  base {directory.base_dn}  (users bind as "
                       f"uid=<username>,ou=people,{directory.base_dn})"
                       + ("" if pointed else "; the LDAP sync keeps the directory settings it has"))
        click.echo(f"API: {console}api/v1  (docs: {console}api/docs).  Ctrl-C stops everything.")
        sys.stdout.flush()
        while not stopping:
            supervisor.watch_once()
            time.sleep(0.2)  # a dead child is noticed at once; its restart delay is the supervisor's
    finally:
        click.echo("Stopping Gatehouse...")
        supervisor.stop_all()
        if directory:
            directory.stop()
        if broker:
            broker.stop()


def _start_local_directory(cfg: Config):
    from ops import directory as local_directory
    from ops.binaries import NotInstalled

    slapd = local_directory.local_directory(cfg)
    try:
        return local_directory.start(slapd)
    except NotInstalled as missing:
        click.echo(f"No local LDAP directory: {missing} (or set GATEHOUSE_DIRECTORY=off)")
        return None
    except RuntimeError as error:  # e.g. its port is taken: say so, not a traceback
        raise click.ClickException(f"The local LDAP directory did not start: {error} "
                                   "(set GATEHOUSE_DIRECTORY_PORT, or GATEHOUSE_DIRECTORY=off)") from None


@main.command("use-directory")
@click.argument("url")
def use_directory(url):
    """Point the LDAP sync at the directory `gatehouse directory` runs, reached at URL (e.g.
    ldap://directory:1389), unless directory settings are set already (PUT /api/v1/settings/ldap)."""
    from ops import directory as local_directory
    from ops.operator import cli_actor, services

    cfg = Config.from_env()
    with services(timeout=60, cfg=cfg) as rpc:
        pointed = local_directory.point_sync_at(rpc, url, cfg, cli_actor())
    click.echo(f"LDAP sync: {url}" if pointed else "LDAP sync: directory settings already set, left as they are")


@main.command()
def directory():
    """Run the OpenLDAP directory (slapd with argon2) in the foreground: the compose file's
    `directory` container. Its data, config and generated admin and reader passwords are in the data folder."""
    from ops import directory as local_directory

    cfg = Config.from_env()
    slapd = local_directory.start(local_directory.local_directory(cfg))
    click.echo(f"LDAP directory on {slapd.host}:{slapd.port}, base {slapd.base_dn}, admin {slapd.admin_dn}, "
               f"read-only {slapd.reader_dn} (no anonymous access)")
    sys.stdout.flush()
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    try:
        while not stopping and slapd.process.poll() is None:
            time.sleep(0.5)
    finally:
        code = slapd.process.poll()
        if code is None:
            slapd.stop()
    if code is not None:
        raise click.ClickException(f"slapd exited ({code}); see {slapd.log_path}")


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _wait(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


if __name__ == "__main__":
    main()
