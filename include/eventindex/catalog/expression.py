"""Trigger expressions: trigger names combined with ``and``, ``or``, ``not`` and parentheses (``&``, ``|``, ``!``
also work), as in ``HLT_e26_lhtight_ivarloose_L1EM22VHI or (HLT_mu26_ivarmedium_L1MU14FCH and not L1_J100)``.

An expression is parsed once into a small tree of tuples, ``("name", n)``, ``("not", t)``, ``("and", [t, ...])``,
``("or", [t, ...])``; each backend evaluates the tree with its own leaves (SQL clauses, boolean arrays) through
``evaluate``. ``canonical`` gives the text a Selection keeps, so equal expressions compare equal.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

from ..errors import BadSelection

NAME_RE = re.compile(r"^(L1|HLT)_[A-Za-z0-9_.\-]{1,120}$")
_TOKEN = re.compile(r"\s*(?:(\()|(\))|(&&?|\|\|?|!)|([A-Za-z0-9_.\-]+))")
_WORDS = {"and": "and", "or": "or", "not": "not", "&": "and", "&&": "and", "|": "or", "||": "or", "!": "not"}
MAX_LENGTH = 4000
MAX_DEPTH = 32  # nested parentheses and 'not's: deeper is no selection anybody writes, and would exhaust the stack

T = TypeVar("T")


def is_name(text: str) -> bool:
    return bool(NAME_RE.match(text))


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, position): kind is '(', ')', 'op' (and/or/not) or 'name'."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise BadSelection(f"trigger expression {text!r}: unexpected {text[pos:].strip()[:20]!r} at position "
                               f"{pos + len(text[pos:]) - len(text[pos:].lstrip())}")
        start = m.start(m.lastindex)
        word = m.group(m.lastindex)
        if m.group(1):
            out.append(("(", word, start))
        elif m.group(2):
            out.append((")", word, start))
        elif word.lower() in _WORDS:
            out.append(("op", _WORDS[word.lower()], start))
        else:
            if not is_name(word):
                raise BadSelection(f"trigger {word!r} is not an L1_ item or HLT_ chain name (in {text!r})")
            out.append(("name", word, start))
        pos = m.end()
    return out


def parse(text: str):
    """The tree of an expression; BadSelection naming what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise BadSelection(f"trigger expression {text!r} is empty")
    if len(text) > MAX_LENGTH:
        raise BadSelection(f"trigger expression is {len(text)} characters long; at most {MAX_LENGTH}")
    tokens = _tokens(text)
    pos = depth = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None, len(text))

    def fail(expected: str):
        kind, value, at = peek()
        found = repr(value) if kind else "the end"
        raise BadSelection(f"trigger expression {text!r}: expected {expected} at position {at}, found {found}")

    def either():
        nonlocal pos
        parts = [both()]
        while peek()[:2] == ("op", "or"):
            pos += 1
            parts.append(both())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def both():
        nonlocal pos
        parts = [single()]
        while peek()[:2] == ("op", "and"):
            pos += 1
            parts.append(single())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def nested(parse_inner):
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise BadSelection(f"trigger expression nests parentheses and 'not' deeper than {MAX_DEPTH} levels "
                               f"(at position {peek()[2]})")
        try:
            return parse_inner()
        finally:
            depth -= 1

    def single():
        nonlocal pos
        kind, value, _ = peek()
        if kind == "op" and value == "not":
            pos += 1
            return ("not", nested(single))
        if kind == "(":
            pos += 1
            inner = nested(either)
            if peek()[0] != ")":
                fail("')'")
            pos += 1
            return inner
        if kind == "name":
            pos += 1
            return ("name", value)
        fail("a trigger name, 'not' or '('")

    tree = either()
    if pos != len(tokens):
        fail("'and', 'or' or the end")
    return tree


def names(tree) -> list[str]:
    """The trigger names an expression uses, in order of appearance, once each."""
    if tree[0] == "name":
        return [tree[1]]
    if tree[0] == "not":
        return names(tree[1])
    return list(dict.fromkeys(n for t in tree[1] for n in names(t)))


def canonical(tree) -> str:
    """The expression as text: names bare, ``not x``, groups in parentheses."""
    if tree[0] == "name":
        return tree[1]
    if tree[0] == "not":
        inner = canonical(tree[1])
        return f"not {inner}" if tree[1][0] in ("name", "not") else f"not ({inner})"
    return f" {tree[0]} ".join(canonical(t) if t[0] in ("name", "not") else f"({canonical(t)})" for t in tree[1])


def evaluate(tree, leaf: Callable[[str], T], both: Callable[[list[T]], T], either: Callable[[list[T]], T],
             negate: Callable[[T], T]) -> T:
    """Fold the tree: ``leaf(name)`` for names, then ``both``/``either`` over groups and ``negate`` for ``not``."""
    kind = tree[0]
    if kind == "name":
        return leaf(tree[1])
    if kind == "not":
        return negate(evaluate(tree[1], leaf, both, either, negate))
    parts = [evaluate(t, leaf, both, either, negate) for t in tree[1]]
    return both(parts) if kind == "and" else either(parts)


def sql(tree, leaf: Callable[[str], tuple[str, list]]) -> tuple[str, list]:
    """SQL for the expression from the SQL of each name (bound parameters kept in text order)."""
    def join(op):
        return lambda parts: ("(" + f" {op} ".join(p[0] for p in parts) + ")", [v for p in parts for v in p[1]])

    def name(n):
        text, params = leaf(n)
        return f"({text})", params

    return evaluate(tree, name, join("AND"), join("OR"), lambda p: (f"(NOT COALESCE({p[0]}, FALSE))", p[1]))
