"""Hostile object shapes through every reader of the agent: sandbox
expressions and conditions, capture, rendering, templates, snapshots and
placement (issue 9, "Why" 5).

Every object here records each hook that runs (``__len__``, ``__iter__``,
``__eq__``, ``__hash__``, ``__getattr__``, ``__getattribute__``,
``__bool__``, ``__str__``, ``__repr__``, metaclass hooks, descriptors'
``__get__``) in ``CALLS``; the agent must refuse or work harmlessly with
``CALLS`` staying empty. Recording is per thread, so the host's own use of an
object (starting a thread, running a task) can be left out with
``disarmed()`` while the agent's reads are checked.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import collections.abc
import decimal
import enum
import importlib.util
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import HERE, marked_lines
from rt_targets import hostile
from runtime_agent.capture import capture_namespace, capture_value, render
from runtime_agent.redact import Redactor
from runtime_agent.safeops import truth
from runtime_agent.sandbox import EvaluationFailure, NotEvaluated, compile_expression
from runtime_agent.snapshot import take_snapshot
from runtime_agent.template import Template

CALLS: list[str] = []
_ARMED = threading.local()
#: Whether a thread that never armed or disarmed itself records.
_DEFAULT = [True]
REDACTOR = Redactor()
LINES = marked_lines(HERE / "rt_targets" / "hostile.py")


def where(name: str) -> str:
    return f"rt_targets/hostile.py:{LINES[name]}"


def record(what: str) -> None:
    if getattr(_ARMED, "on", _DEFAULT[0]):
        CALLS.append(what)


@contextmanager
def disarmed() -> Iterator[None]:
    """The host's own use of hostile objects, in this thread: not recorded."""
    before = getattr(_ARMED, "on", _DEFAULT[0])
    _ARMED.on = False
    try:
        yield
    finally:
        _ARMED.on = before


@contextmanager
def armed() -> Iterator[None]:
    before = getattr(_ARMED, "on", _DEFAULT[0])
    _ARMED.on = True
    try:
        yield
    finally:
        _ARMED.on = before


@pytest.fixture(autouse=True)
def nothing_ran() -> Iterator[None]:
    CALLS.clear()
    yield
    assert CALLS == [], f"application code ran: {CALLS}"


# -- the readers --------------------------------------------------------------------


def run(source: str, local_vars: Any, global_vars: Any = None, use: str = "value") -> Any:
    """The value of ``source``, or the EvaluationFailure it gave; anything
    else escaping fails the test."""
    expr = compile_expression(source, use=use)  # type: ignore[arg-type]
    try:
        return expr.evaluate(local_vars, {} if global_vars is None else global_vars)
    except EvaluationFailure as exc:
        assert "\n" not in str(exc)
        return exc


def snapshot_with(x: Any, watch: tuple[str, ...] = ("x", "str(x)")) -> dict[str, Any]:
    compiled = [compile_expression(w) for w in watch]

    def frame_holding(x: Any) -> dict[str, Any]:
        return take_snapshot(sys._getframe(), None, compiled, REDACTOR)

    return frame_holding(x)


def every_reader(x: Any) -> dict[str, Any]:
    """Capture, render, a template and a snapshot of ``x``; its capture."""
    node = capture_value(x)
    render(x)
    capture_namespace({"x": x})
    Template("x={x} r={repr(x)} s={str(x)}", REDACTOR).render({"x": x}, {})
    snap = snapshot_with(x)
    assert snap["locals"]["x"]["type"] == node["type"]
    return node


# -- hostile shapes -------------------------------------------------------------------


