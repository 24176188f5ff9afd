"""docker-compose.yml runs processes that exist, configured with settings that exist.

There is no Docker engine here, so the file is only parsed: PyYAML resolves the
anchors and `<<:` merges the way Compose does, and `${VAR:-default}` is read as
its default. A Gatehouse container is one built from the Dockerfile or running a
`gatehouse` command.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from kernel import SERVICES
from kernel.config import KNOWN_ENV
from ops.cli import main as cli
from ops.serve import SERVICE_CLASSES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres-init.sql"
PROCESSES = (*SERVICES, "gateway")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.fixture(scope="module")
def gatehouse(services) -> dict:
    found = {name: spec for name, spec in services.items() if is_gatehouse(spec)}
    assert found, "docker-compose.yml has no Gatehouse container"
    return found


# -- reading the compose file ---------------------------------------------------

def interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} with nothing set; $$ is a literal $."""
    def resolve(match):
        _name, operator, argument = re.fullmatch(r"(\w+)(?:(:?[-?])(.*))?", match.group(1), re.DOTALL).groups()
        if operator and operator.endswith("-"):
            return argument
        return "unset" if operator else ""  # ${VAR:?error} cannot be left unset: any value

    return re.sub(r"(?<!\$)\$\{([^}]*)\}", resolve, value).replace("$$", "$")


def dockerfile_cmd() -> list[str]:
    commands = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    assert commands, "Dockerfile has no CMD"
    return yaml.safe_load(commands[-1][4:])  # the exec form is a JSON list


def shell_script(spec: dict) -> str | None:
    """The script of a `sh -c SCRIPT` command, else None."""
    command = spec.get("command")
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command or []]
    if words[:1] in (["sh"], ["bash"], ["/bin/sh"], ["/bin/bash"]) and "-c" in words[:-1]:
        return words[words.index("-c") + 1]
    return None


def argv_lists(spec: dict) -> list[list[str]]:
    """Every program invocation of a container's command, `sh -c "a && b"` split into a and b."""
    script = shell_script(spec)
    if script is not None:
        return [shlex.split(part) for part in re.split(r"&&|\|\||;|\n", script) if part.strip()]
    command = spec.get("command")
    if command is None:
        command = dockerfile_cmd() if built_here(spec) else []
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    return [words] if words else []


def gatehouse_argvs(spec: dict) -> list[list[str]]:
    return [argv for argv in argv_lists(spec) if argv and Path(argv[0]).name == "gatehouse"]


def built_here(spec: dict) -> bool:
    """Built from the Dockerfile, or running the image it builds."""
    return "build" in spec or str(spec.get("image", "")).rsplit("/", 1)[-1].split(":")[0] == "gatehouse"


def is_gatehouse(spec: dict) -> bool:
    return built_here(spec) or bool(gatehouse_argvs(spec))


def served(spec: dict) -> list[str]:
    """The processes a container runs with `gatehouse serve NAME`."""
    return [argv[2] for argv in gatehouse_argvs(spec) if argv[1:2] == ["serve"] and len(argv) > 2]


def environment(spec: dict) -> dict:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: interpolate(str(value)) if value is not None else None for key, value in env.items()}


def depends_on(spec: dict) -> dict:
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):  # the short form waits for nothing but the start
        return {name: "service_started" for name in deps}
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def healthcheck_test(spec: dict) -> list[str] | None:
    check = spec.get("healthcheck") or {}
    test = check.get("test")
    test = [test] if isinstance(test, str) else [str(t) for t in test or []]
    if not test or check.get("disable") or test[0] == "NONE":  # NONE: the image's check is off too
        return None
    return test


def created_databases() -> set[str]:
    sql = re.sub(r"--[^\n]*", "", POSTGRES_INIT.read_text())
    return {name.strip('"') for name in re.findall(r'CREATE\s+DATABASE\s+("?[\w]+"?)', sql, re.IGNORECASE)}


# -- the processes ----------------------------------------------------------------

def test_every_gatehouse_container_runs_a_process_that_exists(gatehouse):
    for name, spec in gatehouse.items():
        argvs = gatehouse_argvs(spec)
        assert argvs, f"container {name!r} is built from the Dockerfile but runs no gatehouse command"
        for argv in argvs:
            assert len(argv) > 1 and argv[1] in cli.commands, \
                f"container {name!r} runs {shlex.join(argv)!r}: no such gatehouse command"
            if argv[1] == "serve":
                assert len(argv) == 3 and argv[2] in (*SERVICE_CLASSES, "gateway"), \
                    f"container {name!r} runs {shlex.join(argv)!r}: no such process " \
                    f"(one of {', '.join((*SERVICE_CLASSES, 'gateway'))})"


