"""Bytecode injection backend (CPython 3.10 and 3.11), built on the ``bytecode`` package.

How it works
------------
For every code object that carries hooks, the backend builds a *copy* of the
**original** code object (never of an earlier copy, so rebuilding always starts
from a clean slate) with a call of a tiny trampoline injected at the start of
every run of instructions that belongs to an instrumented line, then assigns the
copy to ``__code__`` of every live function running that code (found through
``gc.get_objects()``). A run starts where line events would fire under
``sys.settrace``: where the line number changes, at the start of the function,
and at jump targets reached from another line or by a backward jump (a ``for``
header therefore fires once on entry and once per iteration, like settrace).
When a jump target continues a line that was already running, a small forward
jump lets the fall-through path skip the hook, so a line is never counted twice
for one execution.

The injected code is ``trampoline(slot)``, followed by ``POP_TOP``, inside a
guard (below); its stack effect is zero and ``co_stacksize`` grows by what the
call and the guard's handler push (3 items on 3.11, 8 on 3.10). The
injected instructions carry the location of the instruction they precede, so
``co_lines``, tracebacks and ``inspect.getsourcelines`` are unchanged (every copy
is checked to map to exactly the original's lines). Frame set-up instructions
(``RESUME``, ``GEN_START``, ``RETURN_GENERATOR``, ``MAKE_CELL``, ``COPY_FREE_VARS``)
are never preceded by injected code, so generators, coroutines and async
generators keep working. A hook at the first instruction of a 3.11 exception
handler (``PUSH_EXC_INFO``) goes right after it, so that whatever the callback
raises unwinds through the handler's clean-up with a consistent exception state.

Two things are done here rather than by the ``bytecode`` package: exception
table depths are copied from the original (injected code never changes the
depth between original instructions, and the package's recomputation gets
jumps into the middle of an entry wrong, which crashes the interpreter), and
the 3.10 line table is written the way CPython writes it (bytecode 0.17 drops
the line of an instruction that follows one without a line, e.g. the first line
of every generator).

The trampoline reads the callback from a *slot* object stored in the copy's
constants. Changing the callbacks of lines that are already instrumented only
updates slots, with no rebuild and no heap scan; removing a line empties its
slot, so frames still running an older copy go quiet too. Callbacks are called
with ``sys._getframe(1)`` (the instrumented frame), or None when the callback's
``wants_frame`` attribute is False. Their result is discarded: a rewritten line
cannot be switched off cheaply, and the engine removes dead lines itself.
Exceptions (``Exception`` only) raised by a callback are swallowed inside the
trampoline, so the host's stack and ``sys.exc_info()`` are untouched; a
RecursionError from calling a callback near the limit skips that hit. Reading
``frame.f_locals`` from a trampoline writes nothing back (no trace trampoline
runs; checked by the closure counter test on 3.10 and 3.11).

Guards: at the host's very deepest frame the trampoline itself cannot be
entered (a new frame is one level too many), so the RecursionError would come
from the injected call, in the host's frame. Every injected call therefore
sits in a try block of its own, in the host frame: on 3.11 an exception-table
entry that unwinds to the value-stack depth at that point (computed here from
CPython's own stack effects; it splits any entry of the code that covers the
point, since entries cannot nest), on 3.10 a ``SETUP_FINALLY`` block. Its
handler drops an ``Exception`` and the host's code runs on as if no hook were
there; anything else (KeyboardInterrupt) is raised again, from the host's
line, to the host's own handlers. The host's handled exception is untouched
(3.11 never makes ours the handled one; 3.10's ``POP_EXCEPT`` restores it), so
``sys.exc_info()`` and a bare ``raise`` after the line see the host's. On the
normal path a guard costs one ``JUMP_FORWARD`` on 3.11, and ``SETUP_FINALLY``,
``POP_BLOCK`` and ``JUMP_FORWARD`` on 3.10. A 3.10 line whose block stack is
already full (20 nested try/with blocks) gets its hook unguarded.

Function hooks (``set_function``) add a call of ``on_enter`` after the frame
set-up (once per run: a generator or coroutine resumes past it), a call of
``on_exit`` before every ``RETURN_VALUE``, and a catch-all handler that calls
``on_exit`` and re-raises for exits by exception: on 3.11 exception-table
entries (``TryBegin``/``TryEnd``) covering every instruction no existing entry
covers, which is exactly where exceptions leave the frame; on 3.10 an outermost
``SETUP_FINALLY`` block, popped before every return. During an exit by
exception, ``frame.f_lineno`` seen by ``on_exit`` is None (the handler has no
line, like the compiler's own clean-up code); traceback lines are unaffected.
These calls are guarded too: when ``on_exit`` cannot be entered, the host's
own exception, not a RecursionError of ours, leaves the frame.

A batch (``apply``) first sets every node's new lines and function slot,
then rebuilds each tree that changed shape once and swaps all the new copies
onto live functions in one heap scan; a tree that cannot be rebuilt gets its
nodes back as they were and its changes made one at a time, so the core's
refusal of one keeps none of the others out.

Nested code (closures, lambdas, comprehensions, generator expressions) lives in
its parents' ``co_consts``: ``CodePath.parents`` tells which parents to rebuild,
bottom-up, so functions created after installation run the instrumented child;
closure function objects that already exist are swapped directly. When no hook
is left on a code object or below it, the exact original code object is put
back on every function.

Limits
------
* Frames already running keep the code they started with: a loop or a
  suspended generator that started before a hook was placed does not see it
  until the next call. Frames that started with a copy keep calling its slots,
  so hooks removed since then stay quiet and changed callbacks take effect.
* Functions created later by such a still-running parent frame get the child
  code that frame carries (they are instrumented at the next change).
* Line events follow settrace closely, but not to the instruction in rare
  exception paths (a handler entered from the same line fires once more).
* Lines whose only instructions are frame set-up, or that start right after
  3.11's ``KW_NAMES``/``PRECALL`` (never the case in compiler output), cannot be hooked.
* On 3.10 the exit handler is one more block on the frame's block stack, whose
  size is fixed at 20: ``set_function`` on code that already nests 20 try/with
  blocks raises BackendError instead of risking CPython's fatal overflow; a
  line hook where no block is left for its guard goes unguarded.
* Instrumented code objects hold the trampolines and slots as constants, so
  ``marshal`` cannot serialise them; pickling code by value (cloudpickle)
  carries empty slots and needs ``runtime_agent`` importable where it is loaded.
"""

