"""Waiting for an outcome: poll until it holds, with a generous deadline, never a fixed sleep tied to speed."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 30.0, step: float = 0.05, what: str = "condition"):
    """``predicate()``'s first truthy value; TimeoutError naming ``what`` if none within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
