"""Reading a running frame's locals without keeping the application's objects alive.

Before 3.13, ``frame.f_locals`` of a function frame copies the fast locals
into a dict the frame keeps (``PyFrame_FastToLocals``) until the next read or
until the frame ends. A generator or coroutine suspended after a hit would
keep every local of that hit alive: ``__del__`` and weakref callbacks late,
memory the code released still held. So every reader of a frame's locals
here hands the dict back with ``release`` when it is done, which empties it
when nothing but the frame holds it. The next ``locals()`` or ``f_locals``
refills it in full, so the host sees no difference.

Not emptied: the namespace of module and class bodies (there ``f_locals`` is
the namespace itself), a dict the application holds (its own ``locals()``),
and frames under the settrace core before 3.13, whose trampoline writes the
dict back into the frame with ``PyFrame_LocalsToFast(frame, 1)`` after our
callback returns: an emptied dict would unbind every local. From 3.13
(PEP 667) ``f_locals`` is a write-through proxy that holds nothing.

That cached dict is also the one ``locals()`` returns, so a function that
keeps ``d = locals()`` would see ``d`` refilled (names bound since, values
changed, its own edits undone) by every read of ``f_locals`` after it. So a
reader first asks ``keep(frame)``: when the frame already has a dict that
someone besides the frame holds, it copies the content before the read, and
``release`` puts exactly that content back. ``keep`` finds the dict without
reading ``f_locals`` by reading the frame's pointer to it, at the offset of
the ``f_locals`` field (3.10: ``PyFrameObject.f_locals``; 3.11 and 3.12:
``_PyInterpreterFrame.f_locals`` through ``PyFrameObject.f_frame``), checked
at import on a real frame: the pointer must be NULL before ``locals()`` and
equal ``id(locals())`` after, else ``keep`` is off (``KEEPS`` False, the
reason in ``KEEP_DISABLED``) and a kept ``locals()`` dict is refreshed as
CPython itself would refresh it.
"""

from __future__ import annotations

import ctypes
import inspect
import sys
from types import FrameType
from typing import Any, Final

#: Whether ``f_locals`` of a function frame is a dict stored on the frame.
CACHED: Final = sys.version_info < (3, 13)
_OPTIMIZED: Final = inspect.CO_OPTIMIZED
_getrefcount = sys.getrefcount


def _references(frame: object, mapping: object) -> int:
    return _getrefcount(mapping)


def _only_the_frame() -> int:
    """What ``release`` counts when only the frame and its caller hold the dict.

    Measured rather than written down: the frame's reference, the caller's
    variable, the parameter and getrefcount's argument, plus the caller's
    value stack on 3.10, which keeps call arguments there during the call.
    """
    mapping: dict[str, Any] = {}
    the_frames_reference = (mapping,)
    count = _references(None, mapping)
    del the_frames_reference
    return count


_ONLY_THE_FRAME: Final = _only_the_frame()


#: What ``keep`` returns: the id of the frame's dict and its content.
Kept = tuple[int, dict[str, Any]]


def _memory() -> tuple[Any, int, int, str]:
    """The process's memory as 8-byte words, and the offsets of the frame's
    locals pointer (``first`` in the frame object; ``second``, if not 0, in
    the interpreter frame that the word at ``first`` points to); or why not.
    """
    if not CACHED:
        return None, 0, 0, "not needed: f_locals holds no dict from 3.13"
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None, 0, 0, "not CPython on a 64-bit build"
    try:
        # Every address of the process, as 8-byte words: one index reads one
        # aligned pointer, without building a ctypes object per read.
        words = memoryview((ctypes.c_uint64 * (1 << 44)).from_address(0)).cast("B").cast("Q")
    except Exception as exc:
        return None, 0, 0, f"memory view unavailable: {type(exc).__name__}"
    if sys.version_info < (3, 11):
        first, second = 56, 0  # PyFrameObject.f_locals
    else:  # PyFrameObject.f_frame, then _PyInterpreterFrame.f_locals
        first, second = 24, 24 if sys.version_info < (3, 12) else 40

    def address(frame: FrameType) -> int:
        at = words[(id(frame) + first) >> 3]
        return words[(at + second) >> 3] if second else at

    def before_and_after() -> tuple[int, int, int]:
        frame = sys._getframe()
        before = address(frame)
        mapping = locals()
        return before, address(frame), id(mapping)

    try:
        before, after, expected = before_and_after()
    except Exception as exc:
        return None, 0, 0, f"self-check failed: {type(exc).__name__}"
    if before != 0 or after != expected:
        return None, 0, 0, "self-check failed: the frame layout is not the one expected"
    return words, first, second, ""


_words, _FIRST, _SECOND, KEEP_DISABLED = _memory()
#: Whether ``keep`` can find a frame's dict before a read (see the module docstring).
KEEPS: Final = _words is not None
_object_at = ctypes.cast
_PY_OBJECT = ctypes.py_object


def keep(frame: FrameType) -> Kept | None:
    """Before reading ``frame.f_locals``: the content of the frame's cached dict
    if someone besides the frame holds it (a kept ``locals()``), to hand to
    ``release``; None otherwise, and always when ``KEEPS`` is False.

    Never raises: a frame whose dict cannot be read is not kept. The common
    case, no dict yet or one only the frame holds, costs two memory reads.
    """
    if _words is None:
        return None
    try:
        at = _words[(id(frame) + _FIRST) >> 3]
        if _SECOND:
            at = _words[(at + _SECOND) >> 3]
        if not at or _words[at >> 3] <= 1:
            return None  # no dict, or only the frame's reference (ob_refcnt)
        if not frame.f_code.co_flags & _OPTIMIZED:
            return None  # a module or class body: f_locals is its namespace, never refilled
        mapping = _object_at(at, _PY_OBJECT).value
        if type(mapping) is not dict:
            return None
        return id(mapping), dict(mapping)
    except Exception:  # a bug of ours: never into the host
        return None


def release(frame: FrameType, mapping: Any, kept: Kept | None = None) -> None:
    """Empty ``frame``'s cached locals dict ``mapping`` if only the frame holds it;
    put back the content ``keep`` copied if someone else does.

    The caller holds exactly one reference: the variable it passes. A no-op
    for module and class bodies and for dicts someone else holds that were
    not kept; callers skip it from 3.13 and under a core that writes the dict
    back (``Backend.writes_locals_back``).
    """
    if type(mapping) is not dict:
        return
    if kept is not None and id(mapping) == kept[0]:
        # Exactly what it held, in its order: nothing compared, nothing freed
        # (the copy holds every value that was there, the frame the others).
        mapping.clear()
        mapping.update(kept[1])
        return
    if _getrefcount(mapping) == _ONLY_THE_FRAME and frame.f_code.co_flags & _OPTIMIZED:
        mapping.clear()