from __future__ import annotations

import gc
import itertools
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import CodeType, FunctionType
from typing import Any

from runtime_agent.backends.base import (
    Backend,
    BackendError,
    Change,
    CodePath,
    FrameCallback,
    LineCallback,
    wants_frame,
)

# Guarded: the package is only installed (and only supports the bytecode of)
# the interpreters this backend serves; importing this module must still work
# on 3.12+, where the monitoring backend runs instead.
_bc: Any
try:
    import bytecode as _bc
except ImportError:  # pragma: no cover - depends on the environment
    _bc = None

_PY311 = sys.version_info >= (3, 11)
_SUPPORTED = ((3, 10), (3, 11))
#: The oldest ``bytecode`` the agent's packaging allows (3.11 support came in 0.14).
_MIN_BYTECODE = (0, 15)

#: Instructions after which execution never falls through to the next one.
_NO_FALLTHROUGH = frozenset(
    {
        "RETURN_VALUE",
        "RAISE_VARARGS",
        "RERAISE",
        "JUMP_FORWARD",
        "JUMP_ABSOLUTE",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
    }
)
#: 3.10 instructions whose label argument is an exception handler, not a jump.
_SETUP_OPS = frozenset({"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"})
#: Handler entries that only clean up and re-raise (or end an ``async for``):
#: the line they carry was already running, so no line event is due there.
_CLEANUP_OPS = frozenset({"COPY", "POP_EXCEPT", "RERAISE", "END_ASYNC_FOR"})
#: 3.11 pairs that must stay adjacent: a specialised PRECALL skips the CALL, and
#: KW_NAMES hands its names to the next PRECALL.
_GLUED_TO_NEXT = frozenset({"PRECALL", "KW_NAMES"})

_getframe = sys._getframe
#: CPython 3.10's CO_MAXBLOCKS: the size of a frame's block stack.
_MAX_BLOCKS_310 = 20

#: The most an injected call adds to the stack: (NULL,) hook, slot.
_CALL_DEPTH = 3
#: What a line hook's guard handler adds to the stack where it was injected:
#: on 3.11 the exception and the class it is matched against; on 3.10 the six
#: values SETUP_FINALLY pushes, a copy of the exception and the class.
_GUARD_DEPTH = 2 if _PY311 else 8
#: Stack use of our exit handler: on 3.11 lasti and the exception over an
#: empty stack; on 3.10 SETUP_FINALLY's six exception values. Plus a guarded call.
_HANDLER_DEPTH = (2 if _PY311 else 6) + max(_CALL_DEPTH, _GUARD_DEPTH)


# -- trampolines: the hot path, kept tiny. They never let an Exception out. ----


class _LineSlot:
    """The callback of one instrumented line, read by the trampoline on every hit.

    ``entry`` is ``(callback, wants_frame)`` or None, replaced as one object so
    a hit racing a change never pairs one callback with the other's flag.
    """

    __slots__ = ("entry",)

    def __init__(self, callback: LineCallback | None = None) -> None:
        self.entry: tuple[LineCallback, bool] | None = None
        self.set(callback)

    def set(self, callback: LineCallback | None) -> None:
        self.entry = None if callback is None else (callback, wants_frame(callback))

    def __reduce__(self) -> tuple[type[_LineSlot], tuple[()]]:
        # Code pickled by value (cloudpickle) travels without our callbacks.
        return (_LineSlot, ())


class _FuncSlot:
    """The ``(on_enter, on_exit)`` callbacks of one instrumented code object, or None."""

    __slots__ = ("pair",)

    def __init__(self, callbacks: tuple[FrameCallback, FrameCallback] | None = None) -> None:
        self.pair: tuple[FrameCallback, FrameCallback] | None = callbacks

    def set(self, callbacks: tuple[FrameCallback, FrameCallback] | None) -> None:
        self.pair = callbacks

    def __reduce__(self) -> tuple[type[_FuncSlot], tuple[()]]:
        return (_FuncSlot, ())


def _line_hook(slot: _LineSlot) -> None:
    entry = slot.entry
    if entry is not None:
        try:
            # Frame 1 is the instrumented function: the injected call is direct.
            entry[0](_getframe(1) if entry[1] else None)
        except Exception:
            # Leaving this handler restores the host's exception state.
            pass


def _enter_hook(slot: _FuncSlot) -> None:
    pair = slot.pair
    if pair is not None:
        try:
            pair[0](_getframe(1))
        except Exception:
            pass


def _exit_hook(slot: _FuncSlot) -> None:
    pair = slot.pair
    if pair is not None:
        try:
            pair[1](_getframe(1))
        except Exception:
            pass


# -- rewriting one code object ---------------------------------------------------


def _line(instr: Any) -> int | None:
    """An instruction's line, None when it has none (``bytecode`` may say UNSET)."""
    location = instr.location
    line = location.lineno if location is not None else None
    return line if type(line) is int else None


