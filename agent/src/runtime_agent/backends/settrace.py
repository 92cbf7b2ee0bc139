"""sys.settrace backend: the last resort, for interpreters where neither
sys.monitoring nor bytecode injection is available, or when asked for with
``RUNTIME_AGENT_CORE=settrace``.

Even here only the target code objects are traced: the global trace function
returns None for every other frame, so their lines cost one call on entry and
nothing after. Limits, stated plainly: the trace function replaces any other
(a debugger's or coverage.py's PyTracer); on 3.10 and 3.11, threads that were already running
before the first action are not traced (3.12+ has
``threading.settrace_all_threads``).

Read-only, or refused
---------------------
Before 3.13 (PEP 667), CPython's trace trampoline writes a frame's locals dict
back into the frame after the trace function returns (``call_trampoline`` ->
``PyFrame_LocalsToFast``). The dict was filled when the event began, so a
closure variable (a cell) that another thread changed meanwhile gets its old
value back: the host's update is lost. Measured with a ``nonlocal`` counter
incremented 300k times by one thread while another ran an action:

* 3.10 does this for *every* trace event of every traced thread, read or not
  (even frames of untargeted functions, on their "call" event). This core can
  never be read-only there: it refuses every action, so it never traces.
* 3.11 and 3.12 do it only for a frame whose ``f_locals`` was read (the
  frame's ``f_fast_as_locals`` flag), by us or by the host itself (inspect, a
  debug helper). Every action on code with cell or free variables is refused
  (a bare counter too: its trace events would write back the host's own
  reads). Snapshots leave out the locals of caller frames whose code has
  cells. Left open: a generator with cells whose ``f_locals`` the host read
  gets one write-back per resumption while this core traces (the resumption
  is a "call" event through the trampoline), racing with other threads only
  for the few instructions of our global trace function.
* 3.13+ has no write-back; everything runs.

Fast locals (not cells) only change on the frame's own thread, which is
waiting for the trace function, so writing them back writes what is there.

Callbacks never let an ``Exception`` out. At the host's deepest working
recursion depth the trace function itself cannot be entered (it is a Python
function, entered on every call and line event of a traced thread, targeted
code or not): CPython raises RecursionError in the host frame, one level
earlier than without the agent, and clears that thread's trace function
(python/cpython#134216), so the actions see no more hits from that thread. No
Python code can avoid it; the bytecode core guards its calls instead (see its
docstring), and the monitoring core has the first half of this limit.
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Mapping
from types import CodeType, FrameType
from typing import Any

from runtime_agent.backends.base import Backend, CodePath, FrameCallback, LineCallback

_YIELD_OPS = frozenset(
    dis.opmap[name] for name in ("YIELD_VALUE", "YIELD_FROM") if name in dis.opmap
)
_RESUME = dis.opmap.get("RESUME", -1)
_MAX_FRAMES = 10_000
_VERSION = sys.version_info[:2]
_PYTHON = f"Python {_VERSION[0]}.{_VERSION[1]}"
#: What to do instead, by interpreter: the core that reads locals read-only.
_ADVICE = (
    "use the bytecode core (pip install bytecode) or Python 3.13+"
    if _VERSION < (3, 12)
    else "use the monitoring core (free a sys.monitoring tool id) or Python 3.13+"
)
_WRITES_BACK_ALWAYS = _VERSION < (3, 11)
_WRITES_BACK_READ = (3, 11) <= _VERSION < (3, 13)
_id = id
_len = len


def _closure_names(code: CodeType) -> tuple[str, ...]:
    return code.co_cellvars + code.co_freevars


class SettraceBackend(Backend):
    """``sys.settrace`` limited to the code objects that carry actions."""

    name = "settrace"

    def __init__(self) -> None:
        # Keyed by id(): equal code objects from different files compare equal
        # (3.10 leaves the file name out of code equality). _codes keeps them alive.
        self._lines: dict[int, dict[int, LineCallback]] = {}
        self._funcs: dict[int, tuple[FrameCallback, FrameCallback]] = {}
        self._codes: dict[int, CodeType] = {}
        self._installed = False
        # Frames of generators and coroutines suspended at a yield or await:
        # their next "call" is a resumption, their last "return" a yield.
        self._suspended: set[int] = set()
        self._last_line: dict[int, int] = {}

    #: Never hands a locals dict back. Inside a callback CPython is about to
    #: write the dict into the frame (``PyFrame_LocalsToFast(frame, 1)``), so
    #: emptying it would unbind every local and restoring an older copy would
    #: rebind them to stale values; and at any later trace event the same
    #: write-back follows whenever the host itself read ``f_locals`` in
    #: between. So on this core the frame's dict keeps what it last held
    #: (until the frame ends or is read again), and a dict the host keeps from
    #: ``locals()`` sees the names bound since: the price of the fallback core.
    release_locals = None

    def refusal(self, code: CodeType) -> str | None:
        if _WRITES_BACK_ALWAYS:
            return (
                f"on {_PYTHON} CPython writes every traced frame's locals back after each "
                "trace event, which undoes closure updates made by other threads meanwhile, "
                f"so the settrace core refuses every action; {_ADVICE}"
            )
        # Refused even when the action reads nothing: once traced, every event
        # of the frame writes back whatever the host itself read through
        # f_locals (inspect, a debug helper), which without us writes nothing.
        hazard = self.locals_hazard(code)
        if hazard is not None:
            return f"{hazard}; place it in a function without closure variables, or {_ADVICE}"
        return None

    def locals_hazard(self, code: CodeType) -> str | None:
        names = _closure_names(code)
        if not (_WRITES_BACK_ALWAYS or _WRITES_BACK_READ) or not names:
            return None
        return (
            f"{code.co_name} has closure variables ({', '.join(names[:5])}) and on "
            f"{_PYTHON} reading them from a trace function makes CPython write stale "
            "values back into them, undoing updates made by other threads"
        )

    # -- trace functions: never let an Exception out into the host ---------------
    # One frame each, nothing nested that need not be: near the recursion
    # limit every level counts.

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        try:
            key = _id(frame.f_code)
            funcs = self._funcs.get(key)
            if funcs is None and key not in self._lines:
                return None
            if _id(frame) in self._suspended:
                self._suspended.discard(_id(frame))  # a generator resumes
            elif funcs is not None:
                funcs[0](frame)
            return self._local
        except Exception:
            return None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        try:
            key = _id(frame)
            if event == "line":
                lines = self._lines.get(_id(frame.f_code))
                if lines is not None:
                    line = frame.f_lineno
                    callback = lines.get(line)
                    # Like sys.monitoring's LINE: a jump back within the same
                    # line (an inlined comprehension) is not a new execution.
                    if callback is not None and self._last_line.get(key) != line:
                        callback(frame)
                    if _len(self._last_line) >= _MAX_FRAMES:
                        self._last_line.clear()
                    self._last_line[key] = line
            elif event == "return":
                if _suspending(frame):
                    if _len(self._suspended) >= _MAX_FRAMES:
                        self._suspended.clear()
                    self._suspended.add(key)
                    return self._local
                # The frame ends: a new one may reuse its id (its memory).
                self._last_line.pop(key, None)
                funcs = self._funcs.get(_id(frame.f_code))
                if funcs is not None:
                    funcs[1](frame)
        except Exception:
            pass
        return self._local

    def _sync(self) -> None:
        wanted = bool(self._lines or self._funcs)
        if wanted == self._installed:
            return
        tracer = self._global if wanted else None
        if hasattr(threading, "settrace_all_threads"):
            threading.settrace_all_threads(tracer)
        else:
            threading.settrace(tracer)  # type: ignore[arg-type]
            sys.settrace(tracer)
        self._installed = wanted

    def set_lines(self, path: CodePath, callbacks: Mapping[int, LineCallback]) -> None:
        key = id(path.code)
        if callbacks:
            self._lines[key] = dict(callbacks)
            self._codes[key] = path.code
        else:
            self._lines.pop(key, None)
        self._forget(key)
        self._sync()

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        key = id(path.code)
        if callbacks is not None:
            self._funcs[key] = callbacks
            self._codes[key] = path.code
        else:
            self._funcs.pop(key, None)
        self._forget(key)
        self._sync()

    def _forget(self, key: int) -> None:
        if key not in self._lines and key not in self._funcs:
            self._codes.pop(key, None)

    def close(self) -> None:
        self._lines.clear()
        self._funcs.clear()
        self._codes.clear()
        self._sync()


def _suspending(frame: FrameType) -> bool:
    """Whether a "return" event is a yield or await rather than the end of the frame."""
    raw = frame.f_code.co_code
    try:
        op = raw[frame.f_lasti]
        # 3.13 reports a yield at the RESUME that follows it; its oparg says
        # why it resumes (0: the start of the function).
        return op in _YIELD_OPS or (op == _RESUME and raw[frame.f_lasti + 1] & 3 != 0)
    except IndexError:
        return False
