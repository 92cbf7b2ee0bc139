"""sys.monitoring backend (CPython 3.12+).

Events are enabled only as *local* events on the code objects that carry
actions, so the rest of the program runs at full speed. A line callback that
finds nothing live returns DISABLE, which switches that one location off.

Re-arming without a gap
-----------------------
A location switched off by DISABLE comes back only when its event is removed
from the code object and added again (or on the global ``restart_events()``,
which is never called here: it would re-arm the locations that coverage.py or
a debugger switched off for themselves); setting the same event set again does
nothing. So the engine's re-arm clears LINE and sets it again, and does both
in one call from C (``map`` over ``set_local_events``): no bytecode runs in
between, so no other thread can run there and miss an event (the interpreter
switches threads only between bytecodes of Python code; a free-threaded build
runs threads in parallel and has no such guarantee). Function events
(PY_START, PY_RETURN) are set to their new value directly.

The line table is never changed in place: a new one is built and the line
callback's closure cell is rebound to it, so a thread sees the old table or
the new one, never a half-built one. A callback that found nothing checks,
before it returns DISABLE, that the table it read is still the current one:
if the engine replaced it meanwhile the line may be wanted, so it stays on.

Tool ids
--------
A tool id is claimed when the first action needs one and released (events
off, callbacks cleared, id freed) when the last goes, so an engine with no
actions holds none. Id 4 first: no well-known tool uses it (0 debuggers,
1 coverage.py, 2 profilers, 3 Hypothesis's explain phase, 5 optimizers).
When every id is taken by other tools, the action fails with a message naming
them and the status says so; no other tool's id is ever taken.

Exits by exception (PY_UNWIND) cannot be a local event: while a function-level
action exists we enable PY_UNWIND globally, and its callback returns at once
for code objects we do not watch.

Reading ``frame.f_locals`` here writes nothing back: sys.monitoring calls
callbacks directly, without the trace trampoline that does on 3.11 and 3.12
(see ``settrace``); checked by the closure counter test on 3.12 and 3.13.

Callbacks never let an ``Exception`` out into the host (a failure in an
action's code, or a RecursionError from calling it near the recursion limit:
the hit is skipped). They bind everything they call when they are built, so a
host that patches ``sys._getframe`` or a builtin changes nothing here.

Limit, which no Python code can lift: a callback is a Python function, run in
a new frame. At the host's very deepest working depth CPython cannot enter it,
and a callback that fails is raised at the monitored instruction (in CPython's
``call_one_instrument``), so the host's RecursionError comes one level earlier
than without the agent, from the host's own line, and inside an ``except``
block it replaces the exception the host was handling. Raising the recursion
limit to make room would move the host's own RecursionError everywhere else;
only a callback in native code could run without a frame. The bytecode core
avoids it by guarding its calls in the host frame.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any

from runtime_agent.backends.base import (
    Backend,
    BackendError,
    CodePath,
    FrameCallback,
    LineCallback,
    wants_frame,
)

#: The order in which tool ids are tried: 4, which no well-known tool uses;
#: then 5 (optimizers, rare on CPython), 2 (profilers), 3 (Hypothesis's
#: explain phase, in test runs); 0 (debuggers) and 1 (coverage.py) last, the
#: tools most likely to start after us and need their own id.
_PREFERRED_TOOL_IDS = (4, 5, 2, 3, 0, 1)
_TOOL_IDS = range(6)
TOOL_NAME = "runtime-agent"
_IDLE = "monitoring (no tool id held: claimed when an action needs one)"

# Bound at import: a host that patches builtins or deletes sys._getframe
# changes nothing here, also for callbacks built later (a tool id is claimed
# at the first action).
_map = map
_deque = deque
_getframe = sys._getframe


def _taken(mon: Any) -> str:
    return ", ".join(f"{i} {mon.get_tool(i)}" for i in _TOOL_IDS)


class MonitoringBackend(Backend):
    """Local ``sys.monitoring`` events on the code objects that carry actions."""

    name = "monitoring"

    def __init__(self) -> None:
        mon = getattr(sys, "monitoring", None)
        if mon is None:
            raise BackendError("sys.monitoring needs Python 3.12 or newer")
        if all(mon.get_tool(i) is not None for i in _TOOL_IDS):
            # Nothing free now: the chooser falls back to settrace, visibly.
            raise BackendError(f"every sys.monitoring tool id is taken ({_taken(mon)})")
        self._mon = mon
        self._tool: int | None = None
        self.status = _IDLE
        ev = mon.events
        self._disable = mon.DISABLE
        self._line_event = ev.LINE
        self._func_events = ev.PY_START | ev.PY_RETURN
        # id(code) -> {line: callback}; values keep their code alive via _codes.
        self._lines: dict[int, dict[int, LineCallback]] = {}
        self._funcs: dict[int, tuple[FrameCallback, FrameCallback]] = {}
        self._codes: dict[int, CodeType] = {}
        self._events: dict[int, int] = {}  # id(code) -> local events set now
        self._unwind = False
        self._on_line, self._publish_lines = self._make_line_callback()
        self._on_start, self._on_return, self._on_unwind = self._make_function_callbacks()

    # -- the tool id: held only while something is instrumented ------------------

    def _claim(self) -> int:
        """Our tool id, claimed (and the callbacks registered) on first need."""
        tool = self._tool
        if tool is not None:
            return tool
        mon = self._mon
        for tool in _PREFERRED_TOOL_IDS:
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, TOOL_NAME)
                break
        else:
            taken = _taken(mon)
            self.status = f"monitoring: every sys.monitoring tool id is taken ({taken})"
            raise BackendError(
                f"every sys.monitoring tool id is taken by other tools ({taken}); "
                "the agent takes none of theirs: free one, then place the action again"
            )
        ev = mon.events
        mon.register_callback(tool, ev.LINE, self._on_line)
        mon.register_callback(tool, ev.PY_START, self._on_start)
        mon.register_callback(tool, ev.PY_RETURN, self._on_return)
        mon.register_callback(tool, ev.PY_UNWIND, self._on_unwind)
        self._tool = tool
        self.status = f"monitoring (tool id {tool})"
        return tool

    def _release_if_idle(self) -> None:
        """Hand the tool id back once nothing is instrumented."""
        tool = self._tool
        if tool is None or self._codes or self._unwind:
            return
        mon = self._mon
        mon.set_events(tool, 0)
        for event in (mon.events.LINE, mon.events.PY_START, mon.events.PY_RETURN):
            mon.register_callback(tool, event, None)
        mon.register_callback(tool, mon.events.PY_UNWIND, None)
        mon.free_tool_id(tool)
        self._tool = None
        self.status = _IDLE

    # -- callbacks: the hot path. Keep them tiny and never raise. ---------------

    def _make_line_callback(
        self,
    ) -> tuple[Callable[[CodeType, int], object], Callable[[dict[int, tuple[Any, ...]]], None]]:
        """The LINE callback and the function that hands it a new line table.

        The table is a closure cell: a cell lookup is cheaper per event than
        an attribute, and rebinding it swaps the whole table in one step.
        Keyed by line first: most lines carry one code object's actions, so an
        identity check replaces hashing the code object. An entry is
        ``(code, callback, wants_frame, {id(code): entry} when several)``.
        """
        by_line: dict[int, tuple[Any, ...]] = {}
        disable = self._disable
        getframe = _getframe
        ident = id

        def on_line(code: CodeType, line: int) -> object:
            try:
                table = by_line
                entry = table.get(line)
                if entry is not None:
                    if entry[0] is not code:
                        entry = entry[3].get(ident(code)) if entry[3] else None
                    if entry is not None and entry[1](getframe(1) if entry[2] else None):
                        return None
                # Nothing live here: switch the location off, unless the
                # engine replaced the table since we read it (the new one may
                # want this line). No call between this test and the return,
                # so no thread switch either.
                return disable if table is by_line else None
            except Exception:
                # Near the recursion limit, say: skip this hit, keep the line armed.
                return None

        def publish(table: dict[int, tuple[Any, ...]]) -> None:
            nonlocal by_line
            by_line = table

        return on_line, publish

    def _index_lines(self) -> None:
        """Build the line-first lookup table from ``_lines`` and swap it in."""
        grouped: dict[int, list[tuple[CodeType, LineCallback, bool]]] = {}
        for key, table in self._lines.items():
            code = self._codes[key]
            for line, callback in table.items():
                grouped.setdefault(line, []).append((code, callback, wants_frame(callback)))
        fresh: dict[int, tuple[Any, ...]] = {}
        for line, entries in grouped.items():
            first = entries[0]
            others = (
                {id(c): (c, cb, wf, None) for c, cb, wf in entries} if len(entries) > 1 else None
            )
            fresh[line] = (first[0], first[1], first[2], others)
        self._publish_lines(fresh)

    def _make_function_callbacks(self) -> tuple[Callable[..., object], ...]:
        funcs = self._funcs
        disable = self._disable
        getframe = _getframe
        ident = id

        # On a miss, DISABLE only if the code is still unwatched when we
        # return: the engine may have placed a duration on it meanwhile.
        def on_start(code: CodeType, offset: int) -> object:
            try:
                key = ident(code)
                pair = funcs.get(key)
                if pair is None:
                    return None if key in funcs else disable
                pair[0](getframe(1))
            except Exception:
                pass
            return None

        def on_return(code: CodeType, offset: int, retval: object) -> object:
            try:
                key = ident(code)
                pair = funcs.get(key)
                if pair is None:
                    return None if key in funcs else disable
                pair[1](getframe(1))
            except Exception:
                pass
            return None

        def on_unwind(code: CodeType, offset: int, exc: BaseException) -> object:
            # A global event: cannot be disabled per location, so return quickly.
            try:
                pair = funcs.get(ident(code))
                if pair is not None:
                    pair[1](getframe(1))
            except Exception:
                pass
            return None

        return on_start, on_return, on_unwind

    # -- Backend interface -------------------------------------------------------

    def set_lines(self, path: CodePath, callbacks: Mapping[int, LineCallback]) -> None:
        key = id(path.code)
        if not callbacks and key not in self._lines:
            return  # nothing placed, nothing to take out
        self._claim()
        if callbacks:
            self._lines[key] = dict(callbacks)
            self._codes[key] = path.code
        else:
            self._lines.pop(key, None)
        # The new table first, then the events: a line switched back on
        # finds its entry.
        self._index_lines()
        self._apply(path.code, rearm_lines=True)
        self._release_if_idle()

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        key = id(path.code)
        if callbacks is None and key not in self._funcs:
            return
        tool = self._claim()
        if callbacks is not None:
            self._funcs[key] = callbacks
            self._codes[key] = path.code
        else:
            self._funcs.pop(key, None)
        self._apply(path.code, rearm_lines=False)
        unwind = bool(self._funcs)
        if unwind != self._unwind:
            self._mon.set_events(tool, self._mon.events.PY_UNWIND if unwind else 0)
            self._unwind = unwind
        self._release_if_idle()

    def _apply(self, code: CodeType, *, rearm_lines: bool) -> None:
        key = id(code)
        tool = self._tool
        events = 0
        if key in self._lines:
            events |= self._line_event
        if key in self._funcs:
            events |= self._func_events
        before = self._events.get(key, 0)
        set_local = self._mon.set_local_events
        if rearm_lines and events & before & self._line_event:
            # LINE stays on: clear and set it again to re-arm the lines a
            # callback switched off, both inside one call from C so that no
            # thread runs with LINE off in between (see the module docstring).
            without = events & ~self._line_event
            _deque(_map(set_local, (tool, tool), (code, code), (without, events)), 0)
        elif events != before:
            set_local(tool, code, events)
        if events:
            self._events[key] = events
        else:
            self._events.pop(key, None)
            self._codes.pop(key, None)

    def close(self) -> None:
        tool = self._tool
        if tool is not None:
            for code in list(self._codes.values()):
                self._mon.set_local_events(tool, code, 0)
        self._lines.clear()
        self._publish_lines({})
        self._funcs.clear()
        self._codes.clear()
        self._events.clear()
        self._unwind = False
        self._release_if_idle()
