"""Settings: defaults, environment overrides, derived values and the persisted JWT key."""
from __future__ import annotations

import stat

import pytest

from kernel import SERVICES
from kernel.config import KNOWN_ENV, SETTINGS, Config, markdown_table


def test_defaults_from_an_empty_environment():
    config = Config.from_env({})
    for setting in SETTINGS:
        if setting.env != "GATEHOUSE_PUBLIC_URL":  # derived from host and port: below
            assert config[setting.env] == setting.default
    assert config["GATEHOUSE_HTTP_HOST"] == "127.0.0.1"
    assert config.integer("GATEHOUSE_HTTP_PORT") == 8080
    assert config.integer("GATEHOUSE_ACCESS_TOKEN_TTL") == 900
    assert config.number("GATEHOUSE_OUTBOX_POLL_INTERVAL") == 1.0
    assert config["GATEHOUSE_ADMIN_USERNAME"] == "superadmin"


def test_environment_overrides_and_empty_values_fall_back():
    config = Config.from_env({
        "GATEHOUSE_HTTP_PORT": "9090",
        "GATEHOUSE_RPC_TIMEOUT": "2.5",
        "GATEHOUSE_LOG_LEVEL": "",  # empty means default
        "UNRELATED": "x",
    })
    assert config.integer("GATEHOUSE_HTTP_PORT") == 9090
    assert config.number("GATEHOUSE_RPC_TIMEOUT") == 2.5
    assert config["GATEHOUSE_LOG_LEVEL"] == "INFO"
    assert "UNRELATED" not in config.values


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("GATEHOUSE_HTTP_HOST", "0.0.0.0")
    assert Config.from_env()["GATEHOUSE_HTTP_HOST"] == "0.0.0.0"


def test_public_url_follows_the_http_host_and_port_unless_set():
    assert Config.from_env({})["GATEHOUSE_PUBLIC_URL"] == "http://127.0.0.1:8080"
    assert Config.from_env({"GATEHOUSE_HTTP_PORT": "9123"})["GATEHOUSE_PUBLIC_URL"] == "http://127.0.0.1:9123"
    assert Config.from_env({"GATEHOUSE_HTTP_HOST": "10.1.2.3", "GATEHOUSE_HTTP_PORT": "81"}
                           )["GATEHOUSE_PUBLIC_URL"] == "http://10.1.2.3:81"
    assert Config.from_env({"GATEHOUSE_HTTP_HOST": "::1"})["GATEHOUSE_PUBLIC_URL"] == "http://[::1]:8080"
    # set: taken as it is (without a trailing slash, links append their own)
    assert Config.from_env({"GATEHOUSE_PUBLIC_URL": "https://gh.example/", "GATEHOUSE_HTTP_PORT": "9123"}
                           )["GATEHOUSE_PUBLIC_URL"] == "https://gh.example"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", " 0.0.0.0 "])
def test_public_url_of_a_gateway_on_every_address_names_this_machine(host, monkeypatch):
    monkeypatch.setattr("kernel.config.socket.getfqdn", lambda: "pve-admin.example.lan")
    assert Config.from_env({"GATEHOUSE_HTTP_HOST": host, "GATEHOUSE_HTTP_PORT": "8090"}
                           )["GATEHOUSE_PUBLIC_URL"] == "http://pve-admin.example.lan:8090"
    monkeypatch.setattr("kernel.config.socket.getfqdn", lambda: "localhost")  # no name of its own
    assert Config.from_env({"GATEHOUSE_HTTP_HOST": host, "GATEHOUSE_HTTP_PORT": "8090"}
                           )["GATEHOUSE_PUBLIC_URL"] == "http://127.0.0.1:8090"


def test_unknown_setting_is_a_key_error():
    with pytest.raises(KeyError):
        Config.from_env({})["GATEHOUSE_NOPE"]


def test_default_data_dir_is_relative_to_cwd_and_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config.from_env({})
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.data_dir.is_dir()


def test_data_dir_override_is_created(tmp_path):
    target = tmp_path / "nested" / "state"
    config = Config.from_env({"GATEHOUSE_DATA_DIR": str(target)})
    assert config.data_dir == target.resolve()
    assert target.is_dir()


@pytest.mark.parametrize("service", SERVICES)
def test_db_url_defaults_to_sqlite_file_in_data_dir(tmp_path, service):
    config = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path)})
    assert config.db_url(service) == f"sqlite:///{tmp_path.resolve() / (service + '.db')}"


def test_db_url_override_applies_to_its_service_only(tmp_path):
    url = "postgresql+pg8000://gh:pw@db/identity"
    config = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_IDENTITY_DB_URL": url})
    assert config.db_url("identity") == url
    assert config.db_url("rbac") == f"sqlite:///{tmp_path.resolve() / 'rbac.db'}"


def test_amqp_uri_default_uses_broker_port():
    assert Config.from_env({}).amqp_uri == "amqp://guest:guest@127.0.0.1:5672//"
    assert Config.from_env({"GATEHOUSE_BROKER_PORT": "5699"}).amqp_uri == "amqp://guest:guest@127.0.0.1:5699//"


