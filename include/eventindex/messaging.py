"""Announcements over STOMP (ActiveMQ): small persistent JSON messages, sent with a receipt so that the
producer knows the broker has them before it reports success."""

from __future__ import annotations

import json
import threading
import uuid

import stomp

from .errors import AnnounceError, PoisonMessage
from .settings import StompTarget


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


class _Collector(stomp.ConnectionListener):
    def __init__(self):
        self.frames, self.arrived = [], threading.Event()

    def on_message(self, frame):
        self.frames.append(frame)
        self.arrived.set()


def drain(target: StompTarget, handle, max_messages: int = 500, idle_s: float = 2.0,
          dead_letter: str | None = None) -> dict:
    """Consume up to ``max_messages`` from ``target.destination`` and hand each body to ``handle``.

    A message is acked only after ``handle`` returns (the work is recorded); if ``handle`` raises PoisonMessage the
    message is copied to ``dead_letter`` (default ``<destination>.DLQ``) and then acked. Any other error leaves the
    message unacked, so the broker redelivers it. Stops after ``idle_s`` without a new message.
    """
    dead_letter = dead_letter or f"{target.destination}.DLQ"
    conn = stomp.Connection12([(target.host, target.port)], reconnect_attempts_max=2)
    listener = _Collector()
    conn.set_listener("drain", listener)
    counts = {"handled": 0, "poison": 0}
    try:
        conn.connect(target.user, target.password, wait=True)
        conn.subscribe(target.destination, id="eventindex-drain", ack="client-individual",
                       headers={"activemq.prefetchSize": str(min(max_messages, 500))})
        done = 0
        while done < max_messages:
            if not listener.frames:
                listener.arrived.clear()
                if not listener.frames and not listener.arrived.wait(idle_s):
                    break
                continue
            frame = listener.frames.pop(0)
            try:
                handle(frame.body)
                counts["handled"] += 1
            except PoisonMessage as exc:
                conn.send(dead_letter, frame.body, headers={"persistent": "true", "eventindex-error": str(exc)[:200]})
                counts["poison"] += 1
                counts.setdefault("poison_reasons", []).append(str(exc))
            conn.ack(frame.headers["ack"])
            done += 1
        conn.disconnect(receipt=f"drain-{uuid.uuid4()}")  # waits, so the last acks have reached the broker
    except stomp.exception.StompException as exc:
        raise AnnounceError(f"cannot consume from stomp://{target.host}:{target.port}{target.destination}: "
                            f"{str(exc) or type(exc).__name__}") from exc
    finally:
        if conn.is_connected():
            conn.disconnect()
    return counts
