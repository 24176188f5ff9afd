"""audit's shared value rules: the SIEM forwarding configuration an admin submits.

Pure (stdlib only): audit's forwarder imports these; the gateway checks the same rules.
"""
from __future__ import annotations

PROTOCOLS = ("udp", "tcp")
DEFAULT_APP_NAME = "gatehouse"


def config_problems(config: dict) -> dict:
    """What is wrong with a forwarding configuration {enabled, host, port, protocol, app_name?}."""
    if not isinstance(config, dict):
        return {"body": "must be an object"}
    problems = {}
    unknown = set(config) - {"enabled", "host", "port", "protocol", "app_name"}
    problems.update({name: "is not a setting" for name in unknown})
    if not isinstance(config.get("enabled"), bool):
        problems["enabled"] = "must be true or false"
    enabled = config.get("enabled") is True
    host = config.get("host")
    if host is not None and (not isinstance(host, str) or not 0 < len(host) <= 253 or any(c.isspace() for c in host)):
        problems["host"] = "must be a host name or address"
    elif enabled and not host:
        problems["host"] = "is required when forwarding is enabled"
    port = config.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems["port"] = "must be a port number (1-65535)"
    elif enabled and port is None:
        problems["port"] = "is required when forwarding is enabled"
    if config.get("protocol") not in (*PROTOCOLS, None) or (enabled and config.get("protocol") is None):
        problems["protocol"] = "must be udp or tcp"
    app_name = config.get("app_name")
    if app_name is not None and not _printable(app_name, 48):
        problems["app_name"] = "must be 1 to 48 printable ASCII characters without spaces"
    return problems


def _printable(value, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and all(33 <= ord(c) <= 126 for c in value)
