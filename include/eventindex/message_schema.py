"""What every message the catalogue consumes goes through before its own schema: a size cap, strict JSON, and the
findings of its pydantic model turned into one line that names the field.

A message that fails here can never succeed, however often it is redelivered: it is a ``PoisonMessage``, which the
drain moves to the dead-letter queue with this line as its reason. The models are strict (pydantic's strict mode):
``1.7``, ``true`` or ``"12"`` are not the integer 1, and every integer fits the column it is stored in, so that
what a schema accepts the metadata DB can store (a message the DB refuses would block the queue as surely as one
the parser chokes on).
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, ValidationError

from .errors import PoisonMessage

MAX_BODY_BYTES = 1 << 20  # 1 MiB: an announcement of a job of many thousand files is well under 1 MiB

INT32_MAX = 2**31 - 1  # SQL INTEGER (PostgreSQL int4)
INT64_MAX = 2**63 - 1  # SQL BIGINT

Count32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
Count64 = Annotated[int, Field(ge=0, le=INT64_MAX)]

_MAX_FINDINGS = 3


def load_json(body: str | bytes, what: str) -> object:
    """``body`` as JSON (RFC 8259: no NaN or Infinity), refused before parsing when over ``MAX_BODY_BYTES``."""
    size = _size(body)
    if size > MAX_BODY_BYTES:
        raise PoisonMessage(f"{what}: body of {size} bytes is over the {MAX_BODY_BYTES}-byte cap")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise PoisonMessage(f"{what}: not JSON (nested too deeply)") from None
    except (ValueError, TypeError) as exc:
        raise PoisonMessage(f"{what}: not JSON ({_one_line(str(exc), 120)})") from None


def findings(exc: ValidationError, limit: int = _MAX_FINDINGS) -> str:
    """pydantic's errors as ``field: what is wrong (got value)``, ``; ``-separated, the first ``limit`` of them."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        loc = [_short(_loc_part(p), 40) for p in err["loc"]]
        where = ".".join(p for p in loc if p != "[key]")
        if loc and loc[-1] == "[key]":
            where += " (a key)"
        msg = _one_line(err["msg"].removeprefix("Value error, "), 200)
        if not where:  # a check across fields: its message names them
            parts.append(msg)
            continue
        shown = err["type"] not in ("missing", "value_error")  # our own checks' messages show what they got
        got = f" (got {_short(repr(err['input']), 60)})" if shown else ""
        parts.append(f"{where}: {msg}{got}")
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def excerpt(value: object, limit: int = 60) -> str:
    """A short ``repr`` of a value for a one-line reason."""
    return _short(repr(value), limit)


def json_kind(value: object) -> str:
    """The JSON name of a parsed value's type, for a reason an operator reads."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _size(body) -> int:
    if isinstance(body, str):
        return len(body.encode("utf-8", "surrogatepass"))
    return len(body) if isinstance(body, (bytes, bytearray, memoryview)) else 0


def _loc_part(part) -> str:
    """A field name as is; a dict key that is not plain printable text (blanks, line breaks) as its repr."""
    text = str(part)
    return text if text and text.isprintable() and not any(c.isspace() for c in text) else repr(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _one_line(text: str, limit: int) -> str:
    return _short(" ".join(text.split()), limit)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
