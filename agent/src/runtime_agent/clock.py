"""The agent's own clocks, bound when this module is imported.

Expiry, rate limits, the CPU budget, housekeeping, the outbox's rate window,
event timestamps and channel deadlines read these three, never ``time.xxx``
at call time. The host's tests freeze and move time, and a borrowed clock
moves with them: under freezegun every action with a 7-day TTL expired
after one call, while one with a 1 s TTL would never expire. What each
library does, and why the clocks here are out of its reach:

- ``unittest.mock.patch("time.monotonic")`` (or ``del time.time``) replaces
  an attribute of the ``time`` module: the functions here were taken before.
- freezegun's ``freeze_time`` replaces ``time.time``, ``time.monotonic`` and
  ``time.perf_counter`` on the ``time`` module *and* every attribute of every
  loaded module that *is* one of them (found by id). So no attribute of ours
  is a clock builtin: each clock is a ``functools.partial`` around one, called
  at C speed and invisible to that scan.
- time-machine's ``travel`` swaps the C function behind ``time.time`` (and
  ``time.clock_gettime(CLOCK_REALTIME)``), so every reference to it travels;
  versions 2.13 to 2.19 did the same to ``time.monotonic``. So ``monotonic``
  reads ``clock_gettime(CLOCK_MONOTONIC)`` where it exists (time-machine
  passes other clock ids through), and ``wall`` is derived from it: an offset
  from the system clock, taken again at most once a second, and never while
  a time-machine travel is on (read from its stack, running none of its code).

``wall`` follows the system clock within a second of a step (NTP, a resumed
laptop) outside such a travel; during one it keeps its last offset (imported
during one, it starts from the travelled time and is right once it ends).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from runtime_agent import introspect

#: Seconds, monotonic; for deadlines, expiry and rate windows.
monotonic: Final[Callable[[], float]] = (
    functools.partial(time.clock_gettime, time.CLOCK_MONOTONIC)
    if hasattr(time, "clock_gettime") and hasattr(time, "CLOCK_MONOTONIC")
    else functools.partial(time.monotonic)
)
#: Seconds, the highest resolution; for timing hooks (the CPU budget).
perf: Final[Callable[[], float]] = functools.partial(time.perf_counter)

#: The system clock, read only to take ``wall``'s offset (time-machine may move it).
_system: Final[Callable[[], float]] = functools.partial(time.time)
_MODULES: Final[dict[str, Any]] = sys.modules
#: How often ``wall`` takes its offset from the system clock again.
RESYNC_SECONDS: Final = 1.0
#: The longest two monotonic reads around a system clock read may be apart
#: for their midpoint to be trusted (a thread preempted in between is not).
_READ_SLACK: Final = 0.001
#: Where time-machine keeps its travels: 3.x, then 2.x.
_TRAVEL_STACKS: Final = ("traveller_stack", "coordinates_stack")


def _travelling() -> bool:
    """Whether time-machine is moving the system clock now (True when unsure)."""
    module = _MODULES.get("time_machine")
    if module is None:
        return "_time_machine" in _MODULES  # its C half alone: cannot tell
    namespace = introspect.loaded_namespace(module)
    if namespace is None:
        return True  # still importing
    for name in _TRAVEL_STACKS:
        stack = introspect.scan_for(namespace, name, 10_000)
        if type(stack) is list:
            return len(stack) > 0
    return True  # a version that keeps its travels elsewhere: trust it never


def _offset() -> float | None:
    """The system clock minus ``monotonic``, now; None when this thread was
    held up between the reads (the offset would be off by as much)."""
    before = monotonic()
    system = _system()
    after = monotonic()
    if after - before > _READ_SLACK:
        return None
    return system - (before + after) / 2


def _first_offset() -> float:
    for _ in range(10):
        offset = _offset()
        if offset is not None:
            return offset
    return _system() - monotonic()


#: (system clock minus monotonic, monotonic when that was taken): one tuple,
#: so a thread never pairs one offset with another's time.
_anchor: tuple[float, float] = (_first_offset(), monotonic())


def wall() -> float:
    """Seconds since the epoch (like ``time.time()``) for timestamps and hub deadlines."""
    global _anchor
    now = monotonic()
    offset, taken = _anchor
    if now - taken >= RESYNC_SECONDS:
        try:
            fresh = None if _travelling() else _offset()
        except Exception:  # keep the last offset rather than fail a hook
            fresh = None
        if fresh is not None:
            offset = fresh
        _anchor = (offset, now)
    return offset + now


__all__ = ["RESYNC_SECONDS", "monotonic", "perf", "wall"]
