"""The narrow interface between the engine and an instrumentation mechanism.

Nothing outside ``runtime_agent.backends`` knows which mechanism runs: the
engine hands a backend *code paths* and plain callables, and the backend makes
the interpreter call them. Each mechanism lives in its own module
(``monitoring``, ``bytecode``, ``settrace``); ``choose`` picks one.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from runtime_agent import framelocals

#: Called when a line carrying actions is about to run, with the frame running
#: it. Returns False when nothing live is left at that line, so a backend that
#: can switch the location off (sys.monitoring's DISABLE) does so; the engine
#: calls ``set_lines`` again to switch it back on. A callback whose attribute
#: ``wants_frame`` is False may be passed None instead of the frame, which
#: spares a backend the cost of materialising it.
LineCallback = Callable[["FrameType | None"], bool]


def wants_frame(callback: LineCallback) -> bool:
    """Whether a line callback needs the frame (the default) or accepts None."""
    return getattr(callback, "wants_frame", True) is not False


#: Called on entry to and on every exit from (return or exception) a frame of
#: an instrumented function. Generators and coroutines are entered once, on
#: their first start, and exited once, when they finish.
FrameCallback = Callable[[FrameType], None]


@dataclass(frozen=True, eq=False)
class CodePath:
    """A live code object and the code objects that hold it in ``co_consts``.

    ``parents`` runs from the outermost code object (the ``__code__`` of a live
    function) down to the direct parent; it is empty when ``code`` itself is a
    live function's ``__code__``. Backends that rewrite code (bytecode) need
    the chain to rebuild the parents; the others ignore it.
    """

    code: CodeType
    parents: tuple[CodeType, ...] = ()


@dataclass(frozen=True, eq=False)
class Change:
    """What one code object carries after a batch (see ``Backend.apply``).

    ``lines`` replaces its line callbacks as ``set_lines`` would (empty
    removes them all). Its function callbacks change only when
    ``set_function`` is True: to ``function``, or off when that is None.
    """

    path: CodePath
    lines: Mapping[int, LineCallback]
    set_function: bool = False
    function: tuple[FrameCallback, FrameCallback] | None = None


class BackendError(Exception):
    """A backend could not instrument a code object; the message says why."""


class Backend(abc.ABC):
    """Makes the interpreter call the engine at chosen lines and functions.

    Calls come from the engine under its own lock, so implementations need no
    locking of their own for these methods. Callbacks, on the other hand, run
    on any thread of the host and must never raise (the engine's never do).
    """

    #: Name as used in ``RUNTIME_AGENT_CORE``.
    name: str = ""
    #: Which core runs and why, for people: ``"monitoring (tool id 3)"``, or
    #: ``"settrace: bytecode is not installed; pip install bytecode"`` after a
    #: fallback. The chooser sets it; the engine reports it in its status.
    status: str = ""

    def refusal(self, code: CodeType) -> str | None:
        """Why this core cannot run actions on ``code`` without changing host state.

        None when it can. The engine refuses the action at placement with
        this reason (the settrace core before 3.13, on code with closures).
        """
        return None

    def locals_hazard(self, code: CodeType) -> str | None:
        """Why reading ``f_locals`` of a running frame of ``code`` (not the one
        that fired, a caller of it) could change host state; None when it cannot.

        Snapshots ask before capturing a caller frame's locals.
        """
        return None

    #: Hands back the locals dict a callback read from the frame that fired:
    #: ``framelocals.release``, which empties it at once when only the frame
    #: holds it. None for a core whose callbacks run where the interpreter
    #: writes that dict back into the frame afterwards. Called directly by the
    #: action (no wrapper: ``release`` counts the references to the dict), with
    #: what ``framelocals.keep`` copied before the read.
    release_locals: Callable[[FrameType, Any, Any], None] | None = staticmethod(framelocals.release)

    @abc.abstractmethod
    def set_lines(self, path: CodePath, callbacks: Mapping[int, LineCallback]) -> None:
        """Instrument exactly these lines of ``path.code``; an empty mapping removes all.

        Replaces whatever line callbacks were set for that code object before
        and re-arms lines a callback switched off.
        """

    @abc.abstractmethod
    def set_function(
        self, path: CodePath, callbacks: tuple[FrameCallback, FrameCallback] | None
    ) -> None:
        """Call ``(on_enter, on_exit)`` around every run of ``path.code``; None removes them."""

    def apply(self, changes: Sequence[Change]) -> list[BackendError | None]:
        """Make every change, each as ``set_lines`` then (when it says so) ``set_function``.

        At most one change per code object. A change the core refuses is left
        out (that code object keeps what it had) without stopping the others:
        the result holds, per change, None or the BackendError that refused
        it. This loops; a core whose changes cost more than their sum (the
        bytecode core rebuilds code and scans the heap) shares that work
        across the batch.
        """
        errors: list[BackendError | None] = []
        for change in changes:
            try:
                self.set_lines(change.path, change.lines)
                if change.set_function:
                    self.set_function(change.path, change.function)
            except BackendError as exc:
                errors.append(exc)
            else:
                errors.append(None)
        return errors

    @abc.abstractmethod
    def close(self) -> None:
        """Remove every instrumentation this backend placed, restoring the original code."""

    def canonical(self, code: CodeType) -> CodeType:
        """The original code object for one this backend may have replaced.

        Location lookups find whatever code live functions run now; a backend
        that swaps ``__code__`` maps its copies back to the original here.
        """
        return code
