"""Checks against a directory with OpenLDAP's own client tools (ldap-utils), not only ldap3."""
from __future__ import annotations

import subprocess
import tempfile

INVALID_CREDENTIALS = 49


def ldapwhoami(url: str, dn: str, password: str) -> int:
    """ldapwhoami's return code for a simple bind: 0 bound, 49 invalid credentials."""
    # The password goes through a private file (-y), not the command line other processes can read.
    with tempfile.NamedTemporaryFile("w", prefix="ldappw-") as secret:
        secret.write(password)
        secret.flush()
        result = subprocess.run(["ldapwhoami", "-x", "-H", url, "-D", dn, "-y", secret.name],
                                capture_output=True, text=True, timeout=30, check=False)
    return result.returncode