class Hooks:
    """An application object whose every hook records."""

    def __getattribute__(self, name: str) -> Any:
        record(f"Hooks.__getattribute__ {name}")
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        record(f"Hooks.__getattr__ {name}")
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        record("Hooks.__eq__")
        return True

    def __hash__(self) -> int:
        record("Hooks.__hash__")
        return 1

    def __lt__(self, other: object) -> bool:
        record("Hooks.__lt__")
        return True

    def __len__(self) -> int:
        record("Hooks.__len__")
        return 1

    def __iter__(self) -> Iterator[Any]:
        record("Hooks.__iter__")
        return iter(())

    def __bool__(self) -> bool:
        record("Hooks.__bool__")
        return False

    def __str__(self) -> str:
        record("Hooks.__str__")
        return "h"

    def __repr__(self) -> str:
        record("Hooks.__repr__")
        return "H"

    def __format__(self, spec: str) -> str:
        record("Hooks.__format__")
        return "H"

    def __index__(self) -> int:
        record("Hooks.__index__")
        return 1


class Shown:
    """Text hooks only: what ``str()`` of a container or exception would call."""

    def __str__(self) -> str:
        record("Shown.__str__")
        return "s"

    def __repr__(self) -> str:
        record("Shown.__repr__")
        return "S"

    def __format__(self, spec: str) -> str:
        record("Shown.__format__")
        return "S"


class EvilKey(str):
    """A str subclass key whose == and hash are application code."""

    def __eq__(self, other: object) -> bool:
        record("EvilKey.__eq__")
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        record("EvilKey.__hash__")
        return str.__hash__(self)

    def __str__(self) -> str:
        record("EvilKey.__str__")
        return "evil"

    def lower(self) -> str:  # type: ignore[override]
        record("EvilKey.lower")
        return "password"


class RecordingDict(dict):  # type: ignore[type-arg]
    """A dict subclass whose every overridable method records."""

    def __getitem__(self, key: object) -> Any:
        record("RecordingDict.__getitem__")
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        record("RecordingDict.__contains__")
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[Any]:
        record("RecordingDict.__iter__")
        return dict.__iter__(self)

    def __len__(self) -> int:
        record("RecordingDict.__len__")
        return dict.__len__(self)

    def keys(self) -> Any:  # type: ignore[override]
        record("RecordingDict.keys")
        return dict.keys(self)

    def values(self) -> Any:  # type: ignore[override]
        record("RecordingDict.values")
        return dict.values(self)

    def items(self) -> Any:  # type: ignore[override]
        record("RecordingDict.items")
        return dict.items(self)

    def get(self, *args: Any) -> Any:  # type: ignore[override]
        record("RecordingDict.get")
        return dict.get(self, *args)

    def __missing__(self, key: object) -> Any:
        record("RecordingDict.__missing__")
        raise KeyError(key)

    def __eq__(self, other: object) -> bool:
        record("RecordingDict.__eq__")
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        record("RecordingDict.__repr__")
        return dict.__repr__(self)


class Plain:
    """An ordinary application object (its instance dict may be made hostile)."""


def overriding(base: type, hook: str) -> type:
    """A subclass of ``base`` overriding only ``hook`` (``__len__`` or
    ``__iter__``); the ``__iter__`` of a mutable one drains it, as a consuming
    iterator of the application would."""

    def __len__(self: Any) -> int:
        record(f"{base.__name__}.__len__")
        return 0

    def __iter__(self: Any) -> Iterator[Any]:
        record(f"{base.__name__}.__iter__")
        clear = base.__dict__.get("clear")
        if clear is not None:
            clear(self)
        return iter(())

    return type(
        f"Hostile_{base.__name__}", (base,), {hook: __len__ if hook == "__len__" else __iter__}
    )


# -- builtin subclasses overriding __len__ or __iter__ ------------------------------------

