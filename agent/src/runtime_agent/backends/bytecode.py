"""Bytecode injection core (CPython 3.10 and 3.11), with the ``bytecode`` package.

For each code object that carries actions the core builds a copy from the
original with a call injected at the start of every run of instructions of
each instrumented line (``_line_hook(callback)``), and swaps ``__code__`` on
every live function that runs that code. Code nested in another code
object's ``co_consts`` (closures, lambdas, comprehensions) is reached by
rebuilding its parents too. Removing everything restores the exact original
code objects.

Function-level actions (durations) get a call after the frame set-up, one
before every return, and an exception handler around the body that calls the
exit hook and re-raises, so calls that raise are timed too.

Limit, stated plainly: frames already running keep the code they started with
(a loop that began before the action was placed does not see it until the
next call).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Mapping
from types import CodeType, FrameType, FunctionType
from typing import Any

from runtime_agent.backends.base import (
    Backend,
    BackendError,
    CodePath,
    FrameCallback,
    LineCallback,
)

try:  # only needed (and installed) below 3.12
    import bytecode as _bc
except ImportError:  # pragma: no cover - depends on the interpreter
    _bc = None

_PREAMBLE = frozenset({"RESUME", "GEN_START", "RETURN_GENERATOR", "COPY_FREE_VARS", "MAKE_CELL"})
_getframe = sys._getframe


def _line_hook(callback: Callable[[FrameType | None], bool]) -> None:
    try:
        callback(_getframe(1))
    except Exception:  # the engine's callbacks never raise; belt and braces
        pass


def _frame_hook(callback: Callable[[FrameType], None]) -> None:
    try:
        callback(_getframe(1))
    except Exception:
        pass


class _State:
    """What is injected into one original code object."""

    __slots__ = ("current", "func", "lines", "parents")

    def __init__(self, parents: tuple[CodeType, ...]) -> None:
        self.parents = parents
        self.lines: dict[int, LineCallback] = {}
        self.func: tuple[FrameCallback, FrameCallback] | None = None
        self.current: CodeType | None = None


class BytecodeBackend(Backend):
    """Injected calls in copies of the code objects that carry actions."""

    name = "bytecode"

    def __init__(self) -> None:
        if _bc is None:
            raise BackendError("the bytecode package is not installed (pip install bytecode)")
        if sys.version_info >= (3, 12) or sys.version_info < (3, 10):
            raise BackendError(
                f"the bytecode core serves Python 3.10 and 3.11, not {sys.version.split()[0]}"
            )
        self._states: dict[int, _State] = {}  # id(original) -> state
        self._originals: dict[int, CodeType] = {}  # id(original) -> original
        self._copies: dict[int, CodeType] = {}  # id(copy) -> original

    def canonical(self, code: CodeType) -> CodeType:
        return self._copies.get(id(code), code)

    # -- Backend interface -----------------------------------------------------

    def set_lines(self, path: CodePath, callbacks: Mapping[int, LineCallback]) -> None:
        state = self._state(path)
        state.lines = dict(callbacks)
        self._rebuild(path)

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        state = self._state(path)
        state.func = callbacks
        self._rebuild(path)

    def close(self) -> None:
        for key in list(self._states):
            state = self._states[key]
            state.lines, state.func = {}, None
            original = self._originals[key]
            self._rebuild(CodePath(original, state.parents))

    # -- building ----------------------------------------------------------------

    def _state(self, path: CodePath) -> _State:
        key = id(path.code)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(path.parents)
            self._originals[key] = path.code
        return state

    def _rebuild(self, path: CodePath) -> None:
        """Rebuild ``path.code`` and every parent from the originals, then swap."""
        chain = (*path.parents, path.code)
        # Bottom-up: each code object's copy holds the new copy of its child.
        replacement: dict[int, CodeType] = {}
        for code in reversed(chain):
            built = self._build(code, replacement)
            replacement[id(code)] = built
        for code in chain:
            self._install(code, replacement[id(code)])

    def _build(self, original: CodeType, children: Mapping[int, CodeType]) -> CodeType:
        state = self._states.get(id(original))
        consts = original.co_consts
        if any(id(c) in children for c in consts if isinstance(c, CodeType)):
            consts = tuple(children.get(id(c), c) if isinstance(c, CodeType) else c for c in consts)
        else:
            # Children not being rebuilt now keep their current copy.
            consts = tuple(self._current(c) if isinstance(c, CodeType) else c for c in consts)
        lines = state.lines if state is not None else {}
        func = state.func if state is not None else None
        if not lines and func is None:
            if all(a is b for a, b in zip(consts, original.co_consts, strict=True)):
                return original
            return original.replace(co_consts=consts)
        return _inject(original.replace(co_consts=consts), lines, func)

    def _current(self, code: CodeType) -> CodeType:
        state = self._states.get(id(code))
        return state.current if state is not None and state.current is not None else code

    def _install(self, original: CodeType, new: CodeType) -> None:
        key = id(original)
        state = self._states.get(key)
        old = state.current if state is not None else None
        if state is not None:
            state.current = None if new is original else new
            if old is not None:
                self._copies.pop(id(old), None)
            if new is not original:
                self._copies[id(new)] = original
                self._originals[key] = original
        targets = {id(original)}
        if old is not None:
            targets.add(id(old))
        for func in _functions_running(targets):
            func.__code__ = new
        if state is not None and not state.lines and state.func is None and state.current is None:
            # Nothing injected any more: forget it (its children keep their own state).
            self._states.pop(key, None)
            self._originals.pop(key, None)


def _functions_running(code_ids: set[int]) -> list[FunctionType]:
    return [
        obj
        for obj in gc.get_objects()
        if type(obj) is FunctionType and id(obj.__code__) in code_ids
    ]


def _call(target: Callable[..., Any], arg: Any, lineno: int | None, location: Any) -> list[Any]:
    """Instructions that call ``target(arg)`` and drop the result, at zero stack effect."""
    Instr = _bc.Instr
    kw = {"location": location} if location is not None else {"lineno": lineno}
    if sys.version_info >= (3, 11):
        return [
            Instr("PUSH_NULL", **kw),
            Instr("LOAD_CONST", target, **kw),
            Instr("LOAD_CONST", arg, **kw),
            Instr("PRECALL", 1, **kw),
            Instr("CALL", 1, **kw),
            Instr("POP_TOP", **kw),
        ]
    return [
        Instr("LOAD_CONST", target, **kw),
        Instr("LOAD_CONST", arg, **kw),
        Instr("CALL_FUNCTION", 1, **kw),
        Instr("POP_TOP", **kw),
    ]


def _inject(
    code: CodeType,
    lines: Mapping[int, LineCallback],
    func: tuple[FrameCallback, FrameCallback] | None,
) -> CodeType:
    program = _bc.Bytecode.from_code(code)
    Instr = _bc.Instr
    items = list(program)
    out: list[Any] = []
    start = _body_start(items)
    out.extend(items[:start])
    if func is not None:
        first = next((i for i in items[start:] if isinstance(i, Instr)), None)
        where = getattr(first, "location", None) if first is not None else None
        out.extend(_call(_frame_hook, func[0], code.co_firstlineno, where))
    previous_line: int | None = None
    for item in items[start:]:
        if isinstance(item, Instr):
            line = item.lineno
            if line in lines and line != previous_line and item.name != "NOP":
                out.extend(_call(_line_hook, lines[line], line, getattr(item, "location", None)))
            if func is not None and item.name == "RETURN_VALUE":
                out.extend(_call(_frame_hook, func[1], line, getattr(item, "location", None)))
            if item.name != "NOP":
                previous_line = line
        elif isinstance(item, _bc.Label):
            # A jump target starts a new run: a loop back to the line hits it again.
            previous_line = None
        out.append(item)
    if func is not None:
        out = _on_exception(out, start, func[1], code.co_firstlineno)
    program.clear()
    program.extend(out)
    return program.to_code()


def _body_start(items: list[Any]) -> int:
    """Index after the frame set-up: nothing may run before the first RESUME / GEN_START."""
    for index, item in enumerate(items):
        if not isinstance(item, _bc.Instr):
            continue
        if item.name in ("RESUME", "GEN_START"):
            return index + 1
        if item.name not in _PREAMBLE:
            return index
    return 0


def _on_exception(items: list[Any], start: int, on_exit: FrameCallback, line: int) -> list[Any]:
    """Call ``on_exit`` when an exception leaves the frame, then re-raise it.

    3.11: every instruction outside the code's own try ranges gets an extra
    exception-table range whose handler calls the hook and re-raises; the
    code's own handlers end in instructions so covered, so exceptions that
    escape them arrive here too. 3.10: an outermost SETUP_FINALLY block.
    """
    Instr = _bc.Instr
    handler = _bc.Label()
    call = _call(_frame_hook, on_exit, line, None)
    out = list(items[:start])
    if sys.version_info >= (3, 11):
        inside, opened = False, None
        for item in items[start:]:
            if isinstance(item, _bc.TryBegin):
                if opened is not None:
                    out.append(_bc.TryEnd(opened))
                    opened = None
                inside = True
            elif isinstance(item, _bc.TryEnd):
                inside = False
            elif isinstance(item, Instr) and not inside and opened is None:
                opened = _bc.TryBegin(handler, push_lasti=True)
                out.append(opened)
            out.append(item)
        if opened is not None:
            out.append(_bc.TryEnd(opened))
        out += [handler, *call, Instr("RERAISE", 1, lineno=line)]
    else:
        out.append(Instr("SETUP_FINALLY", handler, lineno=line))
        out += items[start:]
        out += [handler, *call, Instr("RERAISE", 0, lineno=line)]
    return out
