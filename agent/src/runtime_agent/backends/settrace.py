"""sys.settrace backend: the last resort, for interpreters where neither
sys.monitoring nor bytecode injection is available, or when asked for with
``RUNTIME_AGENT_CORE=settrace``.

Even here only the target code objects are traced: the global trace function
returns None for every other frame, so their lines cost one call on entry and
nothing after. Limits, stated plainly: the trace function replaces any other
(a debugger's or coverage.py's PyTracer); on 3.10 and 3.11, threads that were already running
before the first action are not traced (3.12+ has
``threading.settrace_all_threads``).
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

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        key = id(frame.f_code)
        lines = self._lines.get(key)
        funcs = self._funcs.get(key)
        if lines is None and funcs is None:
            return None
        if funcs is not None:
            if id(frame) in self._suspended:
                self._suspended.discard(id(frame))
            else:
                funcs[0](frame)
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = id(frame.f_code)
        if event == "line":
            lines = self._lines.get(code)
            if lines is not None:
                line = frame.f_lineno
                callback = lines.get(line)
                # Like sys.monitoring's LINE: a jump back within the same line
                # (an inlined comprehension) is not a new execution of it.
                key = id(frame)
                if callback is not None and self._last_line.get(key) != line:
                    callback(frame)
                if len(self._last_line) >= _MAX_FRAMES:
                    self._last_line.clear()
                self._last_line[key] = line
        elif event == "return":
            funcs = self._funcs.get(code)
            if funcs is not None:
                if _suspending(frame):
                    if len(self._suspended) >= _MAX_FRAMES:
                        self._suspended.clear()
                    self._suspended.add(id(frame))
                else:
                    funcs[1](frame)
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