BUILTIN_CASES = [
    (list, [1, 2, 3]),
    (tuple, (1, 2, 3)),
    (dict, {"a": 1, "b": [2]}),
    (str, "abc"),
    (set, {1, 2}),
    (frozenset, frozenset({1, 2})),
    (bytes, b"ab"),
    (collections.deque, [1, 2]),
]
BUILTIN_SOURCES = [
    "x == y",
    "y == x",
    "x != y",
    "[x] == [y]",
    "(x, 1) == (y, 1)",
    "{'k': x} == {'k': y}",
    "x in [y]",
    "y in [x]",
    "1 in x",
    "str(x)",
    "repr(x)",
    "f'{x}'",
    "f'{x!r:>40}'",
    "str([x, x])",
    "bool(x)",
    "not x",
    "x and 1",
    "len(x)",
    "sorted(x)",
    "list(x)",
    "tuple(x)",
    "min(x)",
    "any(x)",
    "sum(x)",
    "x + y",
    "x * 2",
    "x[0]",
    "x[0:1]",
    "hash(x)",
    "x.count(1)",
    "x.upper()",
    "x.get('a')",
    "x.keys()",
    "x.union(y)",
    "x is y",
]


@pytest.mark.parametrize("hook", ["__len__", "__iter__"])
@pytest.mark.parametrize(
    ("base", "value"), BUILTIN_CASES, ids=[b.__name__ for b, _ in BUILTIN_CASES]
)
def test_builtin_subclass_overriding_len_or_iter_never_runs_it(
    base: type, value: Any, hook: str
) -> None:
    x = overriding(base, hook)(value)
    y = base(value)
    CALLS.clear()  # the host built it
    for source in BUILTIN_SOURCES:
        run(source, {"x": x, "y": y})
    assert CALLS == []
    # Nothing was drained, and == answers from the storage, as CPython's C
    # does; deque's own == iterates a subclass, so it is refused.
    assert base.__len__(x) == len(y)
    for source in ("x == y", "[x] == [y]"):
        if base is collections.deque and hook == "__iter__":
            assert isinstance(run(source, {"x": x, "y": y}), NotEvaluated)
        else:
            assert run(source, {"x": x, "y": y}) is True
    node = every_reader(x)
    assert node.get("size", len(y)) == len(y) or node.get("value") is not None
    assert base.__len__(x) == len(y)


def test_the_drained_list_of_the_issue() -> None:
    x = overriding(list, "__iter__")([1, 2, 3])
    assert run("x == [1, 2, 3]", {"x": x}) is True
    assert list.__len__(x) == 3
    assert isinstance(run("sorted(x)", {"x": x}), NotEvaluated)  # Python would iterate it
    assert [item["value"] for item in capture_value(x)["items"]] == [1, 2, 3]


# -- an instance __dict__ replaced by a dict subclass --------------------------------------


def test_instance_dict_replaced_by_a_dict_subclass() -> None:
    o = Plain()
    o.__dict__ = RecordingDict({"a": 1, "b": "two"})
    CALLS.clear()
    scope = {"o": o}
    assert run("o.a", scope) == 1
    assert run("o.a + 1", scope) == 2
    assert run("f'{o.b}'", scope) == "two"
    assert run("hasattr(o, 'a')", scope) is True
    missing = run("o.missing", scope)
    assert isinstance(missing, EvaluationFailure) and "it has: a, b" in str(missing)
    assert run("o == o", scope) is True
    assert run("str(o)", scope).startswith("<")
    node = every_reader(o)
    assert node["fields"]["a"]["value"] == 1


# -- the truth of conditions ----------------------------------------------------------------


class HookedMeta(type):
    """A metaclass whose hooks a careless truth test would reach."""

    def __getattribute__(cls, name: str) -> Any:
        record(f"HookedMeta.__getattribute__ {name}")
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        record(f"HookedMeta.__getattr__ {name}")
        raise AttributeError(name)

    def __hash__(cls) -> int:
        record("HookedMeta.__hash__")
        return 1

    def __eq__(cls, other: object) -> bool:
        record("HookedMeta.__eq__")
        return False

    def __instancecheck__(cls, obj: object) -> bool:
        record("HookedMeta.__instancecheck__")
        return True


class MetaHeld(metaclass=HookedMeta):
    pass


class RecordingDescriptor:
    def __get__(self, obj: object, owner: type | None = None) -> Any:
        record("RecordingDescriptor.__get__")
        return lambda: True


class BoolByDescriptor:
    __bool__ = RecordingDescriptor()


class LenByDescriptor:
    __len__ = RecordingDescriptor()


