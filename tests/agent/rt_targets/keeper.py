"""Code that keeps the dict ``locals()`` returned while actions read its frame.

``# L:name`` marks the lines tests place actions on. Each function takes a
copy of its kept dict right after ``locals()`` (and an edit of its own), and
returns both: the kept dict must come back exactly as the copy.
"""

from __future__ import annotations

from typing import Any

KEPT: list[dict[str, Any]] = []


def keep(mapping: dict[str, Any]) -> None:
    """A keeper: holds what it is given."""
    KEPT.append(mapping)


def keeps_locals(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    first = n + 1
    d = locals()
    d["note"] = "mine"  # the function's own edit, kept too
    before = dict(d)
    second = first * 2  # L:keep_action
    third = second + 1  # L:keep_after
    del third
    return d, before


def passes_locals(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    first = n + 1
    keep(locals())
    before = dict(KEPT[-1])
    second = first * 2  # L:pass_action
    third = second + 1  # L:pass_after
    del third
    return KEPT.pop(), before


def inner(x: int) -> int:
    y = x + 1  # L:inner_action
    return y


def calls_with_kept_locals(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    first = n + 1
    d = locals()
    before = dict(d)
    second = inner(first)  # a snapshot in inner() captures this frame's locals
    del second
    return d, before
