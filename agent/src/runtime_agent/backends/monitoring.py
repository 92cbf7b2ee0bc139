"""sys.monitoring backend (CPython 3.12+).

Events are enabled only as *local* events on the code objects that carry
actions, so the rest of the program runs at full speed. A line callback that
finds nothing live returns DISABLE, which switches that one location off; the
engine re-arms a code object by setting its local events to 0 and back. The
global ``restart_events()`` is never called: it would re-arm the locations that
coverage.py or a debugger switched off for themselves.

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

#: Tool ids the CPython docs reserve for others: 0 debugger, 1 coverage,
#: 2 profiler, 5 optimizer. Try the unassigned ones first.
_PREFERRED_TOOL_IDS = (3, 4, 5, 2, 1, 0)
TOOL_NAME = "runtime-agent"
#: Bound at import: callbacks built later (a tool id claimed at the first
#: action) must not depend on the host leaving sys._getframe in place.
_getframe = sys._getframe


class MonitoringBackend(Backend):
    """Local ``sys.monitoring`` events on the code objects that carry actions."""

    name = "monitoring"

    def __init__(self) -> None:
        mon = getattr(sys, "monitoring", None)
        if mon is None:
            raise BackendError("sys.monitoring needs Python 3.12 or newer")
        self._mon = mon
        self._tool = self._claim_tool_id()
        self.status = f"monitoring (tool id {self._tool})"
        ev = mon.events
        self._disable = mon.DISABLE
        self._line_event = ev.LINE
        self._func_events = ev.PY_START | ev.PY_RETURN
        # id(code) -> {line: callback}; values keep their code alive via _codes.
        self._lines: dict[int, dict[int, LineCallback]] = {}
        self._funcs: dict[int, tuple[FrameCallback, FrameCallback]] = {}
        self._codes: dict[int, CodeType] = {}
        # line -> (code, callback, wants_frame, {id(code): entry} when several)
        self._by_line: dict[int, tuple[Any, ...]] = {}
        self._unwind = False
        on_start, on_return, on_unwind = self._make_function_callbacks()
        mon.register_callback(self._tool, ev.LINE, self._make_line_callback())
        mon.register_callback(self._tool, ev.PY_START, on_start)
        mon.register_callback(self._tool, ev.PY_RETURN, on_return)
        mon.register_callback(self._tool, ev.PY_UNWIND, on_unwind)

    def _claim_tool_id(self) -> int:
        mon = self._mon
        for tool in _PREFERRED_TOOL_IDS:
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, TOOL_NAME)
                return tool
        taken = ", ".join(f"{i} {mon.get_tool(i)}" for i in range(6))
        raise BackendError(
            f"every sys.monitoring tool id is taken ({taken}); free one to use the monitoring core"
        )

    # -- callbacks: the hot path. Keep them tiny and never raise. ---------------

    def _make_line_callback(self) -> Callable[[CodeType, int], object]:
        # A closure: cell lookups are cheaper than attribute lookups per event.
        # Keyed by line first: most lines carry one code object's actions, so
        # an identity check replaces hashing the code object.
        by_line = self._by_line
        disable = self._disable
        getframe = _getframe

        ident = id

        def on_line(code: CodeType, line: int) -> object:
            try:
                entry = by_line.get(line)
                if entry is not None:
                    if entry[0] is not code:
                        entry = entry[3].get(ident(code)) if entry[3] else None
                        if entry is None:
                            return disable
                    if entry[1](getframe(1) if entry[2] else None):
                        return None
                return disable
            except Exception:
                # Near the recursion limit, say: skip this hit, keep the line armed.
                return None

        return on_line

    def _index_lines(self) -> None:
        """Rebuild the line-first lookup table from ``_lines``."""
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
        # Swap contents in place: the running callback holds this dict.
        self._by_line.clear()
        self._by_line.update(fresh)

    def _make_function_callbacks(self) -> tuple[Callable[..., object], ...]:
        funcs = self._funcs
        disable = self._disable
        getframe = _getframe
        ident = id

        def on_start(code: CodeType, offset: int) -> object:
            try:
                pair = funcs.get(ident(code))
                if pair is None:
                    return disable
                pair[0](getframe(1))
            except Exception:
                pass
            return None

        def on_return(code: CodeType, offset: int, retval: object) -> object:
            try:
                pair = funcs.get(ident(code))
                if pair is None:
                    return disable
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
        if callbacks:
            self._lines[key] = dict(callbacks)
            self._codes[key] = path.code
        else:
            self._lines.pop(key, None)
        self._index_lines()
        self._apply(path.code)

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        key = id(path.code)
        if callbacks is not None:
            self._funcs[key] = callbacks
            self._codes[key] = path.code
        else:
            self._funcs.pop(key, None)
        self._apply(path.code)
        unwind = bool(self._funcs)
        if unwind != self._unwind:
            self._mon.set_events(self._tool, self._mon.events.PY_UNWIND if unwind else 0)
            self._unwind = unwind

    def _apply(self, code: CodeType) -> None:
        key = id(code)
        events = 0
        if key in self._lines:
            events |= self._line_event
        if key in self._funcs:
            events |= self._func_events
        # Setting 0 first re-arms locations a callback switched off with
        # DISABLE, for this code object only.
        self._mon.set_local_events(self._tool, code, 0)
        if events:
            self._mon.set_local_events(self._tool, code, events)
        else:
            self._codes.pop(key, None)

    def close(self) -> None:
        mon = self._mon
        for code in list(self._codes.values()):
            mon.set_local_events(self._tool, code, 0)
        self._lines.clear()
        self._by_line.clear()
        self._funcs.clear()
        self._codes.clear()
        mon.set_events(self._tool, 0)
        for event in (mon.events.LINE, mon.events.PY_START, mon.events.PY_RETURN):
            mon.register_callback(self._tool, event, None)
        mon.register_callback(self._tool, mon.events.PY_UNWIND, None)
        mon.free_tool_id(self._tool)