class TruthMeta(type):
    def __len__(cls) -> int:
        record("TruthMeta.__len__")
        return 0


class ClassWithTruthMeta(metaclass=TruthMeta):
    pass


def test_truth_of_an_instance_whose_metaclass_has_hooks() -> None:
    obj = MetaHeld()
    assert truth(obj, "obj") is True
    assert run("not obj", {"obj": obj}, use="condition") is False
    assert run("obj and 1", {"obj": obj}) == 1
    assert run("bool(obj)", {"obj": obj}) is True
    assert run("1 if obj else 2", {"obj": obj}) == 1
    every_reader(obj)


@pytest.mark.parametrize("kind", [BoolByDescriptor, LenByDescriptor, ClassWithTruthMeta])
def test_truth_through_a_descriptor_or_a_metaclass_is_refused(kind: Any) -> None:
    obj = kind() if kind is not ClassWithTruthMeta else kind
    with pytest.raises(NotEvaluated):
        truth(obj, "obj")
    for source in ("not obj", "bool(obj)", "obj or 1", "1 if obj else 2"):
        assert isinstance(run(source, {"obj": obj}), NotEvaluated), source
    every_reader(obj)


def test_conditions_in_the_engine_use_the_one_truth(engine: Any) -> None:
    held = engine.add_counter(where("hold"), condition="obj")
    hostile.hold(MetaHeld())
    assert engine.status(held.id).hits == 1
    engine.remove(held.id)
    refused = engine.add_counter(where("hold"), condition="obj")
    hostile.hold(BoolByDescriptor())
    hostile.hold(LenByDescriptor())
    assert engine.status(refused.id).hits == 0
    engine.remove(refused.id)
    timed = engine.add_duration("rt_targets.hostile:hold", condition="obj")
    hostile.hold(MetaHeld())
    hostile.hold(BoolByDescriptor())
    assert engine.status(timed.id).hits == 1


# -- exceptions whose text fields are application objects -------------------------------


def _syntax(o: Any) -> BaseException:
    e = SyntaxError("bad")
    e.msg = o
    return e


def _oserror(field: str) -> Callable[[Any], BaseException]:
    def make(o: Any) -> BaseException:
        e = OSError(2, "gone", "file.txt")
        setattr(e, field, o)
        return e

    return make


def _unicode(field: str) -> Callable[[Any], BaseException]:
    def make(o: Any) -> BaseException:
        e = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")
        setattr(e, field, o)
        return e

    return make


def _import_error(o: Any) -> BaseException:
    e = ImportError("missing")
    e.msg = o
    return e


EXCEPTION_CASES = {
    "SyntaxError.msg": _syntax,
    "OSError.strerror": _oserror("strerror"),
    "OSError.errno": _oserror("errno"),
    "OSError.filename": _oserror("filename"),
    "OSError.filename2": _oserror("filename2"),
    "UnicodeDecodeError.reason": _unicode("reason"),
    "UnicodeDecodeError.encoding": _unicode("encoding"),
    "ImportError.msg": _import_error,
}


@pytest.mark.parametrize("make", list(EXCEPTION_CASES.values()), ids=list(EXCEPTION_CASES))
def test_text_of_an_exception_never_formats_an_application_field(make: Any) -> None:
    e = make(Shown())
    scope = {"e": e}
    for source in ("str(e)", "f'{e}'", "f'{e!s:>30}'", "repr(e)", "str([e])", "e.args", "f'{[e]}'"):
        run(source, scope)
    assert CALLS == []
    every_reader(e)


def test_text_of_an_exception_with_plain_fields_still_works() -> None:
    assert run("str(e)", {"e": SyntaxError("bad")}) == "bad"
    assert run("str(e)", {"e": OSError(2, "gone", "f.txt")}) == "[Errno 2] gone: 'f.txt'"
    assert isinstance(run("str(e)", {"e": _syntax(Shown())}), NotEvaluated)


# -- frame namespaces: a function whose globals are a dict subclass -----------------------


