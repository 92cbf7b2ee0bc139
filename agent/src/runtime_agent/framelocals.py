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
"""

from __future__ import annotations

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


def release(frame: FrameType, mapping: Any) -> None:
    """Empty ``frame``'s cached locals dict ``mapping`` if only the frame holds it.

    The caller holds exactly one reference: the variable it passes. A no-op
    for module and class bodies and for dicts someone else holds; callers
    skip it from 3.13 and under a core that writes the dict back
    (``Backend.writes_locals_back``).
    """
    if (
        type(mapping) is dict
        and _getrefcount(mapping) == _ONLY_THE_FRAME
        and frame.f_code.co_flags & _OPTIMIZED
    ):
        mapping.clear()
