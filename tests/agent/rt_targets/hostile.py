"""Lines test_hostile_objects places actions on; ``# L:name`` marks them.

The functions read no globals, so a copy of one running with a dict
subclass as ``__globals__`` runs none of that dict's code itself."""

from __future__ import annotations


def hold(obj: object) -> object:
    held = obj  # L:hold
    return held


def body(a: int) -> int:
    b = a + 1  # L:body
    return b