def test_expressions_over_dict_subclass_globals() -> None:
    g = RecordingDict(factor=3)
    CALLS.clear()
    assert run("factor * 2", {}, g) == 6
    assert run("f'{factor}'", {"a": 1}, g) == "3"
    assert isinstance(run("nothing", {}, g), EvaluationFailure)
    assert run("a + factor", {"a": 1}, g) == 4


class ForeignNamespace(collections.abc.Mapping):  # type: ignore[type-arg]
    """A namespace of the application's own type (a class body's __prepare__)."""

    def __getitem__(self, key: object) -> Any:
        record("ForeignNamespace.__getitem__")
        return 1

    def __contains__(self, key: object) -> bool:
        record("ForeignNamespace.__contains__")
        return True

    def __iter__(self) -> Iterator[Any]:
        record("ForeignNamespace.__iter__")
        return iter(["a"])

    def __len__(self) -> int:
        record("ForeignNamespace.__len__")
        return 1


def test_a_foreign_namespace_is_not_read() -> None:
    assert isinstance(run("a", ForeignNamespace()), NotEvaluated)
    assert isinstance(run("a", {}, ForeignNamespace()), NotEvaluated)
    assert "<not captured>" in capture_namespace(ForeignNamespace())


def test_a_template_over_a_foreign_namespace_seeds_no_secrets_from_it() -> None:
    def handler(password: str) -> None:
        pass

    pending = Template("p={password} n={1 + 1}", REDACTOR).capture(
        ForeignNamespace(), {}, handler.__code__
    )
    assert "n=2" in pending.text()


def test_a_context_variable_named_by_a_str_subclass() -> None:
    import contextvars

    var = contextvars.ContextVar(EvilKey("request_id"))
    token = var.set("req-9")
    CALLS.clear()  # making the variable hashed its name
    try:
        snap = snapshot_with(1)
    finally:
        var.reset(token)
    assert snap["context"]["request_id"]["value"] == "req-9"


def test_actions_in_a_function_whose_globals_are_a_dict_subclass(engine: Any) -> None:
    g = RecordingDict(factor=3, __builtins__=builtins, __name__="hostile_globals")
    fn = types.FunctionType(hostile.body.__code__, g, "body")
    CALLS.clear()
    log = engine.add_log(where("body"), "a={a} factor={factor}", condition="factor > 1")
    snap = engine.add_snapshot(where("body"), watch=["factor", "a * factor"])
    assert fn(1) == 2
    events = engine.drain()
    [line] = [e for e in events if e["type"] == "log" and e["action"] == log.id]
    assert line["message"] == "a=1 factor=3"
    [shot] = [e for e in events if e["type"] == "snapshot" and e["action"] == snap.id]
    assert shot["watch"]["factor"]["value"] == 3
    assert shot["watch"]["a * factor"]["value"] == 3


# -- a str-subclass key in an instance __dict__ or a class namespace ---------------------


def test_str_subclass_key_in_an_instance_dict() -> None:
    o = Plain()
    o.y = 2
    o.__dict__[EvilKey("x")] = 1
    CALLS.clear()  # inserting the key hashed it
    scope = {"o": o}
    for source in ("o.x", "o.y", "hasattr(o, 'y')", "o.missing", "o.y + 1", "f'{o.y}'"):
        value = run(source, scope)
        assert isinstance(value, NotEvaluated), source
    node = every_reader(o)
    assert set(node["fields"]) == {"x", "y"}


def test_str_subclass_key_in_a_class_namespace() -> None:
    Dirty = type("Dirty", (), {EvilKey("x"): 1, "y": 2})
    obj = Dirty()
    CALLS.clear()
    for source in (
        "D.y",
        "obj.y",
        "obj.x",
        "hasattr(obj, 'y')",
        "obj == obj",
        "str(obj)",
        "bool(obj)",
    ):
        run(source, {"D": Dirty, "obj": obj})
    every_reader(obj)
    every_reader(Dirty)


