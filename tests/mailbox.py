"""A real SMTP server for tests: aiosmtpd on a free loopback port, keeping every message."""
from __future__ import annotations

import re
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from ops.broker import free_port
from tests.harness import eventually

LINK = re.compile(r"https?://\S+#token=([A-Za-z0-9_-]+)")


class _Collector:
    def __init__(self, mailbox: "Mailbox"):
        self.mailbox = mailbox

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.mailbox.lock:
            for recipient in envelope.rcpt_tos:
                self.mailbox.received.append((recipient.lower(), message))
        return "250 Message accepted for delivery"


class Mailbox:
    """`start()`/`stop()` keep the same port, so a test can take the server away and back."""

    def __init__(self, port: int | None = None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.received: list[tuple[str, EmailMessage]] = []
        self._controller: Controller | None = None

    def start(self) -> "Mailbox":
        self._controller = Controller(_Collector(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def smtp_settings(self, **overrides) -> dict:
        """The body of PUT /api/v1/settings/smtp that points Gatehouse at this server."""
        return {"host": self.host, "port": self.port, "tls_mode": "none", "from_address": "noreply@example.com",
                **overrides}

    def messages_to(self, recipient: str) -> list[EmailMessage]:
        with self.lock:
            return [message for to, message in self.received if to == recipient.lower()]

    def wait_for(self, recipient: str, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
        """The first `count` messages to `recipient`, waiting for them to arrive."""
        found = eventually(lambda: (messages := self.messages_to(recipient)) and len(messages) >= count and messages,
                           timeout, 0.1, f"{count} mail(s) to {recipient}")
        return found[:count]

    @staticmethod
    def link(message: EmailMessage) -> tuple[str, str]:
        """(the link in the body, its token)."""
        match = LINK.search(message.get_content())
        assert match, f"no link in mail:\n{message.get_content()}"
        return match.group(0), match.group(1)
