"""Engine.batch(): many placements and removals reach the code at once, with the
behaviour of the same calls made one at a time."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import pytest

from conftest import DEFAULT_CORE
from runtime_agent import Engine, locate
from runtime_agent.backends.base import BackendError
from runtime_agent.channel import Channel
from runtime_agent.config import AgentConfig
from runtime_agent.errors import LocationError

#: Three functions, each with a loop, a branch not taken and a closure.
FUNCTION = """\
def f{i}(x):
    total = x
    for k in range(3):
        total += k
    if total < 0:
        total = 0
    def inner():
        return total * 2
    return inner() + {i}

"""
#: Offsets of lines that run, in each function (from its ``def``).
RUNS = (1, 2, 3, 6, 7, 8)
NOT_RUN = 5  # ``total = 0``: the branch is never taken
BLANK = 9  # the empty line after each function: no code


@pytest.fixture
def target(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """A fresh module of three functions, imported from a temporary directory."""
    name = f"batch_target_{request.node.name.split('[')[0]}"
    (tmp_path / f"{name}.py").write_text("".join(FUNCTION.format(i=i) for i in range(3)))
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        # The location index counts modules: one test's module replaces the last's.
        locate.forget_index()
        yield module
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(core=DEFAULT_CORE)
    try:
        yield eng
    finally:
        eng.close()


def line(function: int, offset: int) -> int:
    return 1 + function * FUNCTION.count("\n") + offset


def every_line() -> list[tuple[int, int]]:
    return [(f, o) for f in range(3) for o in (*RUNS, NOT_RUN)]


def run(module: ModuleType) -> list[int]:
    return [module.f0(1), module.f1(1), module.f2(1)]


def codes(module: ModuleType) -> list[CodeType]:
    return [module.f0.__code__, module.f1.__code__, module.f2.__code__]


def place_and_run(engine: Engine, module: ModuleType, batched: bool) -> dict[tuple, Any]:
    """Counters on every line (one at a time or in a batch), the module run once:
    per line the state and hits, and the state events."""
    where = module.__name__
    engine.drain()  # the last round's removals
    ids: dict[tuple[int, int], str] = {}
    if batched:
        with engine.batch():
            for f, o in every_line():
                ids[f, o] = engine.add_counter(f"{where}:{line(f, o)}").id
    else:
        for f, o in every_line():
            ids[f, o] = engine.add_counter(f"{where}:{line(f, o)}").id
    assert run(module) == [8, 9, 10]
    seen = {key: (engine.status(i).state, engine.status(i).hits) for key, i in ids.items()}
    states = [(e["state"], e["line"]) for e in engine.drain() if e["type"] == "state"]
    seen["events"] = sorted(states)
    if batched:
        with engine.batch():
            for action_id in ids.values():
                engine.remove(action_id)
    else:
        for action_id in ids.values():
            engine.remove(action_id)
    return seen


def test_a_batch_behaves_like_the_same_calls_one_at_a_time(engine, target):
    originals = codes(target)
    before = [c.co_code for c in originals]
    alone = place_and_run(engine, target, batched=False)
    batched = place_and_run(engine, target, batched=True)
    assert batched == alone
    # Every counter fired as often as settrace would count its line: the loop
    # header once more than the body; the untaken branch never.
    assert alone[0, 2] == ("installed", 4)
    assert alone[0, 3] == ("installed", 3)
    assert alone[1, 1] == ("installed", 1)
    assert alone[2, NOT_RUN] == ("installed", 0)
    assert alone[2, 7] == ("installed", 1)  # the closure's body, nested code
    assert run(target) == [8, 9, 10]
    # The exact original code objects are back, nested code included.
    assert codes(target) == originals
    assert all(now is orig for now, orig in zip(codes(target), originals, strict=True))
    assert [c.co_code for c in codes(target)] == before
    assert engine.actions() == []


def test_a_bad_line_in_a_batch_fails_alone(engine, target):
    where = target.__name__
    with engine.batch():
        good = engine.add_counter(f"{where}:{line(0, 1)}").id
        with pytest.raises(LocationError):
            engine.add_counter(f"{where}:{line(0, BLANK)}")
        other = engine.add_counter(f"{where}:{line(1, 3)}").id
    run(target)
    assert engine.status(good).hits == 1
    assert engine.status(other).hits == 3
    assert len(engine.actions()) == 2


def refuse_line(monkeypatch: pytest.MonkeyPatch, engine: Engine, bad: int) -> None:
    """Make the engine's core refuse any change that instruments line ``bad``."""
    backend = engine._backend
    set_lines = backend.set_lines

    def refusing(path, callbacks):
        if bad in callbacks:
            raise BackendError("refused for the test")
        return set_lines(path, callbacks)

    monkeypatch.setattr(backend, "set_lines", refusing)
    if engine.core == "bytecode":  # its batches rewrite code without set_lines
        from runtime_agent.backends import bytecode

        rewrite = bytecode._rewrite

        def refusing_rewrite(code, lines, func):
            if bad in lines:
                raise RuntimeError("refused for the test")
            return rewrite(code, lines, func)

        monkeypatch.setattr(bytecode, "_rewrite", refusing_rewrite)