def test_the_dockerfile_defaults_to_the_gateway_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.MULTILINE), "Dockerfile: base image"
    assert re.search(r"pip install \.", text), "Dockerfile: does not install the package"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "Dockerfile: the processes would run as root"
    assert dockerfile_cmd() == ["gatehouse", "serve", "gateway"], "Dockerfile: default CMD"


def test_every_service_and_the_gateway_has_a_container(gatehouse):
    running = {process for spec in gatehouse.values() for process in served(spec)}
    missing = [process for process in PROCESSES if process not in running]
    assert not missing, f"no container runs `gatehouse serve` for: {', '.join(missing)}"


def test_every_process_runs_more_than_one_replica(gatehouse):
    for name, spec in gatehouse.items():
        if served(spec):
            replicas = (spec.get("deploy") or {}).get("replicas", 1)
            assert isinstance(replicas, int) and replicas > 1, \
                f"container {name!r} ({', '.join(served(spec))}) runs {replicas!r} replica(s); want more than 1"


# -- their settings -----------------------------------------------------------------

def test_gatehouse_containers_set_only_settings_gatehouse_reads(gatehouse):
    for name, spec in gatehouse.items():
        assert "env_file" not in spec, f"container {name!r}: env_file cannot be checked here; use environment"
        for variable in environment(spec):
            assert variable in KNOWN_ENV, \
                f"container {name!r} sets {variable}, which kernel/config.py SETTINGS does not define"


def test_processes_share_the_broker_and_the_gateway_shares_its_key(services, gatehouse):
    for name, spec in gatehouse.items():
        env = environment(spec)
        uri = env.get("GATEHOUSE_AMQP_URI")
        assert uri, f"container {name!r} does not set GATEHOUSE_AMQP_URI (it would look for a broker on itself)"
        assert urlsplit(uri).hostname in services, \
            f"container {name!r}: GATEHOUSE_AMQP_URI host {urlsplit(uri).hostname!r} is no compose service"
        if "gateway" in served(spec):
            assert env.get("GATEHOUSE_JWT_SECRET"), \
                f"container {name!r} does not set GATEHOUSE_JWT_SECRET: each replica would sign with its own key"
            assert env.get("GATEHOUSE_HTTP_HOST") not in (None, "127.0.0.1", "localhost"), \
                f"container {name!r}: GATEHOUSE_HTTP_HOST must not be loopback, or nothing outside reaches the gateway"


def test_every_database_url_names_a_database_the_init_script_creates(services, gatehouse):
    databases = created_databases()
    assert databases, f"{POSTGRES_INIT.relative_to(ROOT)} creates no database"
    for name, spec in gatehouse.items():
        env = environment(spec)
        for service in served(spec):
            if service in SERVICES:
                assert env.get(f"GATEHOUSE_{service.upper()}_DB_URL"), \
                    f"container {name!r} runs {service} without GATEHOUSE_{service.upper()}_DB_URL " \
                    f"(each replica would keep its own SQLite file)"
        owners = {}
        for variable, url in env.items():
            match = re.fullmatch(r"GATEHOUSE_(\w+)_DB_URL", variable)
            if not match:
                continue
            parts = urlsplit(url)
            database = parts.path.lstrip("/")
            assert parts.scheme == "postgresql+pg8000", \
                f"container {name!r}: {variable} uses {parts.scheme!r}, not postgresql+pg8000"
            assert parts.hostname in services, \
                f"container {name!r}: {variable} host {parts.hostname!r} is no compose service"
            assert database in databases, \
                f"container {name!r}: {variable} names database {database!r}, " \
                f"which {POSTGRES_INIT.relative_to(ROOT)} does not create ({', '.join(sorted(databases))})"
            assert database not in owners, \
                f"container {name!r}: {variable} and {owners.get(database)} share database {database!r}"
            owners[database] = variable