def _call(hook: Callable[[Any], None], slot: object, location: Any) -> list[Any]:
    """Instructions for ``hook(slot)`` with the result dropped: zero stack effect."""
    Instr = _bc.Instr
    if _PY311:
        return [
            Instr("PUSH_NULL", location=location),
            Instr("LOAD_CONST", hook, location=location),
            Instr("LOAD_CONST", slot, location=location),
            Instr("PRECALL", 1, location=location),
            Instr("CALL", 1, location=location),
            Instr("POP_TOP", location=location),
        ]
    return [
        Instr("LOAD_CONST", hook, location=location),
        Instr("LOAD_CONST", slot, location=location),
        Instr("CALL_FUNCTION", 1, location=location),
        Instr("POP_TOP", location=location),
    ]


def _no_location() -> Any:
    return _bc.instr.InstrLocation(None, None, None, None)


def _guard_handler(location: Any, resume: Any) -> list[Any]:
    """What runs when the guarded call raises: an ``Exception`` (a
    RecursionError: the trampoline could not even be entered) is dropped and
    the host's line runs on at ``resume``; anything else (KeyboardInterrupt)
    is raised again, as if it came from the host's line.

    On 3.11 the handler starts with the exception pushed, nothing else: the
    host's handled exception (``sys.exc_info()``) was never touched. On 3.10
    SETUP_FINALLY's handler got the exception as handled, and ``POP_EXCEPT``
    restores the host's.
    """
    Instr, Label = _bc.Instr, _bc.Label
    reraise = Label()
    if _PY311:
        return [
            Instr("LOAD_CONST", Exception, location=location),
            Instr("CHECK_EXC_MATCH", location=location),
            Instr("POP_JUMP_FORWARD_IF_FALSE", reraise, location=location),
            Instr("POP_TOP", location=location),
            Instr("JUMP_FORWARD", resume, location=location),
            reraise,
            Instr("RERAISE", 0, location=location),
        ]
    return [
        Instr("DUP_TOP", location=location),
        Instr("LOAD_CONST", Exception, location=location),
        Instr("JUMP_IF_NOT_EXC_MATCH", reraise, location=location),
        Instr("POP_TOP", location=location),
        Instr("POP_TOP", location=location),
        Instr("POP_TOP", location=location),
        Instr("POP_EXCEPT", location=location),
        Instr("JUMP_FORWARD", resume, location=location),
        reraise,
        Instr("RERAISE", 0, location=location),
    ]


class _HostEntry:
    """The code's own 3.11 exception-table entry open where a guard goes.

    Entries cannot nest, so a guard's entry splits the host's around it: the
    host's piece ends before the guard and a new piece with the same handler,
    depth and lasti flag starts after it (covering the guard's handler, so
    what it raises again reaches the host's handler as before).
    """

    __slots__ = ("original", "piece", "start")

    def __init__(self) -> None:
        self.original: Any = None  # the code's TryBegin, while its range is open
        self.piece: Any = None  # the TryBegin now emitted for it
        self.start = 0  # index in ``out`` right after ``piece``

    def open(self, begin: Any, out: list[Any]) -> None:
        self.original = self.piece = begin
        out.append(begin)
        self.start = len(out)

    def close(self, out: list[Any]) -> None:
        """End the current piece; a piece that covers no instruction is dropped."""
        if any(isinstance(item, _bc.Instr) for item in out[self.start :]):
            out.append(_bc.TryEnd(self.piece))
        else:
            del out[self.start - 1]
            self.start -= 1

    def reopen(self, out: list[Any]) -> None:
        original = self.original
        self.piece = _bc.TryBegin(original.target, original.push_lasti, original.stack_depth)
        out.append(self.piece)
        self.start = len(out)


def _guarded_call(
    hook: Callable[[Any], None],
    slot: object,
    location: Any,
    depth: int | None,
    entry: _HostEntry,
    out: list[Any],
) -> None:
    """Append ``hook(slot)``, guarded so that nothing raised while entering
    the trampoline reaches the host (RecursionError at the host's deepest
    frame): the handler drops it and the host's code runs on unchanged.

    ``depth`` is the value-stack depth where the call goes: the guard's 3.11
    exception-table entry unwinds to it (3.10's SETUP_FINALLY records it at
    run time and ignores it). None where no guard fits: unreachable code, or
    a 3.10 block stack already full; the call then goes unguarded.
    """
    Instr, Label = _bc.Instr, _bc.Label
    call = _call(hook, slot, location)
    if depth is None:
        out.extend(call)
        return
    handler, resume = Label(), Label()
    if _PY311:
        TryBegin, TryEnd = _bc.TryBegin, _bc.TryEnd
        host = entry.original is not None
        if host:
            entry.close(out)
        ours = TryBegin(handler, False, depth)
        out.extend([ours, *call, TryEnd(ours)])
        if host:
            entry.reopen(out)
    else:
        out.append(Instr("SETUP_FINALLY", handler, location=location))
        out.extend(call)
        out.append(Instr("POP_BLOCK", location=location))
    out.append(Instr("JUMP_FORWARD", resume, location=location))
    out.append(handler)
    out.extend(_guard_handler(location, resume))
    out.append(resume)


def _body_start(items: list[Any]) -> int:
    """Index of the first item after the frame set-up, where injection may begin."""
    Instr = _bc.Instr
    if _PY311:
        # RETURN_GENERATOR, POP_TOP, MAKE_CELL and COPY_FREE_VARS all precede
        # the first RESUME, which every 3.11 code object has.
        for index, item in enumerate(items):
            if isinstance(item, Instr) and item.name == "RESUME":
                return index + 1
        return 0
    first = next((i for i, item in enumerate(items) if isinstance(item, Instr)), None)
    if first is not None and items[first].name == "GEN_START":
        return first + 1
    return 0


