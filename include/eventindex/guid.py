"""File GUIDs as POOL writes them (upper-case UUID text) and as the index stores them (16 bytes)."""

from __future__ import annotations

import re
import uuid

import numpy as np

GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def format_guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(raw))).upper()


def guid_bytes(text: str) -> bytes:
    """Accepts any UUID spelling (dashes or not, any case), as Rucio does."""
    return uuid.UUID(text).bytes


def normalize_guid(text: str) -> str:
    return format_guid(guid_bytes(text))


def guid_in_name(name: str) -> str | None:
    found = GUID_RE.findall(name)
    return found[-1].upper() if found else None


def new_guids(rng: np.random.Generator, n: int) -> list[str]:
    """Seeded version-4 UUIDs, so a simulated world is the same for the same seed."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return [format_guid(row.tobytes()) for row in raw]
