"""The slapd.conf ops/slapd.py writes: closed unless asked (the real refusals are checked against a
running slapd in tests/integration/test_ldap_directory.py)."""
from __future__ import annotations

import re

from ops.slapd import Slapd


def acl(config: str) -> str:
    """The rules of the entries (the root DSE's and the schema's come before)."""
    return config[config.index("access to attrs=userPassword"):config.index("database mdb")]


def test_the_directory_is_closed_by_default(tmp_path):
    server = Slapd(tmp_path, port=1389, base_dn="dc=example,dc=org", reader_password="r")
    server.write_config()
    config = server.config_path.read_text()
    assert re.search(r"^disallow bind_anon$", config, re.M) and re.search(r"^require authc$", config, re.M)
    rules = acl(config)
    assert "by * read" not in rules
    assert 'by dn.exact="cn=reader,dc=example,dc=org" read' in rules
    # passwords: a bind checks them (as anonymous), nobody reads them
    assert re.search(r"access to attrs=userPassword\s+by self write\s+by anonymous auth\s+by \* none", rules)
    assert rules.rstrip().endswith("by * none")
    assert server.reader_dn == "cn=reader,dc=example,dc=org"