class _Edge:
    """One way into a label: a jump instruction, or an exception handler entry."""

    __slots__ = ("handler", "index", "owner")

    def __init__(self, owner: Any, index: int, handler: bool) -> None:
        self.owner = owner  # the jump Instr, SETUP_* Instr or TryBegin
        self.index = index
        self.handler = handler

    def line(self) -> int | None:
        return _line(self.owner) if isinstance(self.owner, _bc.Instr) else None

    def retarget(self, label: Any) -> None:
        if isinstance(self.owner, _bc.Instr):
            self.owner.arg = label
        else:
            self.owner.target = label


def _edges(items: list[Any]) -> dict[int, list[_Edge]]:
    """For each label (by id), every jump and handler entry that reaches it."""
    Instr, Label = _bc.Instr, _bc.Label
    try_begin = getattr(_bc, "TryBegin", None)
    found: dict[int, list[_Edge]] = {}
    for index, item in enumerate(items):
        if isinstance(item, Instr):
            if isinstance(item.arg, Label):
                edge = _Edge(item, index, item.name in _SETUP_OPS)
                found.setdefault(id(item.arg), []).append(edge)
        elif try_begin is not None and isinstance(item, try_begin):
            found.setdefault(id(item.target), []).append(_Edge(item, index, True))
    return found


def _hook_plan(
    items: list[Any], start: int, lines: Mapping[int, _LineSlot]
) -> tuple[dict[int, tuple[_LineSlot, Any]], dict[int, Any]]:
    """Where line hooks go: {instr index: (slot, skip label)}, {index: skip label after it}.

    A hook at a 3.11 PUSH_EXC_INFO goes right after it (see ``_rewrite``).

    A hook goes before an instruction of an instrumented line when one way of
    reaching it would raise a settrace line event: the function start, falling
    through from another line, a jump from another line, a backward jump (not
    the re-entry of an ``await``'s SEND loop), or an exception handler that
    does more than clean up. Ways in that would not (falling through or
    jumping forward from the same line) are sent to a label after the hook.
    """
    Instr, Label = _bc.Instr, _bc.Label
    edges = _edges(items)
    hooks: dict[int, tuple[_LineSlot, Any]] = {}
    skips_after: dict[int, Any] = {}
    prev: int | None = None  # index of the previous instruction; None at the start
    for index in range(start, len(items)):
        instr = items[index]
        if not isinstance(instr, Instr):
            continue
        line = _line(instr)
        slot = lines.get(line) if line is not None else None
        before = prev
        prev = index
        if slot is None:
            continue
        previous = items[before] if before is not None else None
        if instr.name == "RESUME" or (
            _PY311 and previous is not None and previous.name in _GLUED_TO_NEXT
        ):
            continue
        ins: list[_Edge] = []
        cursor = index - 1
        while cursor >= start and not isinstance(items[cursor], Instr):
            if isinstance(items[cursor], Label):
                ins.extend(edges.get(id(items[cursor]), ()))
            cursor -= 1
        falls = previous is None or previous.name not in _NO_FALLTHROUGH
        fall_fires = previous is None or _line(previous) != line
        quiet: list[_Edge] = []
        fires = falls and fall_fires
        for edge in ins:
            if edge.handler:
                loud = instr.name not in _CLEANUP_OPS
            else:
                loud = edge.line() != line or (edge.index > index and instr.name != "SEND")
            if loud:
                fires = True
            else:
                quiet.append(edge)
        if not fires or (instr.name == "PUSH_EXC_INFO" and quiet):
            continue
        skip = None
        if quiet or (falls and not fall_fires):
            skip = Label()
            for edge in quiet:
                edge.retarget(skip)
            if falls and not fall_fires:
                assert before is not None  # fall_fires is True at the start
                skips_after[before] = skip
        hooks[index] = (slot, skip)
    return hooks, skips_after


def _wrap_exits_311(items: list[Any], body: int, handler: Any) -> list[Any]:
    """Cover every instruction from ``body`` on that no exception entry covers.

    Exception-table entries cannot nest, and an exception leaves the frame
    exactly from the instructions no entry covers, so these gaps get entries
    of our own that lead to ``handler``.
    """
    Instr, TryBegin, TryEnd = _bc.Instr, _bc.TryBegin, _bc.TryEnd
    out = items[:body]
    current: Any = None  # the enclosing TryBegin of the code itself
    ours: Any = None  # our open TryBegin
    for item in items[body:]:
        if isinstance(item, TryBegin):
            if ours is not None:
                out.append(TryEnd(ours))
                ours = None
            current = item
        elif isinstance(item, TryEnd):
            if current is not None and item.entry is current:
                current = None
        elif isinstance(item, Instr) and current is None and ours is None:
            ours = TryBegin(handler, True, 0)  # unwind to an empty stack
            out.append(ours)
        out.append(item)
    if ours is not None:
        out.append(TryEnd(ours))
    return out