def test_amqp_uri_override_wins_over_broker_port():
    uri = "amqp://u:p@rabbit:5672/gh"
    config = Config.from_env({"GATEHOUSE_AMQP_URI": uri, "GATEHOUSE_BROKER_PORT": "5699"})
    assert config.amqp_uri == uri


def test_nameko_config():
    config = Config.from_env({"GATEHOUSE_SERVICE_MAX_WORKERS": "4"})
    nameko = config.nameko()
    assert nameko["AMQP_URI"] == config.amqp_uri
    assert nameko["max_workers"] == 4
    assert nameko["serializer"] == "json"
    assert nameko["GATEHOUSE"] is config


def test_jwt_secret_is_generated_once_persisted_and_private(tmp_path):
    env = {"GATEHOUSE_DATA_DIR": str(tmp_path)}
    first = Config.from_env(env).jwt_secret
    second = Config.from_env(env).jwt_secret
    assert first == second
    assert len(first) >= 32
    key_file = tmp_path / "jwt.key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # no temporary file left behind
    assert [p.name for p in tmp_path.iterdir()] == ["jwt.key"]


def test_jwt_secret_differs_between_data_dirs(tmp_path):
    a = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path / "a")}).jwt_secret
    b = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path / "b")}).jwt_secret
    assert a != b


def test_jwt_secret_from_environment_is_used_and_not_written(tmp_path):
    config = Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), "GATEHOUSE_JWT_SECRET": "k" * 40})
    assert config.jwt_secret == "k" * 40
    assert not (tmp_path / "jwt.key").exists()


def test_every_service_has_a_db_url_setting():
    for service in SERVICES:
        assert f"GATEHOUSE_{service.upper()}_DB_URL" in KNOWN_ENV


def test_setting_names_are_unique():
    assert len(KNOWN_ENV) == len(SETTINGS)


def test_markdown_table_lists_every_setting():
    table = markdown_table()
    lines = table.splitlines()
    assert lines[0] == "| variable | default | meaning |"
    assert lines[1] == "|---|---|---|"
    assert len(lines) == 2 + len(SETTINGS)
    for line, setting in zip(lines[2:], SETTINGS):
        assert line.startswith(f"| `{setting.env}` | `{setting.default}` |")
        assert setting.help in line


def test_queue_type_defaults_to_classic_and_accepts_quorum():
    assert Config.from_env({}).queue_type == "classic"
    assert Config.from_env({"GATEHOUSE_QUEUE_TYPE": " Quorum "}).queue_type == "quorum"


@pytest.mark.parametrize("value", ["stream", "quorom", "mirrored"])
def test_queue_type_refuses_anything_else_naming_the_setting(value):
    from kernel.config import ConfigError

    with pytest.raises(ConfigError, match=f"GATEHOUSE_QUEUE_TYPE='{value}'.*classic, quorum"):
        Config.from_env({"GATEHOUSE_QUEUE_TYPE": value}).queue_type


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
def test_delivery_limit_must_be_a_positive_whole_number(value):
    from kernel.config import ConfigError

    with pytest.raises(ConfigError, match="GATEHOUSE_QUEUE_DELIVERY_LIMIT"):
        Config.from_env({"GATEHOUSE_QUEUE_DELIVERY_LIMIT": value}).delivery_limit
    assert Config.from_env({"GATEHOUSE_QUEUE_DELIVERY_LIMIT": "20"}).delivery_limit == 20


@pytest.mark.parametrize("env,value", [("GATEHOUSE_RATE_LIMIT_WINDOW", "0"), ("GATEHOUSE_RATE_LIMIT_WINDOW", "-60"),
                                       ("GATEHOUSE_RATE_LIMIT_WINDOW", "hourly"), ("GATEHOUSE_REGISTRATIONS_PER_IP", "-1"),
                                       ("GATEHOUSE_INVITATIONS_PER_ADMIN", "lots")])
def test_a_start_refuses_a_rate_limit_setting_it_cannot_count_with(env, value):
    from kernel.config import ConfigError

    with pytest.raises(ConfigError, match=f"{env}='{value}'.*at least"):
        Config.from_env({env: value}).check()


def test_the_defaults_pass_the_start_check_and_a_limit_of_zero_is_allowed():
    Config.from_env({}).check()
    Config.from_env({"GATEHOUSE_REGISTRATIONS_PER_IP": "0"}).check()


@pytest.mark.parametrize("value", ["Local", " off ", "local"])
def test_the_directory_mode_is_read_whatever_its_case(value):
    assert Config.from_env({"GATEHOUSE_DIRECTORY": value}).local_directory == (value.strip().lower() == "local")


def test_a_misspelt_directory_mode_is_refused_not_taken_for_off():
    from kernel.config import ConfigError

    with pytest.raises(ConfigError, match="GATEHOUSE_DIRECTORY='locale'.*local, off"):
        Config.from_env({"GATEHOUSE_DIRECTORY": "locale"}).check()
