"""Announcements over STOMP (ActiveMQ): small persistent JSON messages, sent with a receipt so that the
producer knows the broker has them before it reports success."""

from __future__ import annotations

import json
import threading
from collections import deque
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
        self.frames, self.arrived = deque(), threading.Event()

    def on_message(self, frame):
        self.frames.append(frame)
        self.arrived.set()


def drain(target: StompTarget, handle, max_messages: int = 500, idle_s: float = 2.0,
          dead_letter: str | None = None) -> dict:
    """Consume up to ``max_messages`` from ``target.destination`` and hand each body to ``handle``, one at a time
    (see ``drain_batches`` for the rules; this is it with batches of one)."""
    return drain_batches(target, lambda handled: None, parse=handle,
                         max_messages=max_messages, idle_s=idle_s, dead_letter=dead_letter, batch_size=1)


def drain_batches(target: StompTarget, record, parse, max_messages: int = 500, idle_s: float = 2.0,
                  dead_letter: str | None = None, batch_size: int = 500) -> dict:
    """Consume up to ``max_messages`` from ``target.destination`` in batches: ``parse(body)`` each message, then
    ``record(parsed list)`` once per batch (one transaction), and only then ack the batch's messages.

    A message whose ``parse`` raises PoisonMessage is copied to ``dead_letter`` (default ``<destination>.DLQ``) and
    acked. Any other error leaves the batch unacked, so the broker redelivers it. Acks are cumulative (STOMP
    ``ack: client``): one per batch. A batch is whatever has arrived
    (up to ``batch_size``) when the previous one is recorded: a trickle is recorded at once, a burst in bulk.
    Stops after ``idle_s`` without a new message.
    """
    dead_letter = dead_letter or f"{target.destination}.DLQ"
    conn = stomp.Connection12([(target.host, target.port)], reconnect_attempts_max=2)
    listener = _Collector()
    conn.set_listener("drain", listener)
    counts = {"handled": 0, "poison": 0, "batches": 0}
    try:
        conn.connect(target.user, target.password, wait=True)
        # cumulative acks: one ACK frame per batch acknowledges it and everything delivered before it
        conn.subscribe(target.destination, id="eventindex-drain", ack="client",
                       headers={"activemq.prefetchSize": str(max(1, min(max_messages, 1000)))})
        done = 0
        while done < max_messages:
            if not listener.frames:
                listener.arrived.clear()
                if not listener.frames and not listener.arrived.wait(idle_s):
                    break
                continue
            frames = [listener.frames.popleft() for _ in range(min(len(listener.frames), batch_size,
                                                                   max_messages - done))]
            parsed = []
            for frame in frames:
                try:
                    parsed.append(parse(frame.body))
                except PoisonMessage as exc:
                    conn.send(dead_letter, frame.body,
                              headers={"persistent": "true", "eventindex-error": str(exc)[:200]})
                    counts["poison"] += 1
                    counts.setdefault("poison_reasons", []).append(str(exc))
            if parsed:
                record(parsed)
            conn.ack(frames[-1].headers["ack"])
            counts["handled"] += len(parsed)
            counts["batches"] += 1
            done += len(frames)
        conn.disconnect(receipt=f"drain-{uuid.uuid4()}")  # waits, so the last acks have reached the broker
    except stomp.exception.StompException as exc:
        raise AnnounceError(f"cannot consume from stomp://{target.host}:{target.port}{target.destination}: "
                            f"{str(exc) or type(exc).__name__}") from exc
    finally:
        if conn.is_connected():
            conn.disconnect()
    return counts