def test_str_subclass_keys_of_dicts_are_read_as_plain_text() -> None:
    d = {EvilKey("password"): "hunter2", EvilKey("k"): 1}
    CALLS.clear()
    for source in ("d['k']", "d.get('k')", "'k' in d", "str(d)", "len(d)", "list(d)", "d == d"):
        run(source, {"d": d})
    node = every_reader(d)
    assert node["fields"]["password"]["redacted"] is True


# -- snapshots in hostile threads and tasks ------------------------------------------------


class NosyThread(threading.Thread):
    def __getattribute__(self, name: str) -> Any:
        record(f"NosyThread.__getattribute__ {name}")
        return super().__getattribute__(name)


def test_snapshot_in_a_thread_subclass_with_getattribute() -> None:
    result: dict[str, Any] = {}

    def work() -> None:
        with armed():  # only the agent's reads, in this thread
            result["snap"] = take_snapshot(sys._getframe(), None, [], REDACTOR)

    thread = NosyThread(target=work, name="nosy")
    _DEFAULT[0] = False  # the new thread's own start-up is the host's business
    try:
        with disarmed():  # and so are starting and joining it
            thread.start()
            thread.join()
    finally:
        _DEFAULT[0] = True
    assert result["snap"]["thread"]["name"] == "nosy"


class NosyTaskMeta(type):
    def __getattribute__(cls, name: str) -> Any:
        record(f"NosyTaskMeta.__getattribute__ {name}")
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        record(f"NosyTaskMeta.__getattr__ {name}")
        raise AttributeError(name)

    def __hash__(cls) -> int:
        record("NosyTaskMeta.__hash__")
        return 1

    def __eq__(cls, other: object) -> bool:
        record("NosyTaskMeta.__eq__")
        return False

    def __instancecheck__(cls, obj: object) -> bool:
        record("NosyTaskMeta.__instancecheck__")
        return True

    def __subclasscheck__(cls, sub: type) -> bool:
        record("NosyTaskMeta.__subclasscheck__")
        return True


class NosyTask(asyncio.Task, metaclass=NosyTaskMeta):  # type: ignore[type-arg, misc]
    def __getattribute__(self, name: str) -> Any:
        record(f"NosyTask.__getattribute__ {name}")
        return super().__getattribute__(name)


def test_snapshot_in_a_task_subclass_with_a_metaclass() -> None:
    async def inner() -> dict[str, Any]:
        with armed():
            return take_snapshot(sys._getframe(), None, [], REDACTOR)

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return NosyTask(coro, loop=loop, **kwargs)

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        return await loop.create_task(inner(), name="nosy-task")

    with disarmed():
        snap = asyncio.run(main())
    assert snap["task"] == "nosy-task"


# -- placement and modules that are not loaded yet -------------------------------------------


@pytest.fixture
def lazy_module(tmp_path: Path) -> Iterator[types.ModuleType]:
    """A real module imported with importlib.util.LazyLoader; its body records
    that it ran in ``builtins._lazy_runs``."""
    name = "lazy_hostile_target"
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import builtins\n"
        "builtins.__dict__.setdefault('_lazy_runs', []).append(__name__)\n"
        "\n"
        "def f():\n"
        "    return 1\n"
    )
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    try:
        yield module
    finally:
        sys.modules.pop(name, None)
        builtins.__dict__.pop("_lazy_runs", None)


def lazy_runs() -> list[str]:
    return builtins.__dict__.get("_lazy_runs", [])


def test_placing_actions_never_runs_a_lazy_modules_body(engine: Any, lazy_module: Any) -> None:
    placed = engine.add_log(where("hold"), "{obj}")  # scans every loaded module
    assert placed.state == "installed"
    pending = engine.add_log("lazy_hostile_target.py:5", "{1}")
    assert pending.state == "pending"
    by_module = engine.add_counter("lazy_hostile_target:f")
    assert by_module.state == "pending"
    assert lazy_runs() == []


