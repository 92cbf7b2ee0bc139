"""Functions the engine benchmark instruments; kept apart so their lines are stable."""

from __future__ import annotations

import logging


class Order:
    def __init__(self, user_id: str, symbol: str) -> None:
        self.user_id = user_id
        self.symbol = symbol


def untouched(a: int, b: int) -> int:
    return a + b


def carrier(a: int, b: int) -> int:
    total = a + b  # ACTION LINE
    return total


def six_fields(order: Order, qty: int, price: float, fee: float, venue: str) -> float:
    total = qty * price + fee  # ACTION LINE
    return total


def six_fields_logged(
    logger: logging.Logger, order: Order, qty: int, price: float, fee: float, venue: str
) -> float:
    total = qty * price + fee
    logger.info(
        "user=%s symbol=%s qty=%s price=%s fee=%s venue=%s",
        order.user_id,
        order.symbol,
        qty,
        price,
        fee,
        venue,
    )
    return total


def ten_locals(n: int) -> int:
    a, b, c = n, n + 1, "alpha"
    d = [1, 2, 3]
    e = {"k": 1, "v": 2}
    f = 3.5
    g = Order("u1", "ACME")
    h = None
    i = (1, "x")
    total = n * 2  # ACTION LINE
    return total
