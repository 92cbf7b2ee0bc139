"""The agent holds nothing of the application's after a hit (issue 17).

Objects with ``__del__`` and weakref callbacks go through lines that carry
every kind of action; they must be freed exactly when the code drops them,
as without the agent: here, before a generator suspends. Before 3.13 reading
``frame.f_locals`` stores a dict of the locals on the frame, which a
suspended generator keeps alive; deferred log text and error tracebacks are
the other ways an agent can hold on.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import marked_lines
from rt_targets import lifetimes
from rt_targets.lifetimes import Tracked
from runtime_agent import Engine

LINES = marked_lines(Path(lifetimes.__file__))


def at(name: str) -> str:
    return f"rt_targets/lifetimes.py:{LINES[name]}"


PLACE: dict[str, Callable[[Engine], Any]] = {
    "counter": lambda e: e.add_counter(at("life_use")),
    "counter_if": lambda e: e.add_counter(at("life_use"), condition="item.name != 'Z'"),
    "failing_condition": lambda e: e.add_counter(at("life_use"), condition="item.nope > 1"),
    "log": lambda e: e.add_log(at("life_use"), "name={item.name} item={item}"),
    "log_constant": lambda e: e.add_log(at("life_use"), "here"),
    "log_if": lambda e: e.add_log(at("life_use"), "{name}", condition="item is not None"),
    "log_error": lambda e: e.add_log(at("life_use"), "{item.nope}"),
    "snapshot": lambda e: e.add_snapshot(at("life_use"), max_hits=50),
    "snapshot_watch": lambda e: e.add_snapshot(at("life_use"), watch=["item"], max_hits=50),
    "snapshot_after": lambda e: e.add_snapshot(at("life_yield"), max_hits=50),
    "metric": lambda e: e.add_metric(at("life_use"), "len(item.name)"),
    "metric_if": lambda e: e.add_metric(at("life_use"), "size", condition="item is not None"),
    "duration": lambda e: e.add_duration("rt_targets.lifetimes:holder"),
    "duration_if": lambda e: e.add_duration("rt_targets.lifetimes:holder", condition="names"),
}


#: Kinds that read no locals while the object is bound: free on every core.
NO_LOCALS_WHILE_BOUND = {"counter", "duration", "duration_if", "snapshot_after"}


@pytest.mark.parametrize("kind", sorted(PLACE))
def test_objects_are_freed_when_the_code_drops_them(engine, kind, request):
    if kind not in NO_LOCALS_WHILE_BOUND:
        request.getfixturevalue("settrace_locals_gap")
    gc.collect()  # objects an earlier (xfailed) case kept are freed before this one counts
    placed = PLACE[kind](engine)
    names = [f"{kind}-{i}" for i in range(5)]
    called: list[object] = []
    gen = lifetimes.holder(names, called.append)
    for i, name in enumerate(names):
        Tracked.freed.clear()
        assert next(gen) == len(name)
        # Dropped before the yield: freed now, while the generator is suspended.
        assert Tracked.freed == [name], f"hit {i}: still alive"
        assert len(called) == i + 1, f"hit {i}: weakref callback did not run"
    assert list(gen) == []
    status = engine.status(placed.id)
    if kind == "failing_condition":
        assert "nope" in status.message  # it ran, and failed, at every hit
    else:
        assert status.hits > 0
    engine.drain()


def test_a_coroutine_suspended_after_a_hit_holds_nothing(engine, settrace_locals_gap):
    placed = engine.add_log(at("async_use"), "{item.name} {size}")
    Tracked.freed.clear()
    coroutine = lifetimes.handler("coro")
    coroutine.send(None)  # runs to the await, then suspends
    assert Tracked.freed == ["coro"]
    coroutine.close()
    assert engine.status(placed.id).hits == 1


def test_memory_stays_flat_under_a_snapshot_on_a_hot_line(engine, settrace_locals_gap):
    size = 4 * 1024 * 1024
    engine.add_snapshot(at("mem_use"), max_hits=20)
    engine.add_counter(at("mem_use"))
    gc.collect()
    tracemalloc.start()
    try:
        gen = lifetimes.blocks(20, size)
        held = []
        for _ in range(20):
            next(gen)
            engine.drain()  # what the channel does: the events leave the process
            held.append(tracemalloc.get_traced_memory()[0])
        gen.close()
    finally:
        tracemalloc.stop()
    # Each block is dropped before the yield: at most a fraction of one stays.
    assert max(held) < size // 4, [h // 1024 for h in held]


def test_a_locals_dict_the_code_holds_is_left_alone(engine):
    placed = engine.add_log(at("own_locals"), "{value}")
    namespace = lifetimes.keeps_its_locals(21)
    assert namespace["value"] == 21 and namespace["seen"] == 42
    assert engine.status(placed.id).hits == 1


def test_locals_stay_bound_after_hits_on_every_line(engine):
    for name in ("life_use", "life_yield"):
        engine.add_snapshot(at(name), max_hits=100)
    called: list[object] = []
    # Each yield follows a hit and a `del item`: an unbound local would raise.
    assert list(lifetimes.holder(["a", "bb", "ccc"], called.append)) == [1, 2, 3]
    assert len(called) == 3