def test_reading_a_lazy_module_never_runs_its_body(lazy_module: Any) -> None:
    for source in ("m.f", "m", "str(m)", "hasattr(m, 'f')", "m == m"):
        run(source, {"m": lazy_module})
    every_reader(lazy_module)
    assert lazy_runs() == []
    assert lazy_module.f() == 1  # the application's own access runs it
    assert lazy_runs() == ["lazy_hostile_target"]


# -- the host thread's decimal context -----------------------------------------------------


def test_decimal_and_float_never_set_the_hosts_decimal_flags() -> None:
    context = decimal.getcontext()
    context.clear_flags()
    x = Decimal("1.0")
    for source in (
        "{x, 1.0}",
        "{x: 1, 1.0: 2}",
        "{1.0: 'a', x: 'b'}",
        "x == 1.0",
        "x in {1.0}",
        "1.0 in [x]",
        "[x] == [1.0]",
        "sorted([x, 1.5])",
        "min(x, 1.5)",
        "x < 1.5",
        "{1.0: 'a'}.get(x)",
        "{1.0: 'a'}[x]",
        "x in {1.0: 1}",
        "hash(x)",
        "set([x, 1.0])",
        "[1.0].count(x)",
    ):
        run(source, {"x": x})
    assert not context.flags[decimal.FloatOperation]
    assert not any(context.flags.values())


# -- Decimal and Fraction against classes with application metaclasses ---------------------


class MetaInt(int, metaclass=HookedMeta):
    """An int whose class's hashing and equality are application code."""


#: Decimal's comparisons and Fraction's operators ask isinstance(other,
#: numbers.Rational), which hashes and compares other's class in the ABC's caches.
NUMERIC_ACROSS_METACLASS = [
    "d == x",
    "d != x",
    "d < x",
    "d + x",
    "x == d",
    "f == x",
    "f < x",
    "f + x",
    "x + f",
    "x * f",
    "d in [x]",
    "x in {d}",
    "f in (x,)",
    "[d] == [x]",
    "{'k': d} == {'k': x}",
    "{d, x}",
    "{x: 1, d: 2}",
    "sorted([f, x])",
    "max(d, x)",
    "sum([f, x])",
    "[x].count(f)",
    "{d: 1}.get(x)",
]


@pytest.mark.parametrize("source", NUMERIC_ACROSS_METACLASS)
@pytest.mark.parametrize("x", [MetaHeld(), MetaInt(1)], ids=["object", "int"])
def test_decimal_or_fraction_never_reaches_an_application_metaclass(source: str, x: Any) -> None:
    result = run(source, {"d": Decimal(1), "f": Fraction(1, 3), "x": x})
    # Refused for the metaclass (sum() of an object: for not being a number).
    assert isinstance(result, EvaluationFailure)
    assert "metaclass is application code" in str(result) or "needs a number" in str(result)


class Level(enum.IntEnum):
    LOW = 1


def test_decimal_and_fraction_with_trusted_metaclasses_still_work() -> None:
    local = {"d": Decimal("1.5"), "f": Fraction(3, 2), "e": Level.LOW, "n": 3, "h": Decimal("4.5")}
    assert run("d == f and f == d", local) is True
    assert run("d < n and f < n and d + n == h", local) is True
    assert run("f + e", local) == Fraction(5, 2)
    assert run("d > e and e < f", local) is True
    assert run("sorted([f, n, d])", local) == [Fraction(3, 2), Decimal("1.5"), 3]


HOOKED_RATIONAL = """
import numbers
from decimal import Decimal
from fractions import Fraction
from runtime_agent.sandbox import EvaluationFailure, compile_expression

def run(source, local):
    try:
        return compile_expression(source, use="value").evaluate(local, {})
    except EvaluationFailure as exc:
        return exc

assert run("f + 1 == d + 1", {"d": Decimal(1), "f": Fraction(1)}) is True
ran = []

class HookedRational(numbers.Rational):
    @classmethod
    def __subclasshook__(cls, other):
        ran.append(other)
        return NotImplemented

class Fresh:
    pass

for source in ("f == x", "d == x", "f + 1", "d < 2"):
    result = run(source, {"d": Decimal(1), "f": Fraction(1, 3), "x": Fresh()})
    assert isinstance(result, EvaluationFailure), source
    assert "__subclasshook__" in str(result), result
assert ran == [], ran
print("ok")
"""