def _rewrite(code: CodeType, lines: Mapping[int, _LineSlot], func: _FuncSlot | None) -> CodeType:
    """A copy of ``code`` with the line and function hooks injected."""
    Instr, Label = _bc.Instr, _bc.Label
    program = _bc.Bytecode.from_code(code)
    items = list(program)
    if _PY311:
        _keep_handler_depths(code, items)
        # Where each guarded line hook's entry unwinds to (before planning,
        # which retargets jumps to labels that are not in ``items``).
        depths = _stack_depths_311(items) if lines or func is not None else {}
    else:
        blocks = _block_depths_310(items) if lines or func is not None else {}
        depth = max(blocks.values(), default=0)
        if func is not None and depth >= _MAX_BLOCKS_310:
            # One more block would overflow the frame's fixed block stack, a
            # fatal error (abort) in CPython 3.10.
            raise RuntimeError(
                f"it nests {depth} try/with blocks, the most CPython 3.10 allows, "
                "which leaves none for the exit handler"
            )
        # A line guard is one more block (its handler's in its place), beside
        # our exit handler's: where none fits, the hook goes unguarded.
        room = _MAX_BLOCKS_310 - (func is not None)
        depths = {index: 0 for index, used in blocks.items() if used < room}
    start = _body_start(items)
    # Planning retargets some jumps to labels that are not in ``items`` yet.
    hooks, skips_after = _hook_plan(items, start, lines) if lines else ({}, {})

    first = next((item for item in items[start:] if isinstance(item, Instr)), None)
    first_location = first.location if first is not None else _no_location()
    handler = Label()
    out: list[Any] = items[:start]
    entry = _HostEntry()
    if func is not None:
        # The body starts on an empty stack, outside any exception entry.
        _guarded_call(_enter_hook, func, first_location, 0, entry, out)
        if not _PY311:
            out.append(Instr("SETUP_FINALLY", handler, location=first_location))
    body = len(out)
    TryBegin, TryEnd = getattr(_bc, "TryBegin", None), getattr(_bc, "TryEnd", None)
    for index in range(start, len(items)):
        item = items[index]
        if _PY311 and isinstance(item, TryBegin):
            if entry.original is not None:
                raise RuntimeError("an exception-table entry starts inside another")
            entry.open(item, out)
            continue
        if _PY311 and isinstance(item, TryEnd) and item.entry is entry.original:
            entry.close(out)
            entry.original = None
            continue
        hook = hooks.get(index)
        if hook is not None and item.name == "PUSH_EXC_INFO":
            # A handler's first instruction: the exception must be pushed as
            # handled before anything can raise, or the clean-up entry that
            # covers the handler would pop an exception state never pushed.
            out.append(item)
            after = depths.get(index)
            if after is not None:
                after += item.stack_effect(jump=False)
            _guarded_call(_line_hook, hook[0], item.location, after, entry, out)
            continue
        if hook is not None:
            _guarded_call(_line_hook, hook[0], item.location, depths.get(index), entry, out)
            if hook[1] is not None:
                out.append(hook[1])
        if func is not None and isinstance(item, Instr) and item.name == "RETURN_VALUE":
            if not _PY311:
                # Ours is the only block left at a return (the compiler pops its own).
                out.append(Instr("POP_BLOCK", location=item.location))
            _guarded_call(_exit_hook, func, item.location, depths.get(index), entry, out)
        out.append(item)
        skip = skips_after.get(index)
        if skip is not None:
            out.append(Instr("JUMP_FORWARD", skip, location=item.location))

    if func is not None:
        if _PY311:
            out = _wrap_exits_311(out, body, handler)
            out.append(handler)
            # Guarded: at the recursion limit the host's own exception, not
            # ours, must leave the frame. Its entry pushed lasti and the
            # exception over an empty stack.
            _guarded_call(_exit_hook, func, _no_location(), 2, _HostEntry(), out)
            # The entry pushed the raising instruction's offset: restore it.
            out.append(Instr("RERAISE", 1, location=_no_location()))
        else:
            out.append(handler)
            _guarded_call(_exit_hook, func, _no_location(), 0, _HostEntry(), out)
            out.append(Instr("RERAISE", 0, location=_no_location()))
    program.clear()
    program.extend(out)
    # Every injected sequence runs where the original code's stack is at most
    # co_stacksize deep and adds _CALL_DEPTH at most (its guard's handler
    # _GUARD_DEPTH); our exit handler starts from an empty stack. So the size
    # is known without the package's control-flow analysis, which (in
    # bytecode 0.19) mis-sizes exception entries that a jump enters past
    # their start, as our skip jumps do.
    stacksize = code.co_stacksize + max(_CALL_DEPTH, _GUARD_DEPTH)
    if func is not None:
        stacksize = max(stacksize, _HANDLER_DEPTH)
    if _PY311:
        new = program.to_code(stacksize=stacksize, compute_exception_stack_depths=False)
    else:
        new = _assemble_310(program, stacksize)
    if _lines_of(new) != _lines_of(code):
        # Never hand out code whose tracebacks would point at the wrong lines.
        raise RuntimeError(
            f"the rewritten code maps to lines {sorted(_lines_of(new) - _lines_of(code))} "
            f"it did not have, or lost {sorted(_lines_of(code) - _lines_of(new))}"
        )
    return new


def _lines_of(code: CodeType) -> set[int]:
    return {line for _, _, line in code.co_lines() if line is not None}


def _block_depths_310(items: list[Any]) -> dict[int, int]:
    """The 3.10 block-stack depth before each reachable instruction (by index
    in ``items``), following every path.

    SETUP_* push a block (its handler runs with an EXCEPT_HANDLER block in its
    place); POP_BLOCK and POP_EXCEPT pop one; unwinding past a handler pops.
    """
    Instr, Label = _bc.Instr, _bc.Label
    at = {id(item): index for index, item in enumerate(items) if isinstance(item, Label)}
    depths: dict[int, int] = {}
    work = [(0, 0)]
    while work:
        index, depth = work.pop()
        while index < len(items) and index not in depths:
            item = items[index]
            if not isinstance(item, Instr):
                index += 1
                continue
            depths[index] = depth
            index += 1
            name = item.name
            if name in _SETUP_OPS:
                depth += 1
                work.append((at[id(item.arg)], depth))
            elif name in ("POP_BLOCK", "POP_EXCEPT"):
                depth -= 1
            elif isinstance(item.arg, Label):
                work.append((at[id(item.arg)], depth))
            if name in _NO_FALLTHROUGH:
                break
    return depths


