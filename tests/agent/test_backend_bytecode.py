"""The bytecode backend (3.10, 3.11): injected line and function hooks, exact restore.

Target code lives in a module written to a temporary directory and imported
fresh for each test, so every test starts from pristine code objects. Lines
are found by their ``# L:name`` markers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dis
import importlib.util
import inspect
import pickle
import sys
import textwrap
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="bytecode backend serves 3.10 and 3.11; 3.12+ uses sys.monitoring",
)

if sys.version_info < (3, 12):
    from runtime_agent.backends import bytecode as bb
    from runtime_agent.backends import choose_backend
    from runtime_agent.backends.base import BackendError, CodePath
    from runtime_agent.backends.bytecode import BytecodeBackend

TARGET = textwrap.dedent(
    """
    import asyncio
    import contextlib
    import functools
    import sys


    def plain(a, b):
        total = a + b  # L:plain
        return total * 2


    class Shape:
        def __init__(self, side):
            self.side = side

        def area(self):
            result = self.side * self.side  # L:method
            return result

        @staticmethod
        def unit(n):
            doubled = n * 2  # L:static
            return doubled

        @classmethod
        def make(cls, side):
            made = cls(side)  # L:classmethod
            return made


    def make_adder(base):
        def adder(x):
            summed = base + x  # L:closure
            return summed

        return adder


    existing_adder = make_adder(10)


    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper


    @logged
    def decorated(x):
        scaled = x * 3  # L:decorated
        return scaled


    def countdown(n):
        while n > 0:
            yield n  # L:gen_yield
            n -= 1
        done = "done"  # L:gen_end
        return done


    async def fetch(n):
        total = 0
        for i in range(n):
            await asyncio.sleep(0)  # L:await
            total += i
        return total


    async def ticker(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 10  # L:agen


    square = lambda v: v * v  # L:lambda


    def squares(n):
        out = [v * v for v in range(n)]  # L:listcomp
        return out


    def loop_sum(n):
        total = 0
        for i in range(n):  # L:for_header
            total += i  # L:for_body
        return total


    def guarded(x):
        try:
            value = 10 // x  # L:try_body
        except ZeroDivisionError:
            value = -1  # L:except_body
        finally:
            value += 1  # L:finally_body
        with contextlib.suppress(KeyError):
            value *= 2  # L:with_body
            if x == 5:
                raise KeyError(x)
        return value


    def fails(x):
        y = x + 1
        return y // 0  # L:raises


    def handler_state():
        try:
            raise ValueError("host")
        except ValueError:
            seen = sys.exc_info()[1]  # L:in_except
            again = sys.exc_info()[1]
            return seen, again


    def reraiser():
        try:
            raise LookupError("mine")
        except LookupError:
            marker = 1  # L:before_reraise
            raise


    def outer(n):
        base = n * 2  # L:outer
        def inner(k):
            return base + k  # L:inner
        return [inner(i) for i in range(n)]  # L:outer_comp


    def spin(n):
        acc = 0
        k = 0
        while k < n:
            acc += k  # L:spin
            k += 1
        return acc


    def pick(a, b, c):
        first = a and b or "none"  # L:pick
        both = (first and c  # L:pick_join
                and b)
        return both


    def suppressing(x):
        with contextlib.suppress(KeyError):  # L:with_header
            raise KeyError(x)
        return x


    def retrying(n):
        done = 0
        for i in range(n):
            try:
                if i % 2:
                    raise ValueError(i)
                done += 1
            except ValueError:
                done -= 1
                continue
            finally:
                done *= 1
        return done
    """
)

MARKERS = {
    text.split("# L:")[1].strip(): number
    for number, text in enumerate(TARGET.splitlines(), start=1)
    if "# L:" in text
}


def line(name: str) -> int:
    return MARKERS[name]


_loaded = 0


@pytest.fixture
def mod(tmp_path: Path) -> Iterator[types.ModuleType]:
    """A freshly imported copy of the target module."""
    global _loaded
    _loaded += 1
    name = f"bytecode_target_{_loaded}"
    path = tmp_path / f"{name}.py"
    path.write_text(TARGET)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        sys.modules.pop(name, None)


@pytest.fixture
def backend() -> Iterator[BytecodeBackend]:
    b = BytecodeBackend()
    try:
        yield b
    finally:
        b.close()


def _lines(code: types.CodeType) -> set[int]:
    return {ln for *_, ln in code.co_lines() if ln is not None}


def path_of(func: Any, *names: str) -> CodePath:
    """The code path of ``func`` or of code nested in it, by co_name at each level."""
    code = func.__code__
    parents: tuple[types.CodeType, ...] = ()
    for name in names:
        child = next(
            c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == name
        )
        parents = (*parents, code)
        code = child
    return CodePath(code, parents)


class Recorder:
    """Line callbacks that record what they saw."""

    def __init__(self) -> None:
        self.hits: collections.Counter[int] = collections.Counter()
        self.locals: list[dict[str, Any]] = []
        self.frames: list[tuple[str, int | None]] = []

    def at(self, lineno: int) -> Callable[[types.FrameType | None], bool]:
        def callback(frame: types.FrameType | None) -> bool:
            assert frame is not None
            self.hits[lineno] += 1
            self.locals.append(dict(frame.f_locals))
            self.frames.append((frame.f_code.co_name, frame.f_lineno))
            return True

        return callback


class FuncRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @property
    def pair(self) -> tuple[Callable[[types.FrameType], None], Callable[[types.FrameType], None]]:
        return (
            lambda frame: self.events.append(("enter", frame.f_code.co_name)),
            lambda frame: self.events.append(("exit", frame.f_code.co_name)),
        )

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.events if k == kind)


# -- line hooks on every shape of function ------------------------------------------


def test_plain_function_hook_sees_the_frame_before_the_line_runs(mod, backend):
    rec = Recorder()
    original = mod.plain.__code__
    backend.set_lines(path_of(mod.plain), {line("plain"): rec.at(line("plain"))})
    assert mod.plain.__code__ is not original
    assert mod.plain(1, 2) == 6
    assert rec.hits == {line("plain"): 1}
    # The line has not run yet: its target is not bound.
    assert rec.locals == [{"a": 1, "b": 2}]
    assert rec.frames == [("plain", line("plain"))]


def test_methods_staticmethods_and_classmethods(mod, backend):
    rec = Recorder()
    for func, name in (
        (mod.Shape.area, "method"),
        (mod.Shape.unit, "static"),
        (mod.Shape.make.__func__, "classmethod"),
    ):
        backend.set_lines(path_of(func), {line(name): rec.at(line(name))})
    shape = mod.Shape(3)  # created before nothing: methods live on the class
    assert shape.area() == 9
    assert mod.Shape.unit(4) == 8
    assert mod.Shape.make(2).side == 2
    assert rec.hits == {line("method"): 1, line("static"): 1, line("classmethod"): 1}
    assert rec.locals[0]["self"] is shape
    assert rec.locals[1] == {"n": 4}
    assert rec.locals[2]["cls"] is mod.Shape


def test_closure_existing_and_created_after_installation(mod, backend):
    rec = Recorder()
    adder_path = path_of(mod.make_adder, "adder")
    original = adder_path.code
    assert mod.existing_adder.__code__ is original
    backend.set_lines(adder_path, {line("closure"): rec.at(line("closure"))})
    # The closure object that already existed now runs the instrumented copy.
    assert mod.existing_adder(1) == 11
    # One made after installation comes from the rebuilt parent.
    later = mod.make_adder(100)
    assert later.__code__ is mod.existing_adder.__code__
    assert later(5) == 105
    assert rec.hits == {line("closure"): 2}
    assert [(d["base"], d["x"]) for d in rec.locals] == [(10, 1), (100, 5)]
    backend.set_lines(adder_path, {})
    assert mod.existing_adder.__code__ is original
    assert later.__code__ is original
    assert mod.make_adder(1).__code__ is original


def test_decorated_function_with_functools_wraps(mod, backend):
    rec = Recorder()
    inner = mod.decorated.__wrapped__
    original = inner.__code__
    backend.set_lines(path_of(inner), {line("decorated"): rec.at(line("decorated"))})
    assert mod.decorated(2) == 6  # called through the wrapper
    assert rec.hits == {line("decorated"): 1}
    assert rec.locals == [{"x": 2}]
    backend.set_lines(path_of(inner), {})
    assert inner.__code__ is original


def test_generator_keeps_its_frame_set_up(mod, backend):
    rec = Recorder()
    original = mod.countdown.__code__
    backend.set_lines(
        path_of(mod.countdown),
        {line("gen_yield"): rec.at(line("gen_yield")), line("gen_end"): rec.at(line("gen_end"))},
    )
    gen = mod.countdown(3)
    assert list(gen) == [3, 2, 1]
    assert rec.hits == {line("gen_yield"): 3, line("gen_end"): 1}
    assert [d["n"] for d in rec.locals[:3]] == [3, 2, 1]
    # Nothing was injected before the frame set-up instructions.
    head = [i.opname for i in dis.get_instructions(mod.countdown.__code__)]
    want = [i.opname for i in dis.get_instructions(original)]
    preamble = want.index("RESUME") + 1 if "RESUME" in want else 1
    assert head[:preamble] == want[:preamble]


def test_coroutine_under_asyncio(mod, backend):
    rec = Recorder()
    backend.set_lines(path_of(mod.fetch), {line("await"): rec.at(line("await"))})
    assert asyncio.run(mod.fetch(4)) == 6
    assert rec.hits == {line("await"): 4}
    assert [d["i"] for d in rec.locals] == [0, 1, 2, 3]


def test_async_generator(mod, backend):
    rec = Recorder()
    backend.set_lines(path_of(mod.ticker), {line("agen"): rec.at(line("agen"))})

    async def collect() -> list[int]:
        return [v async for v in mod.ticker(3)]

    assert asyncio.run(collect()) == [0, 10, 20]
    assert rec.hits == {line("agen"): 3}


def test_lambda(mod, backend):
    rec = Recorder()
    original = mod.square.__code__
    backend.set_lines(path_of(mod.square), {line("lambda"): rec.at(line("lambda"))})
    assert mod.square(7) == 49
    assert rec.locals == [{"v": 7}]
    backend.set_lines(path_of(mod.square), {})
    assert mod.square.__code__ is original


def test_list_comprehension_is_nested_code(mod, backend):
    rec = Recorder()
    comp = path_of(mod.squares, "<listcomp>")
    parent = mod.squares.__code__
    backend.set_lines(comp, {line("listcomp"): rec.at(line("listcomp"))})
    # The parent is rebuilt to carry the instrumented comprehension.
    assert mod.squares.__code__ is not parent
    assert backend.canonical(mod.squares.__code__) is parent
    assert mod.squares(4) == [0, 1, 4, 9]
    # Once on entry of the comprehension's frame, once per jump back to its loop.
    assert rec.hits[line("listcomp")] == 5
    assert rec.frames[0][0] == "<listcomp>"
    backend.set_lines(comp, {})
    assert mod.squares.__code__ is parent


def test_line_in_a_for_loop_counts_iterations(mod, backend):
    in_body, in_header = Recorder(), Recorder()
    body, header = line("for_body"), line("for_header")
    backend.set_lines(path_of(mod.loop_sum), {body: in_body.at(body), header: in_header.at(header)})
    assert mod.loop_sum(5) == 10
    assert in_body.hits[body] == 5
    assert [d["i"] for d in in_body.locals] == [0, 1, 2, 3, 4]
    # Like settrace: the header runs on entry and on each jump back (the last one ends the loop).
    assert in_header.hits[header] == 6
    assert "i" not in in_header.locals[0]


def test_lines_in_try_except_finally_and_with(mod, backend):
    rec = Recorder()
    names = ("try_body", "except_body", "finally_body", "with_body")
    backend.set_lines(path_of(mod.guarded), {line(n): rec.at(line(n)) for n in names})
    assert mod.guarded(2) == 12
    assert rec.hits == {line("try_body"): 1, line("finally_body"): 1, line("with_body"): 1}
    rec.hits.clear()
    assert mod.guarded(0) == 0
    assert rec.hits == {
        line("try_body"): 1,
        line("except_body"): 1,
        line("finally_body"): 1,
        line("with_body"): 1,
    }
    rec.hits.clear()
    assert mod.guarded(5) == 6  # the KeyError is swallowed by suppress
    assert rec.hits[line("with_body")] == 1


def test_exception_at_the_instrumented_line_keeps_its_traceback_line(mod, backend):
    rec = Recorder()
    backend.set_lines(path_of(mod.fails), {line("raises"): rec.at(line("raises"))})
    backend.set_function(path_of(mod.fails), FuncRecorder().pair)
    with pytest.raises(ZeroDivisionError) as info:
        mod.fails(1)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.name, last.lineno) == ("fails", line("raises"))
    assert last.line is not None and "y // 0" in last.line
    assert rec.hits == {line("raises"): 1}


def test_line_numbers_and_source_are_unchanged(mod, backend):
    paths = [path_of(mod.guarded), path_of(mod.countdown), path_of(mod.outer, "inner")]
    before = {id(p.code): p.code for p in paths}
    for p in paths:
        backend.set_lines(p, {ln: (lambda frame: True) for ln in _lines(p.code)})
        backend.set_function(p, FuncRecorder().pair)
    for func in (mod.guarded, mod.countdown):
        new, old = func.__code__, before[id(backend.canonical(func.__code__))]
        assert new is not old
        assert _lines(new) == _lines(old)
        assert new.co_firstlineno == old.co_firstlineno
        assert inspect.getsourcelines(func)[1] == old.co_firstlineno
        # Each injected call pushes up to three items where the stack may be full.
        assert new.co_stacksize >= old.co_stacksize + 3


# -- removal, composition, canonical ---------------------------------------------------


def test_removal_restores_the_exact_original_code(mod, backend):
    originals = {f: f.__code__ for f in (mod.plain, mod.loop_sum, mod.countdown)}
    for func in originals:
        backend.set_lines(path_of(func), {func.__code__.co_firstlineno + 1: lambda frame: True})
        backend.set_function(path_of(func), FuncRecorder().pair)
    assert all(f.__code__ is not c for f, c in originals.items())
    for func, code in originals.items():
        backend.set_lines(CodePath(code), {})
        assert func.__code__ is not code  # the function hooks are still there
        backend.set_function(CodePath(code), None)
        assert func.__code__ is code
    assert mod.plain(1, 1) == 4


def test_several_lines_and_parent_child_composition(mod, backend):
    rec = Recorder()
    outer = path_of(mod.outer)
    inner = path_of(mod.outer, "inner")
    comp = path_of(mod.outer, "<listcomp>")
    original = outer.code
    backend.set_lines(outer, {line("outer"): rec.at(line("outer"))})
    backend.set_lines(inner, {line("inner"): rec.at(line("inner"))})
    backend.set_lines(
        outer,
        {line("outer"): rec.at(line("outer")), line("outer_comp"): rec.at(line("outer_comp"))},
    )
    backend.set_lines(comp, {line("outer_comp"): rec.at(line("outer_comp"))})
    assert mod.outer(3) == [6, 7, 8]
    # outer: its line and the comprehension line; listcomp: entry + 4 jumps back; inner: 3 calls.
    assert rec.hits == {line("outer"): 1, line("outer_comp"): 1 + 4, line("inner"): 3}

    # Removing the parent's lines keeps the children instrumented.
    backend.set_lines(outer, {})
    rec.hits.clear()
    assert mod.outer(2) == [4, 5]
    assert rec.hits == {line("outer_comp"): 3, line("inner"): 2}
    assert mod.outer.__code__ is not original
    assert backend.canonical(mod.outer.__code__) is original

    backend.set_lines(comp, {})
    backend.set_lines(inner, {})
    assert mod.outer.__code__ is original
    rec.hits.clear()
    assert mod.outer(2) == [4, 5]
    assert not rec.hits


def test_changing_callbacks_of_the_same_lines_needs_no_rebuild(mod, backend):
    first, second = Recorder(), Recorder()
    path = path_of(mod.plain)
    backend.set_lines(path, {line("plain"): first.at(line("plain"))})
    copy = mod.plain.__code__
    backend.set_lines(path, {line("plain"): second.at(line("plain"))})
    assert mod.plain.__code__ is copy
    mod.plain(1, 1)
    assert not first.hits
    assert second.hits == {line("plain"): 1}


def test_canonical_maps_copies_back_and_leaves_other_code_alone(mod, backend):
    original = mod.plain.__code__
    backend.set_lines(path_of(mod.plain), {line("plain"): lambda frame: True})
    assert backend.canonical(mod.plain.__code__) is original
    assert backend.canonical(original) is original
    assert backend.canonical(mod.loop_sum.__code__) is mod.loop_sum.__code__


def test_close_restores_everything(mod, backend):
    functions = [mod.plain, mod.existing_adder, mod.squares, mod.countdown, mod.Shape.area]
    originals = [f.__code__ for f in functions]
    backend.set_lines(path_of(mod.plain), {line("plain"): lambda frame: True})
    backend.set_lines(path_of(mod.make_adder, "adder"), {line("closure"): lambda frame: True})
    backend.set_lines(path_of(mod.squares, "<listcomp>"), {line("listcomp"): lambda frame: True})
    backend.set_function(path_of(mod.countdown), FuncRecorder().pair)
    backend.set_function(path_of(mod.Shape.area), FuncRecorder().pair)
    backend.close()
    assert all(f.__code__ is c for f, c in zip(functions, originals))


def test_stale_code_path_is_refused(mod, backend):
    inner = path_of(mod.outer, "inner").code
    with pytest.raises(BackendError, match="not in the constants"):
        backend.set_lines(CodePath(inner, (mod.plain.__code__,)), {line("inner"): lambda f: True})
    assert mod.plain.__code__.co_name == "plain"
    assert backend.canonical(mod.plain.__code__) is mod.plain.__code__


# -- function hooks --------------------------------------------------------------------------


def test_function_enter_and_exit_on_return_and_on_exception(mod, backend):
    rec = FuncRecorder()
    backend.set_function(path_of(mod.fails), rec.pair)
    backend.set_function(path_of(mod.plain), rec.pair)
    assert mod.plain(2, 3) == 10
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            mod.fails(1)
    assert (
        rec.events
        == [("enter", "plain"), ("exit", "plain")]
        + [
            ("enter", "fails"),
            ("exit", "fails"),
        ]
        * 3
    )


def test_function_exit_frame_is_the_instrumented_frame(mod, backend):
    seen: list[dict[str, Any]] = []
    backend.set_function(
        path_of(mod.plain),
        (
            lambda frame: seen.append(dict(frame.f_locals)),
            lambda frame: seen.append(dict(frame.f_locals)),
        ),
    )
    mod.plain(4, 5)
    assert seen == [{"a": 4, "b": 5}, {"a": 4, "b": 5, "total": 9}]


def test_function_hooks_on_generators_enter_once_and_exit_once(mod, backend):
    rec = FuncRecorder()
    backend.set_function(path_of(mod.countdown), rec.pair)
    gen = mod.countdown(3)
    assert rec.events == []  # created, not started
    assert next(gen) == 3
    assert next(gen) == 2
    assert rec.events == [("enter", "countdown")]
    assert list(gen) == [1]
    assert rec.events == [("enter", "countdown"), ("exit", "countdown")]
    # Closing a suspended generator is an exit by exception (GeneratorExit).
    rec.events.clear()
    gen = mod.countdown(5)
    next(gen)
    gen.close()
    assert rec.events == [("enter", "countdown"), ("exit", "countdown")]


def test_function_hooks_on_coroutines_and_exceptions_inside_them(mod, backend):
    rec = FuncRecorder()
    backend.set_function(path_of(mod.fetch), rec.pair)
    assert asyncio.run(mod.fetch(3)) == 3
    assert rec.events == [("enter", "fetch"), ("exit", "fetch")]

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(mod.fetch(1000))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    rec.events.clear()
    asyncio.run(cancel_midway())
    assert rec.events == [("enter", "fetch"), ("exit", "fetch")]


def test_function_and_line_hooks_together_and_nested(mod, backend):
    rec, lines = FuncRecorder(), Recorder()
    backend.set_function(path_of(mod.outer), rec.pair)
    backend.set_function(path_of(mod.outer, "inner"), rec.pair)
    backend.set_lines(path_of(mod.outer, "inner"), {line("inner"): lines.at(line("inner"))})
    assert mod.outer(2) == [4, 5]
    assert rec.events == [
        ("enter", "outer"),
        ("enter", "inner"),
        ("exit", "inner"),
        ("enter", "inner"),
        ("exit", "inner"),
        ("exit", "outer"),
    ]
    assert lines.hits == {line("inner"): 2}
    backend.set_function(path_of(mod.outer), None)
    rec.events.clear()
    assert mod.outer(1) == [2]
    assert rec.events == [("enter", "inner"), ("exit", "inner")]


# -- the host is never disturbed ----------------------------------------------------------


def test_callback_that_raises_does_not_disturb_the_host(mod, backend):
    def boom(frame: Any) -> bool:
        raise RuntimeError("callback bug")

    def boom_pair(frame: Any) -> None:
        raise KeyError("callback bug")

    backend.set_lines(path_of(mod.plain), {line("plain"): boom})
    backend.set_function(path_of(mod.plain), (boom_pair, boom_pair))
    assert mod.plain(1, 2) == 6
    backend.set_lines(path_of(mod.fails), {line("raises"): boom})
    with pytest.raises(ZeroDivisionError):
        mod.fails(1)


def test_callback_raising_inside_an_except_clause_keeps_the_exception_state(mod, backend):
    def boom(frame: Any) -> bool:
        raise RuntimeError("callback bug")

    backend.set_lines(path_of(mod.handler_state), {line("in_except"): boom})
    backend.set_lines(path_of(mod.reraiser), {line("before_reraise"): boom})
    seen, again = mod.handler_state()
    assert isinstance(seen, ValueError) and str(seen) == "host"
    assert again is seen
    # A bare ``raise`` after the hook still re-raises the host's exception.
    with pytest.raises(LookupError, match="mine") as info:
        mod.reraiser()
    assert info.value.__context__ is None
    assert sys.exc_info() == (None, None, None)


def test_base_exception_from_a_callback_in_a_handler_leaves_a_clean_state(mod, backend):
    """Only Exception is swallowed; an interrupt raised by a callback propagates cleanly.

    The ``with`` line runs again when the body raises: the hook then sits in
    the exception handler, where raising must not corrupt the exception state.
    """
    seen: list[Any] = []

    def interrupt_in_handler(frame: Any) -> bool:
        seen.append(sys.exc_info()[0])
        if seen[-1] is KeyError:
            raise KeyboardInterrupt
        return True

    backend.set_lines(path_of(mod.suppressing), {line("with_header"): interrupt_in_handler})
    with pytest.raises(KeyboardInterrupt):
        mod.suppressing(1)
    assert seen == [None, KeyError]
    assert sys.exc_info() == (None, None, None)
    backend.set_lines(path_of(mod.suppressing), {line("with_header"): lambda frame: True})
    assert mod.suppressing(2) == 2
    assert sys.exc_info() == (None, None, None)


def test_results_are_identical_with_and_without_hooks(mod, backend):
    async def agen_values() -> list[int]:
        return [v async for v in mod.ticker(3)]

    calls: list[Callable[[], Any]] = [
        lambda: mod.plain(3, 4),
        lambda: mod.Shape(5).area(),
        lambda: mod.existing_adder(7),
        lambda: mod.decorated(9),
        lambda: list(mod.countdown(4)),
        lambda: asyncio.run(mod.fetch(5)),
        lambda: asyncio.run(agen_values()),
        lambda: mod.square(12),
        lambda: mod.squares(6),
        lambda: mod.loop_sum(20),
        lambda: [mod.guarded(x) for x in (0, 2, 5)],
        lambda: mod.outer(4),
        lambda: mod.spin(50),
        lambda: mod.suppressing(3),
        lambda: mod.retrying(7),
        lambda: [mod.pick(a, b, c) for a in (0, 1) for b in (0, 2) for c in (0, 1)],
    ]
    plain_results = [call() for call in calls]
    for code_path in _all_paths(mod):
        backend.set_lines(code_path, {ln: (lambda frame: True) for ln in _lines(code_path.code)})
        backend.set_function(code_path, FuncRecorder().pair)
    assert [call() for call in calls] == plain_results
    backend.close()
    assert [call() for call in calls] == plain_results


def test_guards_leave_every_shape_unchanged_when_no_trampoline_can_be_entered(
    mod, backend, monkeypatch
):
    """At the host's deepest frame the trampolines cannot be entered: their
    calls raise RecursionError in the host frame. Each injected call's guard
    must then unwind to the right stack depth (in loops, in handlers, within
    multi-line expressions, in generators and coroutines), drop the error and
    let the host's code run on: here every line and function of every shape,
    with every guard's handler running on every hit."""

    def cannot_enter(slot: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    calls: list[Callable[[], Any]] = [
        lambda: mod.plain(3, 4),
        lambda: mod.Shape(5).area(),
        lambda: mod.existing_adder(7),
        lambda: mod.decorated(9),
        lambda: list(mod.countdown(4)),
        lambda: asyncio.run(mod.fetch(5)),
        lambda: mod.squares(6),
        lambda: mod.loop_sum(20),
        lambda: [mod.guarded(x) for x in (0, 2, 5)],
        lambda: mod.outer(4),
        lambda: mod.suppressing(3),
        lambda: mod.retrying(7),
        lambda: [mod.pick(a, b, c) for a in (0, 1) for b in (0, 2) for c in (0, 1)],
        # sys.exc_info() after a hooked line in an except block, and a bare raise.
        lambda: [f"{type(e).__name__}: {e}" for e in mod.handler_state()],
        mod.reraiser,
    ]

    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except BaseException as exc:  # the host's own exceptions, compared too
            return ("raised", type(exc), str(exc), exc.__context__)

    plain_results = [outcome(call) for call in calls]
    with pytest.raises(ZeroDivisionError) as plain_error:
        mod.fails(1)
    for name in ("_line_hook", "_enter_hook", "_exit_hook"):
        monkeypatch.setattr(bb, name, cannot_enter)
    for code_path in _all_paths(mod):
        backend.set_lines(code_path, {ln: (lambda frame: True) for ln in _lines(code_path.code)})
        backend.set_function(code_path, FuncRecorder().pair)
    assert [outcome(call) for call in calls] == plain_results
    # An exit by exception: the host's error leaves the frame, not ours.
    with pytest.raises(ZeroDivisionError) as guarded_error:
        mod.fails(1)
    assert guarded_error.value.__context__ is None
    assert traceback.extract_tb(guarded_error.tb)[-1].lineno == (
        traceback.extract_tb(plain_error.tb)[-1].lineno
    )
    assert sys.exc_info() == (None, None, None)


def test_frames_already_running_keep_the_code_they_started_with(mod, backend):
    rec = Recorder()
    early = mod.countdown(3)
    assert next(early) == 3
    path = path_of(mod.countdown)
    backend.set_lines(path, {line("gen_yield"): rec.at(line("gen_yield"))})
    assert list(early) == [2, 1]
    assert not rec.hits  # the old frame runs the old code
    late = mod.countdown(2)
    assert next(late) == 2
    assert rec.hits[line("gen_yield")] == 1
    # Removing the line quiets frames still running the instrumented copy.
    backend.set_lines(path, {})
    assert mod.countdown.__code__ is path.code
    assert list(late) == [1]
    assert rec.hits[line("gen_yield")] == 1


def test_callbacks_that_do_not_want_the_frame_get_none(mod, backend):
    got: list[Any] = []

    def count(frame: Any) -> bool:
        got.append(frame)
        return True

    count.wants_frame = False  # type: ignore[attr-defined]
    backend.set_lines(path_of(mod.plain), {line("plain"): count})
    mod.plain(1, 1)
    assert got == [None]


def test_concurrent_calls_while_installing_and_removing(mod, backend):
    stop = threading.Event()
    errors: list[BaseException] = []
    results: set[int] = set()

    def worker() -> None:
        try:
            while not stop.is_set():
                results.add(mod.spin(30))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    path = path_of(mod.spin)
    try:
        for i in range(30):
            backend.set_lines(path, {line("spin"): lambda frame: True} if i % 2 == 0 else {})
            backend.set_function(path, FuncRecorder().pair if i % 3 == 0 else None)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert results == {sum(range(30))}
    backend.set_lines(path, {})
    backend.set_function(path, None)
    assert mod.spin.__code__ is path.code


# -- agreement with settrace ----------------------------------------------------------------


def _all_paths(mod: types.ModuleType) -> list[CodePath]:
    roots = [
        mod.plain,
        mod.Shape.area,
        mod.make_adder,
        mod.decorated.__wrapped__,
        mod.countdown,
        mod.fetch,
        mod.ticker,
        mod.square,
        mod.squares,
        mod.loop_sum,
        mod.guarded,
        mod.fails,
        mod.handler_state,
        mod.outer,
        mod.spin,
        mod.suppressing,
        mod.retrying,
        mod.pick,
    ]
    found: list[CodePath] = []

    def walk(code: types.CodeType, parents: tuple[types.CodeType, ...]) -> None:
        found.append(CodePath(code, parents))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const, (*parents, code))

    for func in roots:
        walk(func.__code__, ())
    return found


def test_hit_counts_match_settrace_line_events(mod, backend):
    """Every line of every target, counted by settrace and by the injected hooks."""

    def run_all() -> None:
        mod.plain(1, 2)
        mod.make_adder(3)(4)
        mod.loop_sum(4)
        mod.spin(3)
        for x in (0, 1, 5):
            mod.guarded(x)
        list(mod.countdown(3))
        mod.squares(3)
        mod.outer(3)
        mod.handler_state()
        mod.suppressing(1)
        mod.retrying(5)
        for flags in ((0, 1, 1), (1, 2, 0), (1, 0, 1)):
            mod.pick(*flags)
        asyncio.run(mod.fetch(2))
        with pytest.raises(ZeroDivisionError):
            mod.fails(1)

    paths = _all_paths(mod)
    watched = {id(p.code) for p in paths}
    traced: collections.Counter[tuple[str, int]] = collections.Counter()

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        if id(frame.f_code) not in watched:
            return None
        if event == "line":
            traced[(frame.f_code.co_name, frame.f_lineno)] += 1
        return tracer

    sys.settrace(tracer)
    try:
        run_all()
    finally:
        sys.settrace(None)

    hooked: collections.Counter[tuple[str, int]] = collections.Counter()

    def counter(name: str, lineno: int) -> Callable[[Any], bool]:
        def callback(frame: Any) -> bool:
            hooked[(name, lineno)] += 1
            return True

        return callback

    for p in paths:
        backend.set_lines(p, {ln: counter(p.code.co_name, ln) for ln in _lines(p.code)})
    run_all()
    assert traced and hooked == traced


# -- construction and internals ---------------------------------------------------------------


def test_chosen_by_name_and_refuses_to_run_where_it_cannot(monkeypatch):
    chosen = choose_backend("bytecode")
    try:
        assert isinstance(chosen, BytecodeBackend) and chosen.name == "bytecode"
    finally:
        chosen.close()
    monkeypatch.setattr(bb, "_SUPPORTED", ())
    with pytest.raises(BackendError, match=r"serves CPython 3\.10 and 3\.11"):
        BytecodeBackend()
    monkeypatch.setattr(bb, "_SUPPORTED", ((3, 10), (3, 11)))
    monkeypatch.setattr(bb, "_bc", None)
    with pytest.raises(BackendError, match="bytecode is not installed; pip install bytecode"):
        BytecodeBackend()


def test_a_failing_self_test_becomes_a_backend_error(monkeypatch):
    def broken() -> None:
        raise RuntimeError("probe said 3")

    monkeypatch.setattr(bb, "_self_test", broken)
    with pytest.raises(BackendError, match=r"cannot instrument code.*probe said 3"):
        BytecodeBackend()


def test_slots_pickle_without_their_callbacks():
    slot = bb._LineSlot(lambda frame: True)
    func = bb._FuncSlot((print, print))
    assert pickle.loads(pickle.dumps(slot)).entry is None
    assert pickle.loads(pickle.dumps(func)).pair is None


@pytest.mark.skipif(sys.version_info[:2] != (3, 10), reason="3.10's block stack")
def test_310_function_hooks_refuse_code_that_fills_the_block_stack(backend):
    def nested(depth: int) -> types.FunctionType:
        body = "".join("    " * (i + 1) + "with cm():\n" for i in range(depth))
        source = f"def deep(x):\n{body}{'    ' * (depth + 1)}return 1 // x\n"
        namespace: dict[str, Any] = {"cm": contextlib.nullcontext}
        exec(compile(source, f"<deep{depth}>", "exec"), namespace)
        return namespace["deep"]

    rec = FuncRecorder()
    fits, full = nested(19), nested(20)
    backend.set_function(path_of(fits), rec.pair)
    with pytest.raises(ZeroDivisionError):
        fits(0)
    assert rec.events == [("enter", "deep"), ("exit", "deep")]
    # One more block would abort the interpreter (block stack overflow).
    original = full.__code__
    with pytest.raises(BackendError, match="nests 20 try/with blocks"):
        backend.set_function(path_of(full), rec.pair)
    assert full.__code__ is original
    assert full(1) == 1


@pytest.mark.skipif(sys.version_info[:2] != (3, 10), reason="3.10 line table format")
def test_310_line_table_is_written_like_the_compiler_does():
    import _pydecimal
    import argparse

    def walk(code: types.CodeType) -> Iterator[types.CodeType]:
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from walk(const)

    checked = 0
    for module in (_pydecimal, argparse):
        source = Path(module.__file__).read_text()
        for code in walk(compile(source, module.__file__, "exec")):
            by_offset = {}
            for start, end, lineno in code.co_lines():
                for offset in range(start, end, 2):
                    by_offset[offset] = lineno
            runs = [(2, by_offset[offset]) for offset in range(0, len(code.co_code), 2)]
            assert bb._linetable_310(code.co_firstlineno, runs) == code.co_linetable
            checked += 1
    assert checked > 300
