"""The Proxmox VE stand-in as a development tool: serves in the foreground until Ctrl-C.

    python -m tests.pve_standin [--host 127.0.0.1] [--port 8006] [--token root@pam!dev=secret]
                                [--user alice@pve=password] [--ca-file pve-root-ca.pem]

Prints the URL, the certificate's fingerprint and the credentials that sign in (without
--token, a token root@pam!gatehouse with a fresh secret is made). A Gatehouse connection
reaches it with that URL, the token, and the fingerprint pinned (or the CA, or verify_tls off).
"""
from __future__ import annotations

import argparse
import secrets
import signal
import threading

from tests.pve_standin import PveStandin


def _pair(text: str) -> tuple[str, str]:
    name, sep, secret = text.rpartition("=")
    if not sep or not name or not secret:
        raise argparse.ArgumentTypeError(f"expected NAME=SECRET, got {text!r}")
    return name, secret


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.pve_standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8006, help="0 for any free port (default 8006, like Proxmox VE)")
    parser.add_argument("--token", type=_pair, action="append", default=[], metavar="USER@REALM!NAME=SECRET")
    parser.add_argument("--user", type=_pair, action="append", default=[], metavar="USER@REALM=PASSWORD")
    parser.add_argument("--ca-file", help="write the CA certificate (PEM) to this file")
    args = parser.parse_args(argv)
    tokens = args.token or [("root@pam!gatehouse", secrets.token_hex(16))]

    standin = PveStandin(host=args.host, port=args.port)
    for token_id, secret in tokens:
        standin.add_token(token_id, secret)
    for userid, password in args.user:
        standin.add_user(userid, password)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        if args.ca_file:
            with open(args.ca_file, "w") as f:
                f.write(standin.ca_pem)
        print(f"Proxmox VE stand-in (API {standin.state.version['version']}) at {standin.url}", flush=True)
        print(f"  fingerprint  {standin.fingerprint}")
        print(f"  CA           {args.ca_file or '(not written; --ca-file PATH)'}")
        for token_id, secret in tokens:
            print(f"  API token    {token_id}  secret {secret}")
            print(f"               Authorization: PVEAPIToken={token_id}={secret}")
        for userid, password in args.user:
            print(f"  user         {userid}  password {password}")
        print("Ctrl-C stops it.", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
