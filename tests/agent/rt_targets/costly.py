"""A target for the resource attacks: ordinary code handed large values.

``# L:name`` marks the lines tests use.
"""

from __future__ import annotations

from decimal import Decimal


def handle(
    n: int,
    text: str,
    blob: bytes,
    items: list[int],
    pairs: tuple[int, ...],
    price: Decimal,
    big: int,
) -> int:
    total = n + len(items)  # L:handle
    return total
