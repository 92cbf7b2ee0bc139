"""Targets for the clock and borrowed-name tests; ``# L:name`` marks the lines
they use. No closure variables: the settrace core refuses those before 3.13."""

from __future__ import annotations


def work(n: int) -> int:
    total = n * 2  # L:work_total
    total += 1  # L:work_more
    return total


def risky(n: int) -> int:
    if n < 0:
        raise ValueError(n)  # the host's own exception, seen by the host
    return n
