"""sys.settrace backend: the last resort, for interpreters where neither
sys.monitoring nor bytecode injection is available, or when asked for with
``RUNTIME_AGENT_CORE=settrace``.

Even here only the target code objects are traced: the global trace function
returns None for every other frame, so their lines cost one call on entry and
nothing after. Limits, stated plainly: the trace function replaces any other
(a debugger's or coverage.py's PyTracer); threads that were already running
before the first action are traced only from their next call on 3.12+
(``threading.settrace_all_threads``) and not at all before that; a generator or
coroutine counts one enter and one exit per resumption.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from types import CodeType, FrameType
from typing import Any

from runtime_agent.backends.base import Backend, CodePath, FrameCallback, LineCallback


class SettraceBackend(Backend):
    """``sys.settrace`` limited to the code objects that carry actions."""

    name = "settrace"

    def __init__(self) -> None:
        self._lines: dict[CodeType, dict[int, LineCallback]] = {}
        self._funcs: dict[CodeType, tuple[FrameCallback, FrameCallback]] = {}
        self._installed = False

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        lines = self._lines.get(code)
        funcs = self._funcs.get(code)
        if lines is None and funcs is None:
            return None
        if funcs is not None:
            funcs[0](frame)
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if event == "line":
            lines = self._lines.get(code)
            if lines is not None:
                callback = lines.get(frame.f_lineno)
                if callback is not None:
                    callback(frame)
        elif event == "return":
            funcs = self._funcs.get(code)
            if funcs is not None:
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
        if callbacks:
            self._lines[path.code] = dict(callbacks)
        else:
            self._lines.pop(path.code, None)
        self._sync()

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        if callbacks is not None:
            self._funcs[path.code] = callbacks
        else:
            self._funcs.pop(path.code, None)
        self._sync()

    def close(self) -> None:
        self._lines.clear()
        self._funcs.clear()
        self._sync()