def test_postgres_runs_the_init_script(services):
    mounts = [str(volume) for spec in services.values() if "postgres" in str(spec.get("image", ""))
              for volume in spec.get("volumes", [])]
    wanted = f"./{POSTGRES_INIT.relative_to(ROOT)}:/docker-entrypoint-initdb.d/"
    assert any(mount.startswith(wanted) for mount in mounts), \
        f"no postgres container mounts {POSTGRES_INIT.relative_to(ROOT)} into /docker-entrypoint-initdb.d"


# -- health and order -------------------------------------------------------------

def test_infrastructure_processes_and_gateway_have_healthchecks(services, gatehouse):
    for name in ("rabbitmq", "postgres"):
        assert name in services, f"no {name} container"
        assert healthcheck_test(services[name]), f"container {name!r} has no healthcheck"
    assert "rabbitmq-diagnostics" in " ".join(healthcheck_test(services["rabbitmq"])), \
        "container 'rabbitmq': healthcheck does not use rabbitmq-diagnostics"
    assert "pg_isready" in " ".join(healthcheck_test(services["postgres"])), \
        "container 'postgres': healthcheck does not use pg_isready"
    for name, spec in gatehouse.items():
        if served(spec):
            test = healthcheck_test(spec)
            assert test, f"container {name!r} ({', '.join(served(spec))}) has no healthcheck"
            if "gateway" in served(spec):
                assert "/healthz" in " ".join(test), f"container {name!r}: healthcheck does not ask /healthz"


def test_a_one_shot_job_migrates_and_declares_the_broker_first(services, gatehouse):
    jobs = {name: spec for name, spec in gatehouse.items()
            if any(argv[1:2] == ["migrate"] for argv in gatehouse_argvs(spec))}
    assert len(jobs) == 1, f"want one container running `gatehouse migrate`, found {sorted(jobs) or 'none'}"
    (name, spec), = jobs.items()
    commands = [argv[1] for argv in gatehouse_argvs(spec)]
    assert "setup-broker" in commands, f"container {name!r} does not run `gatehouse setup-broker`"
    assert commands.index("migrate") < commands.index("setup-broker"), \
        f"container {name!r}: runs setup-broker before migrate"
    script = shell_script(spec)
    if script is not None:
        assert not re.search(r";|\|\||\n", script.strip()), \
            f"container {name!r}: chain the steps with && so that a failed migration fails the job"
    restart = spec.get("restart", "no")
    assert restart in ("no", "on-failure", False) or str(restart).startswith("on-failure:"), \
        f"container {name!r} is a one-shot job but restart is {restart!r} (it would run again and again)"
    deps = depends_on(spec)
    for infra in ("rabbitmq", "postgres"):
        assert deps.get(infra) == "service_healthy", \
            f"container {name!r} does not wait for {infra} to be healthy (depends_on: {deps})"


def test_processes_start_after_the_migration_completed(gatehouse):
    job = next(name for name, spec in gatehouse.items()
               if any(argv[1:2] == ["migrate"] for argv in gatehouse_argvs(spec)))
    for name, spec in gatehouse.items():
        if served(spec):
            condition = depends_on(spec).get(job)
            assert condition == "service_completed_successfully", \
                f"container {name!r} ({', '.join(served(spec))}) must depend on {job!r} " \
                f"with condition service_completed_successfully, has {condition!r}"


# -- the directory ----------------------------------------------------------------

def directory_healthcheck_script(services) -> str:
    """The directory's healthcheck as the container's shell runs it ($$ is a literal $)."""
    kind, script = healthcheck_test(services["directory"])
    assert kind == "CMD-SHELL", "the directory's healthcheck reads its password from the environment"
    return interpolate(script)


def test_the_directory_healthcheck_binds_with_the_reader_not_anonymously(services):
    script = directory_healthcheck_script(services)
    assert "-D" in script and "cn=reader," in script and "-y /dev/stdin" in script, script
    assert "-w" not in shlex.split(script), "a password on the command line shows in the process list"
    reader = "GATEHOUSE_DIRECTORY_READER_PASSWORD"
    assert environment(services["directory"])[reader] == environment(services["bootstrap-admin"])[reader], \
        "bootstrap-admin gives the realms the password the directory gives its reader"


def test_the_directory_is_published_on_the_loopback_only_by_default(services):
    for port in services["directory"].get("ports") or []:
        assert isinstance(port, str), "short form expected: HOST_IP:HOST_PORT:1389"
        assert interpolate(port).startswith("127.0.0.1:"), f"the directory is published beyond this machine: {port}"
