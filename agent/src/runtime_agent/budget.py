"""The CPU budget: how much of one core the agent's hooks may use.

Every hit of every action is timed (or, for a counter with no condition,
charged a fixed bound of its cost), and every tick the engine hands each
action's growth to ``CpuBudget``. It keeps a sliding window (10 s by
default) per action and names the actions to pause when the window holds
more than the budget: the most expensive first, until what is left is under
half the budget. A paused action stays paused until someone resumes or
replaces it; its cost leaves the window then (``forget``).

Between ticks a hook pauses its own action when it goes past the room left
in the window (``room``), so one tick cannot overspend the budget by more
than one hit. ``Engine(cpu_budget=...)`` or ``RUNTIME_AGENT_CPU_BUDGET`` sets
the fraction of one core: above 0 and at most 1, ``0.02`` or ``2%`` (the
default). A bad argument raises ``AgentError``; a bad variable is ignored
with a warning on the ``runtime_agent.budget`` logger (the agent starts with
the default rather than not at all, as with the other variables).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping

from runtime_agent.errors import AgentError

DEFAULT_FRACTION = 0.02
#: At 1.0 the hooks may take a whole core: the most a budget can allow.
MAX_FRACTION = 1.0
DEFAULT_WINDOW = 10.0
_SAMPLES_PER_WINDOW = 50
ENV_VAR = "RUNTIME_AGENT_CPU_BUDGET"

_LOG = logging.getLogger("runtime_agent.budget")


def _in_range(value: float) -> bool:
    return 0.0 < value <= MAX_FRACTION  # False for NaN and infinities


def check_fraction(value: object) -> float:
    """``Engine(cpu_budget=value)`` as a fraction of one core; AgentError unless a
    number above 0 and at most 1 (a value above 1 would switch the budget off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _in_range(value):
        raise AgentError(
            f"cpu_budget must be a share of one core above 0 and at most {MAX_FRACTION:g} "
            f"(0.02 is 2%), or None for {ENV_VAR} or the default; got {value!r}"
        )
    return float(value)


def parse_fraction(text: str) -> float:
    """``"2%"`` or ``"0.02"`` as a fraction of one core; ValueError with the accepted forms."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_VAR}={text!r} is not a share of one core; write 0.02 or 2%"
        ) from None
    if not _in_range(value):
        raise ValueError(f"{ENV_VAR}={text!r} must be above 0 and at most 1 (100%)")
    return value


def fraction_from_env(environ: Mapping[str, str] | None = None) -> float:
    """The configured fraction, or the default when unset; unreadable or out of
    range, the default with a warning that says what to write."""
    text = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not text.strip():
        return DEFAULT_FRACTION
    try:
        return parse_fraction(text)
    except ValueError as exc:
        _LOG.warning("%s; using the default %g%%", exc, 100 * DEFAULT_FRACTION)
        return DEFAULT_FRACTION


class _Window:
    """One action's hook time within the window."""

    __slots__ = ("samples", "spent")

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque()
        self.spent = 0.0


class CpuBudget:
    """Sliding-window accounting of time spent in hooks, per action."""

    def __init__(self, fraction: float = DEFAULT_FRACTION, window: float = DEFAULT_WINDOW) -> None:
        self.fraction = fraction
        self.window = window
        self._actions: dict[str, _Window] = {}

    @property
    def limit(self) -> float:
        """Seconds of hook time allowed per window."""
        return self.fraction * self.window

    def add(self, now: float, costs: Mapping[str, float]) -> None:
        """Record each action's hook seconds since the last tick; drop what left the window."""
        for action_id, seconds in costs.items():
            if seconds > 0:
                w = self._actions.get(action_id)
                if w is None:
                    w = self._actions[action_id] = _Window()
                samples = w.samples
                # Ticks closer than a fiftieth of the window share one sample: at
                # most 50 per action however often the engine is drained.
                if samples and now - samples[-1][0] < self.window / _SAMPLES_PER_WINDOW:
                    samples[-1] = (samples[-1][0], samples[-1][1] + seconds)
                else:
                    samples.append((now, seconds))
                w.spent += seconds
        horizon = now - self.window
        for action_id, w in list(self._actions.items()):
            while w.samples and w.samples[0][0] <= horizon:
                w.spent -= w.samples.popleft()[1]
            if not w.samples:
                del self._actions[action_id]

    @property
    def spent(self) -> float:
        """Hook seconds within the window, over the actions still counted."""
        return max(0.0, sum(w.spent for w in self._actions.values()))

    def cost_of(self, action_id: str) -> float:
        """One action's hook seconds within the window."""
        w = self._actions.get(action_id)
        return max(0.0, w.spent) if w is not None else 0.0

    def room(self) -> float:
        """Seconds the hooks may still spend in this window."""
        return self.limit - self.spent

    def over(self) -> bool:
        """True when the window holds more hook time than the budget allows."""
        return self.spent > self.limit

    def culprits(self) -> list[tuple[str, float]]:
        """The actions to pause, with their cost in the window: none within the
        budget; else the most expensive first, until the rest is under half of it."""
        total = self.spent
        if total <= self.limit:
            return []
        out = []
        ranked = sorted(self._actions.items(), key=lambda item: item[1].spent, reverse=True)
        for action_id, w in ranked:
            if total <= self.limit / 2:
                break
            out.append((action_id, max(0.0, w.spent)))
            total -= w.spent
        return out

    def forget(self, action_id: str) -> None:
        """Stop counting an action (paused, resumed afresh or gone)."""
        self._actions.pop(action_id, None)

    def describe(self, seconds: float) -> str:
        """The status message of an action paused for costing ``seconds`` in the window."""
        return (
            f"paused: cost {seconds * 1000:.0f} ms of CPU in the last {self.window:g} s, over "
            f"the {100 * self.fraction:g}% budget ({self.limit * 1000:.0f} ms, {ENV_VAR}); it "
            "stays paused: resume it (Engine.resume) or replace it (remove it and place a "
            "cheaper one)"
        )