def test_a_core_refusal_in_a_batch_fails_only_the_refused_action(engine, target, monkeypatch):
    where = target.__name__
    refuse_line(monkeypatch, engine, line(0, 2))
    originals = codes(target)
    with engine.batch():
        kept = engine.add_counter(f"{where}:{line(0, 1)}").id  # same code object
        refused = engine.add_counter(f"{where}:{line(0, 2)}").id
        elsewhere = engine.add_counter(f"{where}:{line(2, 1)}").id
    assert engine.status(refused).state == "error"
    assert "refused for the test" in engine.status(refused).message
    assert run(target) == [8, 9, 10]
    assert engine.status(kept).state == "installed"
    assert engine.status(kept).hits == 1
    assert engine.status(elsewhere).hits == 1
    assert engine.status(refused).hits == 0
    engine.remove_all()
    assert all(now is orig for now, orig in zip(codes(target), originals, strict=True))


def test_a_batch_changes_each_code_object_once(engine, target, monkeypatch):
    where = target.__name__
    calls: list[Any] = []
    if engine.core == "bytecode":
        from runtime_agent.backends import bytecode

        functions, rewrite = bytecode._functions, bytecode._rewrite
        monkeypatch.setattr(bytecode, "_functions", lambda: calls.append("scan") or functions())

        def counting(code, lines, func):
            calls.append(code.co_name)
            return rewrite(code, lines, func)

        monkeypatch.setattr(bytecode, "_rewrite", counting)
        # Each function rewritten once (each closure once too), then one heap scan.
        placed = [*sorted(["f0", "f1", "f2", "inner", "inner", "inner"]), "scan"]
    else:
        mon = engine._backend._mon
        set_local_events = mon.set_local_events

        def counting_events(tool, code, events):
            calls.append(code.co_name)
            return set_local_events(tool, code, events)

        monkeypatch.setattr(mon, "set_local_events", counting_events)
        # One setting per code object (the re-arm is off and on in one call run,
        # made only where lines were already armed), never one per action.
        placed = sorted(["f0", "f1", "f2", "inner", "inner", "inner"])
    with engine.batch():
        ids = [engine.add_counter(f"{where}:{line(f, o)}").id for f, o in every_line()]
    if engine.core == "bytecode":
        assert [*sorted(calls[:-1]), calls[-1]] == placed
    else:
        assert sorted(set(calls)) == sorted(set(placed))
        assert all(calls.count(name) <= 2 * placed.count(name) for name in set(placed)), calls
    calls.clear()
    with engine.batch():
        for action_id in ids:
            engine.remove(action_id)
    if engine.core == "bytecode":
        assert calls == ["scan"]  # the originals go back, nothing is rewritten
    else:
        assert len(calls) == 6


def test_the_channel_applies_the_hubs_set_as_one_batch(engine, target, monkeypatch):
    where = target.__name__
    channel = Channel(engine, AgentConfig(hub="http://127.0.0.1:9", token=None, service="t"))
    applied: list[int] = []
    apply = engine._backend.apply

    def counting(changes):
        applied.append(len(changes))
        return apply(changes)

    monkeypatch.setattr(engine._backend, "apply", counting)
    wanted = [
        {"id": f"c{f}{o}", "kind": "counter", "location": f"{where}:{line(f, o)}"}
        for f, o in every_line()
    ]
    wanted.append({"id": "bad", "kind": "counter", "location": f"{where}:{line(0, BLANK)}"})
    channel._reconcile(wanted)
    assert applied == [6]  # three functions, three closures: one change each
    run(target)
    assert engine.status("c03").hits == 3
    assert channel._reports[0]["action"] == "bad"
    assert channel._reports[0]["state"] == "error"
    applied.clear()
    channel._reconcile([])
    assert applied == [6]
    assert engine.actions() == []


def test_durations_and_lines_in_one_batch(engine, target):
    where = target.__name__
    originals = codes(target)
    with engine.batch():
        timed = engine.add_duration(f"{where}:f1").id
        counted = engine.add_counter(f"{where}:{line(1, 3)}").id
        other = engine.add_counter(f"{where}:{line(0, 1)}").id
    assert run(target) == [8, 9, 10]
    assert run(target) == [8, 9, 10]
    assert engine.status(timed).hits == 2
    assert engine.status(counted).hits == 6
    assert engine.status(other).hits == 2
    with engine.batch():
        engine.remove(timed)  # the lines stay; only the function hooks go
        engine.remove(other)
    run(target)
    assert engine.status(counted).hits == 9
    engine.remove(counted)
    assert all(now is orig for now, orig in zip(codes(target), originals, strict=True))
