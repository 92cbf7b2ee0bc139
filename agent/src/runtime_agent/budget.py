"""The CPU budget: how much of one core the agent's hooks may use.

Hooks measure their own time per action. Every tick the engine hands the
growth of those totals to ``CpuBudget``, which keeps a sliding window (10 s by
default) and says when the hooks went over budget and when they are back
under it. ``RUNTIME_AGENT_CPU_BUDGET`` sets the fraction of one core:
``0.02`` or ``2%`` (the default).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping

DEFAULT_FRACTION = 0.02
DEFAULT_WINDOW = 10.0
ENV_VAR = "RUNTIME_AGENT_CPU_BUDGET"


def parse_fraction(text: str) -> float:
    """``"2%"`` or ``"0.02"`` as a fraction of one core; ValueError with the accepted forms."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_VAR}={text!r} is not a share of one core; write 0.02 or 2%"
        ) from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{ENV_VAR}={text!r} must be above 0 and at most 1 (100%)")
    return value


def fraction_from_env(environ: Mapping[str, str] | None = None) -> float:
    """The configured fraction, or the default when unset or unreadable."""
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not text.strip():
        return DEFAULT_FRACTION
    try:
        return parse_fraction(text)
    except ValueError:
        return DEFAULT_FRACTION


class CpuBudget:
    """Sliding-window accounting of time spent in hooks."""

    def __init__(self, fraction: float = DEFAULT_FRACTION, window: float = DEFAULT_WINDOW) -> None:
        self.fraction = fraction
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()
        self._spent = 0.0

    @property
    def limit(self) -> float:
        """Seconds of hook time allowed per window."""
        return self.fraction * self.window

    def add(self, now: float, seconds: float) -> None:
        """Record hook time spent since the last tick and drop what left the window."""
        if seconds > 0:
            self._samples.append((now, seconds))
            self._spent += seconds
        horizon = now - self.window
        while self._samples and self._samples[0][0] <= horizon:
            self._spent -= self._samples.popleft()[1]
        if not self._samples:
            self._spent = 0.0

    @property
    def spent(self) -> float:
        """Hook seconds within the window."""
        return max(0.0, self._spent)

    def over(self) -> bool:
        """True when the window holds more hook time than the budget allows."""
        return self.spent > self.limit

    def recovered(self) -> bool:
        """True when paused actions may resume: under half the budget (hysteresis)."""
        return self.spent <= self.limit / 2

    def describe(self) -> str:
        """A status message for paused actions."""
        share = 100.0 * self.spent / self.window
        return (
            f"paused: hooks used {share:.1f}% of a core over the last {self.window:g} s, "
            f"above the CPU budget of {100 * self.fraction:g}% ({ENV_VAR}); "
            "resumes by itself when back under it"
        )
