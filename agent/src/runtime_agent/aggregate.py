"""Metric aggregation inside the agent: count, min, max, mean and percentiles.

Hits are folded into a window that is shipped as one event per interval, not
one event per hit. Percentiles come from a bounded uniform reservoir sample
(Algorithm R), so memory stays fixed however hot the line is.

The reservoir is an ``array('d')`` that keeps its slots from one window to the
next: a sample is written into place, not boxed into a float a list holds, so
a hot line allocates nothing after its first window (8 KB per metric, against
~33 KB of boxed floats that a host measuring its own allocations would see
come and go).
"""

from __future__ import annotations

import random
import threading
from array import array
from typing import Any

RESERVOIR_SIZE = 1024


class Aggregate:
    """Thread-safe running statistics over one window of numeric samples."""

    __slots__ = ("_lock", "_random", "count", "maximum", "minimum", "sample", "total")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random()
        self.count = 0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        #: The reservoir; its first ``min(count, RESERVOIR_SIZE)`` slots are this window's.
        self.sample = array("d")

    def add(self, value: float) -> None:
        """Fold one sample in; O(1) and bounded."""
        with self._lock:
            count = self.count = self.count + 1
            self.total += value
            self.minimum = min(self.minimum, value)
            self.maximum = max(self.maximum, value)
            sample = self.sample
            if count <= RESERVOIR_SIZE:
                if count <= len(sample):
                    sample[count - 1] = value
                else:
                    sample.append(value)
            else:
                slot = self._random.randrange(count)
                if slot < RESERVOIR_SIZE:
                    sample[slot] = value

    def take(self) -> dict[str, Any] | None:
        """The window's figures, resetting it; None when nothing was added."""
        with self._lock:
            if not self.count:
                return None
            count, total = self.count, self.total
            low, high = self.minimum, self.maximum
            sample = sorted(self.sample[: min(count, RESERVOIR_SIZE)])
            self.count, self.total = 0, 0.0
            self.minimum, self.maximum = float("inf"), float("-inf")
        return {
            "count": count,
            "min": low,
            "max": high,
            "mean": total / count,
            "p50": _percentile(sample, 0.50),
            "p90": _percentile(sample, 0.90),
            "p99": _percentile(sample, 0.99),
        }


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    rank = max(1, round(q * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]
