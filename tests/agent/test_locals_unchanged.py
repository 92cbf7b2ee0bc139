"""A dict the host keeps from ``locals()`` is unchanged by the actions (issue 19, item 5).

Before 3.13, ``locals()`` and ``frame.f_locals`` return the same dict cached
on the frame, and every read of ``f_locals`` refills it: a function holding
``d = locals()`` would see the names bound since (and its own edits undone)
once an action on a later line reads its locals. Each function here keeps
that dict (itself, through a keeper, or as the caller of a snapshotted
function) and compares it with a copy taken before any action ran: the
same names, in the same order, bound to the same objects. Every action kind
that reads locals, on every core of this interpreter.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import marked_lines
from rt_targets import keeper
from runtime_agent import Engine, framelocals

LINES = marked_lines(Path(keeper.__file__))


def at(name: str) -> str:
    return f"rt_targets/keeper.py:{LINES[name]}"


#: Each kind placed on a line: all of them read the frame's locals.
PLACE: dict[str, Callable[[Engine, str], Any]] = {
    "counter_if": lambda e, line: e.add_counter(line, condition="first > 0"),
    "log": lambda e, line: e.add_log(line, "first={first}"),
    "log_constant": lambda e, line: e.add_log(line, "here"),
    "snapshot": lambda e, line: e.add_snapshot(line, max_hits=5),
    "snapshot_watch": lambda e, line: e.add_snapshot(line, watch=["first"], max_hits=5),
    "metric": lambda e, line: e.add_metric(line, "first"),
    "metric_if": lambda e, line: e.add_metric(line, "1", condition="first > 0"),
}

SHAPES: dict[str, tuple[Callable[[int], Any], str]] = {
    "keeps": (keeper.keeps_locals, "keep_action"),
    "passes": (keeper.passes_locals, "pass_action"),
}


def assert_unchanged(kept: dict[str, Any], before: dict[str, Any]) -> None:
    assert list(kept) == list(before), "the kept locals() dict gained or lost names"
    for name, value in before.items():
        assert kept[name] is value, f"{name} was rebound in the kept dict"


def test_the_frame_layout_check_passed() -> None:
    # Before 3.13 the agent finds the frame's dict before it reads f_locals;
    # a failed self-check would silently refill kept dicts again.
    assert framelocals.KEEPS == framelocals.CACHED, framelocals.KEEP_DISABLED


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("kind", sorted(PLACE))
def test_a_kept_locals_dict_is_unchanged_by_an_action(
    engine: Engine, kind: str, shape: str, settrace_locals_gap: None
) -> None:
    function, line = SHAPES[shape]
    placed = PLACE[kind](engine, at(line))
    after = PLACE[kind](engine, at(line.replace("action", "after")))
    for n in range(3):
        kept, before = function(n)
        assert_unchanged(kept, before)
    assert engine.status(placed.id).hits == 3
    assert engine.status(after.id).hits == 3
    engine.drain()


@pytest.mark.parametrize("watch", [[], ["x"]])
def test_a_snapshot_leaves_a_callers_kept_locals_unchanged(
    engine: Engine, watch: list[str], settrace_locals_gap: None
) -> None:
    placed = engine.add_snapshot(at("inner_action"), watch=watch, max_hits=5)
    kept, before = keeper.calls_with_kept_locals(4)
    assert_unchanged(kept, before)
    snapshot = [e for e in engine.drain() if e["type"] == "snapshot"]
    assert len(snapshot) == 1 and engine.status(placed.id).hits == 1
    caller = snapshot[0]["frames"][1]
    assert caller["function"] == "calls_with_kept_locals"
    assert "locals" in caller  # it was read, and handed back as it was


def test_without_a_kept_dict_the_frames_dict_is_still_emptied() -> None:
    # The common case stays as before: a dict only the frame holds is
    # emptied after the read (framelocals.release), nothing is copied.
    def read_once() -> tuple[Any, Any, int]:
        a = 1
        frame = sys._getframe()
        kept = framelocals.keep(frame)
        mapping = frame.f_locals
        framelocals.release(frame, mapping, kept)
        size = len(mapping)
        kind = type(mapping)
        del mapping
        return kept, kind, size + a - 1

    kept, kind, size = read_once()
    assert kept is None
    if framelocals.CACHED:
        assert kind is dict and size == 0
    else:  # 3.13's write-through proxy: nothing cached, nothing to empty
        assert kind is not dict and size > 0
