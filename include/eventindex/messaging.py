"""Announcements over STOMP (ActiveMQ): small persistent JSON messages, sent with a receipt so that the
producer knows the broker has them before it reports success; and the consumer's side, which records what it
reads before acking it and moves what can never be read to a dead-letter queue, so that no message blocks the
ones behind it."""

from __future__ import annotations

import json
import threading
from collections import deque
import uuid

import stomp

from .errors import AnnounceError, PoisonMessage, TransientError
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
        self.receipts, self.cond, self.error = set(), threading.Condition(), None

    def on_message(self, frame):
        self.frames.append(frame)
        self.arrived.set()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        body = frame.body.decode("utf-8", "replace") if isinstance(frame.body, bytes) else frame.body
        with self.cond:
            self.error = frame.headers.get("message") or body or "ERROR frame"
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.error = self.error or "the broker closed the connection"
            self.cond.notify_all()

    def wait_receipts(self, receipts: set[str], timeout: float) -> str | None:
        """None once the broker has confirmed every one of ``receipts``, else what went wrong."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.error or receipts <= self.receipts, timeout):
                return f"no receipt within {timeout:.0f} s"
            return self.error


def drain(target: StompTarget, handle, max_messages: int = 500, idle_s: float = 2.0,
          dead_letter: str | None = None) -> dict:
    """Consume up to ``max_messages`` from ``target.destination`` and hand each body to ``handle``, one at a time
    (see ``drain_batches`` for the rules; this is it with batches of one). ``handle`` both checks and records, so
    only its PoisonMessage goes to the dead-letter queue: any other error may be a database that is down, and
    leaves the message to be redelivered. Consumers should prefer ``drain_batches`` with a pure ``parse``."""
    return drain_batches(target, lambda handled: None, parse=handle, max_messages=max_messages, idle_s=idle_s,
                         dead_letter=dead_letter, batch_size=1, parse_is_pure=False)


def drain_batches(target: StompTarget, record, parse, max_messages: int = 500, idle_s: float = 2.0,
                  dead_letter: str | None = None, batch_size: int = 500, parse_is_pure: bool = True) -> dict:
    """Consume up to ``max_messages`` from ``target.destination`` in batches: ``parse(body)`` each message, then
    ``record(parsed list)`` once per batch (one transaction), and only then ack the batch's messages.

    Nothing may block the queue for ever: a message that cannot be parsed now can never be (the same body comes
    back on every redelivery), so it is copied to ``dead_letter`` (default ``<destination>.DLQ``) with the original
    body and the reason in the ``eventindex-error`` header, and acked. That is the case for a ``PoisonMessage``
    (the message fails its schema), for a body that is not UTF-8 text, and, when ``parse`` is pure (no I/O: the
    default), for any other exception it raises, a bug met by this one message: the reason then names the
    exception's class. A ``TransientError`` from ``parse``, and any failure of ``record`` (the database is down),
    leave the whole batch unacked, to be redelivered. The copies to the dead-letter queue are sent only after
    ``record`` has succeeded, each confirmed by a broker receipt before the ack: no message is ever in neither
    queue, and a failed ``record`` puts nothing in the dead-letter queue (only a connection lost between the
    copy and the ack can leave a second copy there).

    Acks are cumulative (STOMP ``ack: client``): one per batch. A batch is whatever has arrived (up to
    ``batch_size``) when the previous one is recorded: a trickle is recorded at once, a burst in bulk. Stops after
    ``idle_s`` without a new message. Returns counts: ``handled``, ``poison``, ``batches`` and, when there were
    any, ``poison_reasons``.
    """
    dead_letter = dead_letter or f"{target.destination}.DLQ"
    # bodies as bytes: what goes to the dead-letter queue is exactly what came, even when it is not UTF-8
    conn = stomp.Connection12([(target.host, target.port)], reconnect_attempts_max=2, auto_decode=False)
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
            parsed, dead = [], []
            for frame in frames:
                ok, value = _parse_one(parse, frame.body, parse_is_pure)
                (parsed if ok else dead).append(value if ok else (frame, value))
            if parsed:
                record(parsed)
            _dead_letter(conn, listener, target.destination, dead_letter, dead)
            conn.ack(frames[-1].headers["ack"])
            counts["handled"] += len(parsed)
            counts["poison"] += len(dead)
            counts["batches"] += 1
            if dead:
                counts.setdefault("poison_reasons", []).extend(reason for _, reason in dead)
            done += len(frames)
        conn.disconnect(receipt=f"drain-{uuid.uuid4()}")  # waits, so the last acks have reached the broker
    except stomp.exception.StompException as exc:
        raise AnnounceError(f"cannot consume from stomp://{target.host}:{target.port}{target.destination}: "
                            f"{str(exc) or type(exc).__name__}") from exc
    finally:
        if conn.is_connected():
            conn.disconnect()
    return counts


MAX_REASON = 1000  # characters of the eventindex-error header (ActiveMQ takes headers of up to 10 KiB)


def _parse_one(parse, body: bytes, pure: bool) -> tuple[bool, object]:
    """``(True, parsed)``, or ``(False, one-line reason)`` for a message that belongs in the dead-letter queue."""
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as exc:
        return False, f"body is not UTF-8 text ({exc.reason} at byte {exc.start})"
    try:
        return True, parse(text)
    except PoisonMessage as exc:
        return False, _one_line(str(exc))
    except TransientError:
        raise
    except Exception as exc:
        if not pure:
            raise
        return False, _one_line(f"{type(exc).__name__} while parsing (a bug met by this message): {exc}")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _dead_letter(conn, listener: _Collector, source: str, dead_letter: str, dead: list, timeout: float = 30.0):
    """Copy each ``(frame, reason)`` to ``dead_letter``, the body untouched, and wait for the broker's receipts."""
    receipts = set()
    for frame, reason in dead:
        receipt = f"dlq-{uuid.uuid4()}"
        receipts.add(receipt)
        headers = {"persistent": "true", "eventindex-error": reason, "eventindex-original-destination": source,
                   "eventindex-original-message-id": frame.headers.get("message-id", ""), "receipt": receipt}
        conn.send(dead_letter, frame.body, content_type=frame.headers.get("content-type"), headers=headers)
    if receipts:
        problem = listener.wait_receipts(receipts, timeout)
        if problem:
            raise AnnounceError(f"cannot move {len(dead)} poison message(s) to {dead_letter}: {problem}")
