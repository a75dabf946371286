"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the notification tests; and the
``smtp_default`` connection pointed at it, as Airflow reads it from ``AIRFLOW_CONN_SMTP_DEFAULT``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from .ports import free_port


@dataclass
class Received:
    """One mail as the server got it: the envelope's recipients and the parsed message."""

    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The body's text (the HTML part decoded, or the plain one)."""
        part = self.message.get_body(("html", "plain"))
        return part.get_content() if part is not None else ""


@dataclass
class Mailbox:
    """Every mail the server received, in order."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.received.append(Received(list(envelope.rcpt_tos), msg))
        return "250 OK"

    def clear(self) -> None:
        self.received.clear()

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The mails once ``count`` have arrived (or what arrived within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


class SmtpServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host, self.port, self.mailbox = host, free_port(), Mailbox()
        self._controller = None

    def start(self) -> "SmtpServer":
        from aiosmtpd.controller import Controller

        self._controller = Controller(self.mailbox, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def connection_json(self, from_email: str = "eventindex@localhost") -> str:
        """``smtp_default`` in the JSON form of ``AIRFLOW_CONN_*``: plain SMTP, no TLS, no login."""
        return json.dumps({"conn_type": "smtp", "host": self.host, "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                     "timeout": 10, "retry_limit": 1}})


@pytest.fixture(scope="session")
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server, monkeypatch) -> Mailbox:
    """An empty mailbox, and ``smtp_default`` pointed at the loopback server for this test."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_server.connection_json())
    smtp_server.mailbox.clear()
    return smtp_server.mailbox