def _stack_depths_311(items: list[Any]) -> dict[int, int]:
    """The value-stack depth before each reachable instruction (by index in
    ``items``), following every jump and exception handler of the code.

    The effects are CPython's own (``dis.stack_effect``, with and without the
    jump), the ones its compiler sizes the stack with; an exception handler
    starts at its entry's depth plus lasti and the exception. A depth that
    disagrees between two paths means the analysis cannot be trusted, and a
    guard unwinding to a wrong depth would corrupt the frame: RuntimeError
    (the code is not instrumented).
    """
    Instr, Label, TryBegin = _bc.Instr, _bc.Label, _bc.TryBegin
    at = {id(item): index for index, item in enumerate(items) if isinstance(item, Label)}
    depths: dict[int, int] = {}
    work = [(0, 0)]
    for item in items:
        if isinstance(item, TryBegin):
            work.append((at[id(item.target)], item.stack_depth + int(item.push_lasti) + 1))
    while work:
        index, depth = work.pop()
        while index < len(items):
            item = items[index]
            index += 1
            if not isinstance(item, Instr):
                continue
            known = depths.get(index - 1)
            if known is not None:
                if known != depth:
                    raise RuntimeError(
                        f"the stack depth at {item.name} is {known} or {depth} depending on "
                        "the path"
                    )
                break
            depths[index - 1] = depth
            if isinstance(item.arg, Label):
                work.append((at[id(item.arg)], depth + item.stack_effect(jump=True)))
            if item.name in _NO_FALLTHROUGH:
                break
            if item.name == "RETURN_GENERATOR":
                # Resumed the first time, the frame has the value sent in
                # (popped by the next POP_TOP); dis counts the op itself as 0.
                depth += 1
            else:
                depth += item.stack_effect(jump=False)
    return depths


def _keep_handler_depths(code: CodeType, items: list[Any]) -> None:
    """Give each TryBegin the stack depth of the original exception-table entry.

    Injected code never changes the stack depth between original
    instructions, so the compiler's depths stay right; recomputing them is
    what goes wrong (see ``_rewrite``).
    """
    entries = _exception_entries(code.co_exceptiontable)
    begins = [item for item in items if isinstance(item, _bc.TryBegin)]
    if len(begins) != len(entries) or any(
        begin.push_lasti != lasti for begin, (_, lasti) in zip(begins, entries, strict=True)
    ):
        raise RuntimeError("the exception table does not match the decoded try blocks")
    for begin, (depth, _) in zip(begins, entries, strict=True):
        begin.stack_depth = depth


def _exception_entries(table: bytes) -> list[tuple[int, bool]]:
    """(stack depth, push lasti) of each 3.11 exception-table entry, in order.

    Entries are varints (6 bits a byte, bit 6 = more follows): start, length,
    target, depth << 1 | lasti; see CPython's exception_handling_notes.txt.
    """
    data = iter(table)
    found: list[tuple[int, bool]] = []

    def varint(first: int) -> int:
        value = first & 63
        while first & 64:
            first = next(data)
            value = (value << 6) | (first & 63)
        return value

    for byte in data:
        varint(byte)  # start
        varint(next(data))  # length
        varint(next(data))  # target
        packed = varint(next(data))
        found.append((packed >> 1, bool(packed & 1)))
    return found


def _assemble_310(program: Any, stacksize: int) -> CodeType:
    """``program.to_code()`` with a line table written here, for 3.10.

    bytecode 0.17 merges an instruction into a preceding run without a line
    when its line equals the last known one, so a generator's first line
    (right after GEN_START) lost its number. The table is rebuilt from the
    very instructions that were assembled, the way CPython 3.10 writes it.
    """
    concrete = program.to_concrete_bytecode()
    code = concrete.to_code(stacksize=stacksize)
    runs = [
        (instr.size, _line(instr)) for instr in concrete if isinstance(instr, _bc.ConcreteInstr)
    ]
    if sum(size for size, _ in runs) != len(code.co_code):
        raise RuntimeError("the assembled code does not match its instructions")
    return code.replace(co_linetable=_linetable_310(code.co_firstlineno, runs))


def _linetable_310(first_line: int, instructions: list[tuple[int, int | None]]) -> bytes:
    """A PEP 626 line table as CPython 3.10's ``assemble_line_range`` writes it.

    Pairs of (byte delta 0..254, line delta -127..127), line delta -128 for
    "no line"; line deltas add up from ``co_firstlineno``, skipping "no line".
    """
    table = bytearray()
    previous_line = first_line

    def emit(size: int, line: int | None) -> None:
        nonlocal previous_line
        if size == 0:
            return
        if line is None:
            delta = -128
        else:
            delta = line - previous_line
            previous_line = line
            while delta > 127:
                table.extend((0, 127))
                delta -= 127
            while delta < -127:
                table.extend((0, 256 - 127))
                delta += 127
        while size > 254:
            table.extend((254, delta & 0xFF))
            delta = -128 if line is None else 0
            size -= 254
        table.extend((size, delta & 0xFF))

    run_size = 0
    run_line: int | None = None
    for size, line in instructions:
        if run_size and line != run_line:
            emit(run_size, run_line)
            run_size = 0
        if not run_size:
            run_line = line
        run_size += size
    emit(run_size, run_line)
    return bytes(table)


# -- the backend -------------------------------------------------------------------


class _Node:
    """An original code object that carries hooks, or holds one that does."""

    __slots__ = ("func", "installed", "lines", "original", "parent")

    def __init__(self, original: CodeType, parent: CodeType | None) -> None:
        self.original = original
        self.parent = parent  # the original of the code holding this one in co_consts
        self.lines: dict[int, _LineSlot] = {}
        self.func: _FuncSlot | None = None
        self.installed: CodeType = original  # what live functions run now

    def empty(self) -> bool:
        return not self.lines and self.func is None


