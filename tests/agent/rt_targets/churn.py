"""A target for the churn stress: a hot function whose lines carry actions
that stay, while other actions come and go on its other lines and on a
second function. No closure variables, so every core (settrace included)
can run actions here.

``# L:name`` marks the lines tests use.
"""

from __future__ import annotations


def work(n: int) -> int:
    total = n + 1  # L:stay
    total += 2  # L:churn_a
    if total > 3:
        total -= 1  # L:churn_b
    return total  # L:churn_c


def other(n: int) -> int:
    doubled = n * 2  # L:other
    return doubled + 1
