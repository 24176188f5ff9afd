"""A real syslog collector for tests: UDP datagrams or TCP with octet-counting framing (RFC 6587).

    receiver = SyslogReceiver("tcp").start()      # a free loopback port
    ... receiver.messages  (every message received, as text, in arrival order)
    receiver.stop()                                # closes every connection too: an outage
    receiver.start()                               # back on the same port

It parses what it receives as RFC 5424 just enough for assertions (`parse`).
"""
from __future__ import annotations

import json
import re
import socket
import socketserver
import threading

from ops.broker import free_port

HEADER = re.compile(r"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app_name>\S+) "
                    r"(?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|\[.*?(?<!\\)\](?:\[.*?(?<!\\)\])*) ?(?P<msg>.*)$", re.S)
SD_PARAM = re.compile(r'(\S+?)="((?:[^"\\]|\\.)*)"')


def parse(message: str) -> dict:
    """An RFC 5424 message as {pri, timestamp, hostname, app_name, procid, msgid, sd: {name: value}, msg, record}."""
    match = HEADER.match(message)
    assert match, f"not RFC 5424: {message[:200]!r}"
    fields = match.groupdict()
    fields["sd"] = {name: re.sub(r"\\(.)", r"\1", value) for name, value in SD_PARAM.findall(fields["sd"])}
    fields["record"] = json.loads(fields["msg"].removeprefix("\ufeff")) if fields["msg"] else None
    return fields


class SyslogReceiver:
    def __init__(self, protocol: str, port: int | None = None):
        self.protocol = protocol
        self.port = port or free_port()
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._server = None
        self._connections: set[socket.socket] = set()

    def _keep(self, message: bytes) -> None:
        with self._lock:
            self.messages.append(message.decode())

    def records(self) -> list[dict]:
        with self._lock:
            return [parse(message)["record"] for message in self.messages]

    def start(self) -> "SyslogReceiver":
        receiver = self

        class Datagram(socketserver.BaseRequestHandler):
            def handle(self):
                receiver._keep(self.request[0])

        class Stream(socketserver.BaseRequestHandler):
            def handle(self):
                with receiver._lock:
                    receiver._connections.add(self.request)
                buffered = b""
                try:
                    while chunk := self.request.recv(65536):
                        buffered += chunk
                        while b" " in buffered:
                            length, _, rest = buffered.partition(b" ")
                            if len(rest) < int(length):
                                break
                            receiver._keep(rest[:int(length)])
                            buffered = rest[int(length):]
                except OSError:
                    pass  # closed by stop()
                finally:
                    with receiver._lock:
                        receiver._connections.discard(self.request)

        server_class = socketserver.ThreadingUDPServer if self.protocol == "udp" else socketserver.ThreadingTCPServer
        server_class.allow_reuse_address = True
        server_class.daemon_threads = True
        self._server = server_class(("127.0.0.1", self.port), Datagram if self.protocol == "udp" else Stream)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: no more listening, and every open connection closed (as a crashed collector's would be)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
