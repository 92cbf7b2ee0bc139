"""Exact counts under churn: actions that stay count every hit while others
come and go on the same code object, on every core this interpreter runs.

Eight threads call a hot function whose lines carry a counter and a duration
that stay placed; another thread adds and removes other actions on that
function's other lines, a second duration on it, and a counter on another
function, in a loop. The staying actions must count exactly what the host's
own counter counted. A short thread switch interval makes the interpreter
switch threads inside the engine's placement and inside the callbacks, where
a window with events off, or a line table seen half rebuilt, loses hits.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import marked_lines
from rt_targets import churn
from runtime_agent import Engine

THREADS = 8
ROUNDS = 3
#: Churn cycles per round, each adding and removing four actions, within
#: ROUND_SECONDS (the staying duration is charged wall time in its hooks,
#: times the threads: a long round would trip its CPU budget).
CYCLES = 12
MIN_CYCLES = 2
ROUND_SECONDS = 0.5
BURST = 20  # calls between a worker's short sleeps
PAUSE = 0.002  # seconds the churn leaves the workers alone, with and without its actions
LINES = marked_lines(__import__("pathlib").Path(churn.__file__))
HERE = "rt_targets.churn"  # module:LINE resolves without scanning every module


def _cores() -> list[str]:
    """The cores that run actions on this interpreter (settrace refuses all on 3.10)."""
    cores = ["monitoring"] if sys.version_info >= (3, 12) else ["bytecode"]
    if sys.version_info >= (3, 11):
        cores.append("settrace")
    return cores


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every few microseconds instead of every 5 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _churn(engine: Engine, start: threading.Barrier, stop: threading.Event) -> None:
    start.wait()
    began = time.monotonic()
    for cycle in range(CYCLES):
        if cycle >= MIN_CYCLES and time.monotonic() - began > ROUND_SECONDS:
            break
        ids = [
            engine.add_counter(f"{HERE}:{LINES['churn_a']}").id,
            engine.add_metric(f"{HERE}:{LINES['churn_b']}", "total").id,
            engine.add_duration(f"{HERE}:{LINES['churn_c']}").id,
            engine.add_counter(f"{HERE}:{LINES['other']}").id,
        ]
        time.sleep(PAUSE)
        for action_id in ids:
            engine.remove(action_id)
        time.sleep(PAUSE)
    stop.set()


def _hammer(start: threading.Barrier, stop: threading.Event, calls: list[int]) -> None:
    work, other, stopped, pause = churn.work, churn.other, stop.is_set, time.sleep
    start.wait()
    done = 0
    while not stopped():
        for _ in range(BURST):
            work(done)
            other(done)
            done += 1
        # Not all eight runnable at once: a hook of a thread waiting for the
        # GIL is charged the wait, and the churn needs its turns too.
        pause(0.0005)
    calls.append(done)


@pytest.mark.parametrize("core", _cores())
def test_staying_actions_count_every_hit_under_churn(core: str, fast_switching: None) -> None:
    with Engine(core=core, cpu_budget=1.0, max_events=100) as engine:
        # Counting is under test, not the CPU budget: the budget charges each hook's
        # wall time, which with 8 threads contending for the GIL adds up past a full
        # core, and on a loaded machine paused a staying action.
        engine._budget.fraction = float("inf")
        for round_no in range(ROUNDS):
            counter = engine.add_counter(f"{HERE}:{LINES['stay']}")
            duration = engine.add_duration("rt_targets.churn:work")
            assert (counter.state, duration.state) == ("installed", "installed")
            stop = threading.Event()
            calls: list[int] = []
            start = threading.Barrier(THREADS + 1)
            workers = [
                threading.Thread(target=_hammer, args=(start, stop, calls)) for _ in range(THREADS)
            ]
            for t in workers:
                t.start()
            _churn(engine, start, stop)
            for t in workers:
                t.join()
            expected = sum(calls)
            got = (engine.status(counter.id), engine.status(duration.id))
            assert len(calls) == THREADS and min(calls) > 0, calls
            assert [s.state for s in got] == ["installed", "installed"], got
            assert [s.hits for s in got] == [expected, expected], (
                f"round {round_no} on {core}: host counted {expected} calls, "
                f"counter {got[0].hits}, duration {got[1].hits}"
            )
            engine.remove(counter.id)
            engine.remove(duration.id)
