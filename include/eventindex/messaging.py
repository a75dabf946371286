"""Announcements over STOMP (ActiveMQ): small persistent JSON messages, sent with a receipt so that the
producer knows the broker has them before it reports success."""

from __future__ import annotations

import json
import threading
import uuid

import stomp

from .errors import EventIndexError
from .settings import StompTarget


class AnnounceError(EventIndexError):
    pass


class _Receipt(stomp.ConnectionListener):
    def __init__(self, receipt: str):
        self.receipt, self.done, self.error = receipt, threading.Event(), None

    def on_receipt(self, frame):
        if frame.headers.get("receipt-id") == self.receipt:
            self.done.set()

    def on_error(self, frame):
        self.error = frame.headers.get("message") or frame.body or "ERROR frame"
        self.done.set()

    def on_disconnected(self):
        self.error = self.error or "the broker closed the connection"
        self.done.set()


def announce(target: StompTarget, message: dict, timeout: float = 15.0) -> None:
    """Send ``message`` as persistent JSON to ``target.destination`` and wait for the broker's receipt."""
    conn = stomp.Connection12([(target.host, target.port)], reconnect_attempts_max=2, timeout=timeout)
    receipt = f"announce-{uuid.uuid4()}"
    listener = _Receipt(receipt)
    conn.set_listener("receipt", listener)
    try:
        conn.connect(target.user, target.password, wait=True)
        conn.send(target.destination, json.dumps(message), content_type="application/json",
                  headers={"persistent": "true", "receipt": receipt})
        if not listener.done.wait(timeout):
            raise AnnounceError(f"no receipt from stomp://{target.host}:{target.port} within {timeout:.0f} s")
        if listener.error:
            raise AnnounceError(f"broker refused the announcement: {listener.error}")
    except stomp.exception.StompException as exc:
        reason = str(exc) or ("could not connect (is the broker running?)"
                              if isinstance(exc, stomp.exception.ConnectFailedException) else type(exc).__name__)
        raise AnnounceError(f"cannot announce to stomp://{target.host}:{target.port}{target.destination}: "
                            f"{reason}") from exc
    finally:
        if conn.is_connected():
            conn.disconnect()