def test_decimal_and_fraction_refused_while_a_numbers_abc_has_an_application_hook() -> None:
    # ABCMeta's check of a type it has not cached asks every class under
    # numbers.Number; one defining __subclasshook__ would run for new types.
    # In its own process: the class stays under numbers.Number for good.
    out = subprocess.run(
        [sys.executable, "-c", HOOKED_RATIONAL], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


# -- generated object graphs -----------------------------------------------------------------


def _hostile_object(fields: dict[str, Any], hostile_dict: bool, evil_key: bool) -> Plain:
    o = Plain()
    if hostile_dict:
        o.__dict__ = RecordingDict(fields)
    else:
        o.__dict__.update(fields)
    if evil_key:
        o.__dict__[EvilKey("k")] = 1
    return o


LEAVES = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["a", "password", "", "xyz"]),
    st.none(),
    st.builds(Hooks),
    st.builds(Shown),
    st.builds(MetaHeld),
    st.builds(BoolByDescriptor),
    st.just(Decimal("1.0")),
    st.builds(lambda: _syntax(Shown())),
    st.builds(lambda: _oserror("strerror")(Shown())),
    st.builds(lambda: EvilKey("k")),
)
SUBCLASSES = [overriding(b, h) for b in (list, tuple, dict) for h in ("__len__", "__iter__")]


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "password"]), children, max_size=3),
        st.tuples(st.sampled_from(SUBCLASSES[:4]), st.lists(children, max_size=3)).map(
            lambda t: t[0](t[1])
        ),
        st.tuples(
            st.sampled_from(SUBCLASSES[4:]), st.dictionaries(st.sampled_from("ab"), children)
        ).map(lambda t: t[0](t[1])),
        st.builds(
            _hostile_object,
            st.dictionaries(st.sampled_from(["a", "b", "token"]), children, max_size=3),
            st.booleans(),
            st.booleans(),
        ),
    )


GRAPHS = st.recursive(LEAVES, _extend, max_leaves=8)
GRAPH_SOURCES = [
    "g",
    "g == g",
    "[g] == [g]",
    "g in [g]",
    "str(g)",
    "repr(g)",
    "f'{g}'",
    "f'{g!r:>20}'",
    "len(g)",
    "bool(g)",
    "g and 1",
    "not g",
    "sorted(g)",
    "list(g)",
    "any(g)",
    "min(g)",
    "hash(g)",
    "{g, 1}",
    "{g: 1}",
    "g.a",
    "g.token",
    "g['a']",
    "g[0]",
    "hasattr(g, 'a')",
    "isinstance(g, dict)",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GRAPHS)
def test_generated_graphs_run_no_hook_anywhere(g: Any) -> None:
    CALLS.clear()  # building the graph ran the host's hooks
    scope = {"g": g}
    for source in GRAPH_SOURCES:
        run(source, scope)
        run(source, scope, use="condition")
    capture_value(g)
    render(g)
    Template("g={g} a={g.a}", REDACTOR).render(scope, {})
    snapshot_with(g, watch=("g", "str(g)", "g[0]"))
    assert CALLS == [], f"application code ran: {CALLS}"


def test_names_set_to_str_subclasses_are_read_as_plain_text() -> None:
    class Renamed:
        pass

    def fn() -> None:
        pass

    Renamed.__name__ = EvilKey("Renamed")
    Renamed.__qualname__ = EvilKey("Renamed")
    fn.__qualname__ = EvilKey("fn")
    obj = Renamed()
    CALLS.clear()
    for value in (obj, Renamed, fn):
        every_reader(value)
        for source in ("str(x)", "repr(x)", "f'{x}'", "x.y", "len(x)", "x + 1"):
            run(source, {"x": value})
