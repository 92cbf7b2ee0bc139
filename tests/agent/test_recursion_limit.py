"""Actions at the host's deepest working recursion depth (issue 9, item 8).

The host's own behaviour must not change: the same depth works, one level
more raises RecursionError from host code, and an exception the host raises
and handles there stays its own. Each is checked with the action in the
recursing function and in a leaf it calls at the bottom (a different frame
shape: on 3.10 only the leaf leaves no room for a trampoline).

The bytecode core guards every injected call in the host frame, so a
trampoline that cannot be entered changes nothing. The monitoring and
settrace cores cannot: CPython calls their Python callbacks in a new frame
and raises into the host frame when it cannot enter one (see GAPS); those
equalities are strict xfails, which fail loudly once CPython or the agent
closes them.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterator

import pytest

from conftest import DEFAULT_CORE
from runtime_agent import Engine

HERE = os.path.abspath(__file__)


def line_with(func: Callable[..., object], text: str) -> str:
    """The location of the line of ``func`` that contains ``text``."""
    lines, start = inspect.getsourcelines(func)
    return f"{HERE}:{start + next(i for i, line in enumerate(lines) if text in line)}"


def rec(n: int) -> int:
    if n <= 0:  # the action's line: runs at every depth, the deepest included
        return 0
    return rec(n - 1) + 1


def leaf(n: int) -> int:
    return n + 1  # the leaf's action line: runs only at the bottom


def rec_to_leaf(n: int) -> int:
    if n <= 0:
        return leaf(n)
    return rec_to_leaf(n - 1) + 1


#: Where the action goes: (recursing function, its line, its function location).
TARGETS: dict[str, tuple[Callable[[int], int], str, str]] = {
    "recursing": (rec, line_with(rec, "the action's line"), f"{HERE}:rec"),
    "leaf": (rec_to_leaf, line_with(leaf, "the leaf's action line"), f"{HERE}:leaf"),
}


def deepest(func: Callable[[int], int]) -> int:
    """The largest n for which func(n) works, from this fixed stack depth."""
    low, high = 0, sys.getrecursionlimit() + 10
    while low < high:
        middle = (low + high + 1) // 2
        try:
            func(middle)
            low = middle
        except RecursionError:
            high = middle - 1
    return low


def innermost(func: Callable[[int], int], depth: int) -> traceback.FrameSummary:
    """Where func(depth) raises RecursionError (called from deepest's stack depth)."""
    try:
        func(depth)
    except RecursionError as exc:
        return traceback.extract_tb(exc.__traceback__)[-1]
    raise AssertionError(f"{func.__name__}({depth}) did not raise RecursionError")


#: Why a core's callback changes the host at its deepest frame (None: it does not).
GAPS: dict[str, str | None] = {
    # The injected call sits in a try block of the host frame (backends/bytecode.py).
    "bytecode": None,
    # CPython calls the callback (a Python function) in a new frame, and when it
    # cannot enter one, call_one_instrument fails and the error is raised into
    # the monitored frame: RecursionError one call earlier, from the host's
    # line. Only native code could run without a frame; the agent is
    # stdlib-only on 3.12+.
    "monitoring": "sys.monitoring raises a callback it cannot enter into the host frame",
    # The trace function is entered on every call and line event of a traced
    # thread; at the deepest frame CPython cannot enter it, raises RecursionError
    # one call earlier and clears the thread's trace function
    # (python/cpython#134216), so actions see no more hits from that thread.
    "settrace": "CPython raises a trace function it cannot enter and drops it",
}


def known_gap(core: str, request: pytest.FixtureRequest) -> None:
    gap = GAPS[core]
    if gap is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{gap} (issue 9)"))


KINDS = ("counter", "duration", "log", "snapshot")


def place(eng: Engine, kind: str, where: str) -> str:
    _, line, function = TARGETS[where]
    if kind == "counter":
        status = eng.add_counter(line, max_hits=10**9)
    elif kind == "log":
        status = eng.add_log(line, "n={n}", max_hits=10**9, rate_limit=1e9)
    elif kind == "snapshot":
        status = eng.add_snapshot(line, max_hits=10**9, rate_limit=1e9)
    else:
        status = eng.add_duration(function, max_hits=10**9)
    assert status.state == "installed", status.message
    return status.id


@pytest.fixture(params=[DEFAULT_CORE, "settrace"])
def core(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "settrace" and sys.version_info < (3, 11):
        pytest.skip("the settrace core refuses every action on 3.10")
    yield request.param


@pytest.mark.parametrize("kind", KINDS)
def test_actions_survive_the_recursion_limit_and_errors_stay_the_hosts(core, kind):
    base = deepest(rec)
    with Engine(core=core, cpu_budget=1.0) as eng:
        action_id = place(eng, kind, "recursing")
        with_agent = deepest(rec)
        beyond = innermost(rec, with_agent + 1)
        action = eng.status(action_id)
        # Never an internal error: a hit the limit leaves no room for is skipped.
        assert action.state == "installed", action.message
        assert action.hits > 0
    assert base - 1 <= with_agent <= base
    # The RecursionError comes from the host's frame, not from an agent frame.
    assert beyond.filename == HERE and beyond.name == "rec"


@pytest.mark.parametrize("where", sorted(TARGETS))
@pytest.mark.parametrize("kind", KINDS)
def test_deepest_working_depth_is_the_hosts_own(core, kind, where, request):
    known_gap(core, request)
    func = TARGETS[where][0]
    base = deepest(func)
    base_error = innermost(func, base + 1)
    with Engine(core=core, cpu_budget=1.0) as eng:
        action_id = place(eng, kind, where)
        with_agent = deepest(func)
        error = innermost(func, with_agent + 1)
        # Still instrumented afterwards (CPython drops a trace function that
        # fails, which would make the depths above look equal).
        hits = eng.status(action_id).hits
        func(3)
        eng.flush()
        assert eng.status(action_id).hits > hits
    assert with_agent == base
    assert (error.name, error.lineno) == (base_error.name, base_error.lineno)


def untargeted(n: int) -> int:
    if n <= 0:
        return 0
    return untargeted(n - 1) + 1


def untargeted_at(n: int) -> bool:
    """Whether untargeted(n) works, called from deepest's stack depth."""
    try:
        untargeted(n)
        return True
    except RecursionError:
        return False


def test_code_without_actions_keeps_its_deepest_depth(core, request):
    if core == "settrace":
        # The global trace function is entered on the call event of every
        # frame of a traced thread, targeted or not.
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{GAPS[core]} (issue 9)"))
    base = deepest(untargeted)
    with Engine(core=core, cpu_budget=1.0) as eng:
        place(eng, "counter", "recursing")
        assert untargeted_at(base)


# -- the host's own exceptions at the deepest frame ----------------------------------


def raise_and_handle(err: KeyError) -> None:
    """The bottom frame: raise ``err``, handle it, and raise it again."""
    try:
        raise err
    except KeyError:
        handled = err  # the action's line: its hook runs inside the host's except block
        del handled
        raise  # must re-raise the host's exception, whatever the hook did


def handles(n: int, err: KeyError) -> tuple[object, ...]:
    """Recurse ``n`` deep to raise_and_handle; one level up from it, catch
    the bare re-raise and report what was seen."""
    if n > 0:
        try:
            return handles(n - 1, err)
        except KeyError as exc:
            # There is room for a call again here.
            return ("caught", exc, sys.exc_info()[1], exc.__context__)
    raise_and_handle(err)
    raise AssertionError("raise_and_handle returned")


HANDLED_LINE = line_with(raise_and_handle, "handled = err")
HANDLES_FUNCTION = f"{HERE}:raise_and_handle"


def handled_at(n: int, err: KeyError) -> tuple[object, ...]:
    """handles(n), called from the stack depth deepest_handled calls it from."""
    return handles(n, err)


def deepest_handled() -> int:
    """The largest n for which handles(n) returns what it caught."""
    low, high = 0, sys.getrecursionlimit() + 10
    while low < high:
        middle = (low + high + 1) // 2
        try:
            handles(middle, KeyError("probe"))
            low = middle
        except RecursionError:
            high = middle - 1
    return low


@pytest.mark.parametrize("kind", ["counter", "duration"])
def test_the_hosts_exception_stays_its_own_at_the_deepest_frame(core, kind, request):
    known_gap(core, request)
    base = deepest_handled()
    with Engine(core=core, cpu_budget=1.0) as eng:
        if kind == "counter":
            status = eng.add_counter(HANDLED_LINE, max_hits=10**9)
        else:
            status = eng.add_duration(HANDLES_FUNCTION, max_hits=10**9)
        err = KeyError("the host's")
        seen = handled_at(base, err)
        handles(3, KeyError("again"))
        eng.flush()
        hits = eng.status(status.id).hits
    # The bare raise re-raised the host's exception: the handled exception
    # was still the host's after the line, and nothing was chained to it.
    assert seen == ("caught", err, err, None)
    assert hits > 0