def _check_interpreter() -> None:
    version = sys.version_info[:2]
    if version not in _SUPPORTED:
        raise BackendError(
            f"the bytecode core serves CPython 3.10 and 3.11, not {sys.version.split()[0]}; "
            "3.12+ uses the monitoring core"
        )
    if sys.implementation.name != "cpython":
        raise BackendError(f"the bytecode core needs CPython, not {sys.implementation.name}")
    if _bc is None:
        raise BackendError("bytecode is not installed; pip install bytecode")
    found = tuple(int(p) for p in _bc.__version__.split(".")[:2] if p.isdigit())
    if found < _MIN_BYTECODE:
        raise BackendError(
            f"bytecode {_bc.__version__} is too old for Python {sys.version.split()[0]}; "
            f"need {'.'.join(map(str, _MIN_BYTECODE))} or newer"
        )


def _probe(value: int) -> int:
    doubled = value * 2
    if doubled > 100:
        raise ValueError(doubled)
    return doubled


def _self_test() -> None:
    """Instrument a small function and run it: proves this bytecode/CPython pair works."""
    seen: list[str] = []
    line = _probe.__code__.co_firstlineno + 1
    lines = {line: _LineSlot(lambda frame: seen.append(f"line {frame.f_locals['value']}"))}
    func = _FuncSlot((lambda frame: seen.append("enter"), lambda frame: seen.append("exit")))
    probe = FunctionType(_rewrite(_probe.__code__, lines, func), _probe.__globals__)
    if probe(3) != 6:
        raise RuntimeError("the instrumented probe returned a wrong result")
    try:
        probe(51)
    except ValueError:
        pass
    else:
        raise RuntimeError("the instrumented probe did not raise")
    want = ["enter", "line 3", "exit", "enter", "line 51", "exit"]
    if seen != want:
        raise RuntimeError(f"the instrumented probe reported {seen}, not {want}")


