"""Actions fire in every code shape the agent supports, on every core."""

from __future__ import annotations

import asyncio

import pytest

from conftest import at, events_of, refuses_closures
from rt_targets import shapes
from runtime_agent import CoreRefused


async def _collect_async_gen(n: int) -> list[int]:
    return [v async for v in shapes.async_gen(n)]


# marker, call that runs the line, expected hits, a local the snapshot must show
CASES = [
    ("plain_total", lambda: shapes.plain(3, 4), 1, ("a", 3)),
    ("method", lambda: shapes.Service().method(5), 1, ("x", 5)),
    ("static", lambda: shapes.Service.static(1), 1, ("x", 1)),
    ("classmethod", lambda: shapes.Service.klass(2), 1, ("x", 2)),
    ("closure", lambda: shapes.EXISTING_ADDER(1), 1, ("n", 10)),
    ("closure", lambda: shapes.make_adder(5)(1), 1, ("n", 5)),
    ("decorated", lambda: shapes.decorated(4), 1, ("x", 4)),
    ("gen_yield", lambda: list(shapes.generator(3)), 3, ("n", 3)),
    ("coroutine", lambda: asyncio.run(shapes.coroutine(2)), 1, ("x", 2)),
    ("async_gen", lambda: asyncio.run(_collect_async_gen(2)), 2, ("n", 2)),
    ("comprehension", lambda: shapes.comprehension([1, 2, 3]), 1, ("values", [1, 2, 3])),
    ("lambda", lambda: shapes.with_lambda([1, 2]), 1, ("values", [1, 2])),
    ("loop_body", lambda: shapes.loop(4), 4, ("n", 4)),
    ("try_body", lambda: shapes.try_except(0), 1, ("x", 0)),
    ("except_body", lambda: shapes.try_except(0), 1, ("x", 0)),
    ("finally_body", lambda: shapes.try_except(2), 1, ("x", 2)),
    ("nested", lambda: shapes.outer(3), 1, ("y", 3)),
]


@pytest.mark.parametrize(("marker", "call", "hits", "local"), CASES)
def test_counter_counts_each_execution_of_the_line(engine, marker, call, hits, local):
    expected = call()
    if marker == "closure" and refuses_closures(engine):
        with pytest.raises(CoreRefused, match="closure variables"):
            engine.add_counter(at(marker))
        return
    status = engine.add_counter(at(marker))
    assert status.state == "installed", status.message
    assert call() == expected  # the host's result is unchanged
    assert engine.status(status.id).hits == hits


@pytest.mark.parametrize(("marker", "call", "hits", "local"), CASES)
def test_snapshot_sees_the_frame_locals(engine, marker, call, hits, local):
    if marker == "closure" and refuses_closures(engine):
        with pytest.raises(CoreRefused, match="closure variables"):
            engine.add_snapshot(at(marker))
        return
    status = engine.add_snapshot(at(marker))
    call()
    snaps = events_of(engine, "snapshot", status.id)
    assert len(snaps) == 1
    name, value = local
    assert decode(snaps[0]["locals"][name]) == value
    assert snaps[0]["line"] == int(at(marker).rsplit(":", 1)[1])


def decode(captured: dict):
    """A captured int, str or list of them back as a Python value."""
    if "items" in captured:
        return [decode(item) for item in captured["items"]]
    return captured["value"]


def test_line_that_raises_keeps_its_traceback_line(engine):
    status = engine.add_counter(at("raises"))
    with pytest.raises(ValueError, match="negative") as info:
        shapes.raises(-1)
    assert info.traceback[-1].lineno + 1 == int(at("raises").rsplit(":", 1)[1])
    assert engine.status(status.id).hits == 1


def test_comprehension_line_counts_the_statement_not_each_element(engine):
    status = engine.add_counter(at("comprehension"))
    shapes.comprehension(list(range(10)))
    assert engine.status(status.id).hits == 1


def test_duration_of_a_method_by_qualname(engine):
    status = engine.add_duration("rt_targets.shapes:Service.execute_trade")
    assert status.state == "installed"
    svc = shapes.Service()
    req = shapes.Request("u1", [1])
    for _ in range(5):
        svc.execute_trade(req, 10.0, 3)
    engine.flush()
    [metric] = events_of(engine, "metric", status.id)
    assert metric["metric"] == "duration"
    assert metric["count"] == 5
    assert 0 <= metric["min"] <= metric["p50"] <= metric["max"]


def test_duration_counts_calls_that_raise(engine):
    status = engine.add_duration("rt_targets.shapes:raises")
    for x in (-1, 1, -2):
        try:
            shapes.raises(x)
        except ValueError:
            pass
    engine.flush()
    [metric] = events_of(engine, "metric", status.id)
    assert metric["count"] == 3


def test_duration_of_generator_spans_first_start_to_end(engine):
    status = engine.add_duration("rt_targets.shapes:generator")
    assert list(shapes.generator(4)) == [0, 1, 4, 9]
    engine.flush()
    [metric] = events_of(engine, "metric", status.id)
    assert metric["count"] == 1


@pytest.mark.parametrize(
    "qualname", ["make_adder.<locals>.adder", "make_adder.adder", "outer.inner", "decorated"]
)
def test_duration_by_nested_and_decorated_names(engine, qualname):
    if "adder" in qualname and refuses_closures(engine):
        with pytest.raises(CoreRefused, match="closure variables"):
            engine.add_duration(f"rt_targets.shapes:{qualname}")
        return
    status = engine.add_duration(f"rt_targets.shapes:{qualname}")
    assert status.state == "installed"
    shapes.make_adder(1)(2)
    shapes.outer(2)
    shapes.decorated(3)
    engine.flush()
    [metric] = events_of(engine, "metric", status.id)
    assert metric["count"] == 1