class BytecodeBackend(Backend):
    """Hooks injected into copies of the code objects, swapped onto live functions."""

    name = "bytecode"

    def __init__(self) -> None:
        _check_interpreter()
        try:
            _self_test()
        except Exception as exc:
            raise BackendError(
                f"bytecode {_bc.__version__} cannot instrument code on Python "
                f"{sys.version.split()[0]}: {exc}"
            ) from exc
        self.status = f"bytecode (bytecode {_bc.__version__})"
        self._nodes: dict[int, _Node] = {}  # id(original) -> node
        # id(copy) -> (weak reference to the copy, original). Weak: frames may
        # keep running a replaced copy, and its id must not be reused meanwhile.
        self._copies: dict[int, tuple[weakref.ref[CodeType], CodeType]] = {}

    # -- Backend interface -----------------------------------------------------------

    def canonical(self, code: CodeType) -> CodeType:
        entry = self._copies.get(id(code))
        if entry is not None and entry[0]() is code:
            return entry[1]
        return code

    def set_lines(self, path: CodePath, callbacks: Mapping[int, LineCallback]) -> None:
        node = self._nodes.get(id(self.canonical(path.code)))
        if node is None:
            if not callbacks:
                return
            node = self._node_for(path)
        old = node.lines
        if old.keys() != callbacks.keys():
            # Kept lines keep their slot; new lines get one in a new copy.
            node.lines = {line: old.get(line) or _LineSlot() for line in callbacks}
            try:
                self._rebuild(node)
            except BackendError:
                node.lines = old
                self._prune()
                raise
            for line, slot in old.items():
                if line not in callbacks:
                    slot.set(None)  # quiet in frames still running an older copy
        # Same lines: the copy stays and only the slots change (no rebuild).
        for line, callback in callbacks.items():
            node.lines[line].set(callback)

    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        node = self._nodes.get(id(self.canonical(path.code)))
        if node is not None and node.func is not None and callbacks is not None:
            node.func.set(callbacks)
            return
        if callbacks is None:
            if node is None or node.func is None:
                return
            old = node.func
            node.func = None
            try:
                self._rebuild(node)
            except BackendError:
                node.func = old
                raise
            old.set(None)
            return
        if node is None:
            node = self._node_for(path)
        node.func = _FuncSlot(callbacks)
        try:
            self._rebuild(node)
        except BackendError:
            node.func = None
            self._prune()
            raise

    def apply(self, changes: Sequence[Change]) -> list[BackendError | None]:
        if len(changes) < 2:
            return super().apply(changes)  # nothing to share: set_lines, set_function
        errors: list[BackendError | None] = [None] * len(changes)
        # (change index, node, its lines and function slot before the batch)
        staged: list[tuple[int, _Node, dict[int, _LineSlot], _FuncSlot | None]] = []
        trees: dict[int, tuple[_Node, list[int]]] = {}  # id(root original) -> root, staged
        for index, change in enumerate(changes):
            node = self._nodes.get(id(self.canonical(change.path.code)))
            if node is None:
                if not change.lines and change.function is None:
                    continue
                try:
                    node = self._node_for(change.path)
                except BackendError as exc:
                    errors[index] = exc
                    continue
            old_lines, old_func = node.lines, node.func
            # Kept lines keep their slot; new lines get one in the new copy.
            node.lines = {line: old_lines.get(line) or _LineSlot() for line in change.lines}
            if change.set_function:
                if change.function is None:
                    node.func = None
                elif node.func is None:
                    node.func = _FuncSlot()
            staged.append((index, node, old_lines, old_func))
            if node.lines.keys() != old_lines.keys() or (node.func is None) != (old_func is None):
                root = self._root(node)
                trees.setdefault(id(root.original), (root, []))[1].append(len(staged) - 1)
        built: list[tuple[_Node, CodeType]] = []
        retry: set[int] = set()  # positions in staged made again one at a time
        for root, members in trees.values():
            tree: list[tuple[_Node, CodeType]] = []
            try:
                self._build(root, tree, set())
            except Exception:
                for position in reversed(members):
                    _, node, old_lines, old_func = staged[position]
                    node.lines, node.func = old_lines, old_func
                retry.update(members)
                continue
            built.extend(tree)
        changed: dict[int, CodeType] = {}
        for node, new in built:
            if new is not node.installed:
                changed[id(node.original)] = new
                node.installed = new
                if new is not node.original:
                    self._remember(new, node.original)
        _swap(changed, self.canonical)  # one heap scan for the whole batch
        for position, (index, node, old_lines, old_func) in enumerate(staged):
            if position in retry:
                continue
            change = changes[index]
            for line, slot in old_lines.items():
                if line not in change.lines:
                    slot.set(None)  # quiet in frames still running an older copy
            for line, callback in change.lines.items():
                node.lines[line].set(callback)
            if change.set_function:
                if node.func is not None:
                    node.func.set(change.function)
                elif old_func is not None:
                    old_func.set(None)
        for position in sorted(retry):
            index = staged[position][0]
            change = changes[index]
            try:
                self.set_lines(change.path, change.lines)
                if change.set_function:
                    self.set_function(change.path, change.function)
            except BackendError as exc:
                errors[index] = exc
        self._prune()
        return errors

    def close(self) -> None:
        nodes = list(self._nodes.values())
        self._nodes.clear()
        for node in nodes:
            for slot in node.lines.values():
                slot.set(None)
            if node.func is not None:
                node.func.set(None)
        _swap({id(n.original): n.original for n in nodes}, self.canonical)
        self._copies.clear()

    # -- registry ----------------------------------------------------------------

    def _node_for(self, path: CodePath) -> _Node:
        """The node of ``path.code``, creating it and its parents' nodes as needed."""
        chain = [self.canonical(code) for code in (*path.parents, path.code)]
        for parent, child in itertools.pairwise(chain):
            if not any(const is child for const in parent.co_consts):
                raise BackendError(
                    f"{child.co_name} (line {child.co_firstlineno}) is not in the constants "
                    f"of {parent.co_name} (line {parent.co_firstlineno}); the code path is stale"
                )
        holder: CodeType | None = None
        node: _Node | None = None
        for code in chain:
            node = self._nodes.get(id(code))
            if node is None:
                node = self._nodes[id(code)] = _Node(code, holder)
            elif node.parent is None and holder is not None:
                node.parent = holder
            holder = code
        assert node is not None
        return node

    def _root(self, node: _Node) -> _Node:
        while node.parent is not None:
            parent = self._nodes.get(id(node.parent))
            if parent is None:
                break
            node = parent
        return node

    def _prune(self) -> None:
        """Forget nodes with nothing injected in them or below them."""
        for key, node in list(self._nodes.items()):
            if node.empty() and node.installed is node.original:
                del self._nodes[key]

    # -- building and installing ---------------------------------------------------

    def _rebuild(self, node: _Node) -> None:
        """Rebuild the tree holding ``node`` from the originals, then swap functions."""
        built: list[tuple[_Node, CodeType]] = []
        try:
            self._build(self._root(node), built, set())
        except Exception as exc:
            raise BackendError(
                f"cannot instrument {node.original.co_name} "
                f"({node.original.co_filename}:{node.original.co_firstlineno}): {exc}"
            ) from exc
        changed = {id(n.original): new for n, new in built if new is not n.installed}
        if not changed:
            return
        for n, new in built:
            n.installed = new
            if new is not n.original:
                self._remember(new, n.original)
        _swap(changed, self.canonical)
        self._prune()

    def _build(self, node: _Node, built: list[tuple[_Node, CodeType]], seen: set[int]) -> CodeType:
        """The code ``node.original`` should run now: children first, then its own hooks."""
        original = node.original
        seen.add(id(original))
        consts: list[Any] | None = None
        for index, const in enumerate(original.co_consts):
            if type(const) is not CodeType or id(const) in seen:
                continue
            child = self._nodes.get(id(const))
            if child is None:
                continue
            if child.parent is None:
                child.parent = original  # learnt here; lets later changes reach us
            new_child = self._build(child, built, seen)
            if new_child is not const:
                if consts is None:
                    consts = list(original.co_consts)
                consts[index] = new_child
        source = original if consts is None else original.replace(co_consts=tuple(consts))
        new = _rewrite(source, node.lines, node.func) if not node.empty() else source
        built.append((node, new))
        return new

    def _remember(self, copy: CodeType, original: CodeType) -> None:
        key = id(copy)
        copies = self._copies

        def forget(ref: weakref.ref[CodeType]) -> None:
            entry = copies.get(key)
            if entry is not None and entry[0] is ref:
                del copies[key]

        self._copies[key] = (weakref.ref(copy, forget), original)


def _swap(targets: Mapping[int, CodeType], canonical: Callable[[CodeType], CodeType]) -> None:
    """Point every live function whose code stems from a target's original at the target.

    ``targets`` maps id(original) to the code to run. Matching through
    ``canonical`` also catches functions that still run an older copy.
    """
    if not targets:
        return
    for obj in _functions():
        code = obj.__code__
        new = targets.get(id(canonical(code)))
        if new is not None and code is not new:
            obj.__code__ = new


def _functions() -> Iterable[FunctionType]:
    # FunctionType cannot be subclassed, so an exact type check is complete.
    return [obj for obj in gc.get_objects() if type(obj) is FunctionType]
