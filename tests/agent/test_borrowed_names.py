"""No exception from a hook, and no lost hit, when the host patches the stdlib away.

attrs' own test suite deletes ``sys._getframe`` for a while; other suites
patch ``time``, ``threading`` or ``logging`` attributes. A hook that looked
such a name up when it ran raised ``AttributeError`` into the host (issue
19) or broke its action. Here every action kind, with conditions, runs on
every core of this interpreter while each name is deleted, or replaced by a
function that raises and records who called it: the host's code must run
as without us, every hit must be counted and every event queued, and none
of the agent's code may have called the replacement.

One engine at a time: on 3.11 and 3.12 a settrace engine next to another
reader of ``f_locals`` (a second engine, or the host) can unbind the host's
locals, a settrace core matter outside this file.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conftest import DEFAULT_CORE, HERE, marked_lines
from rt_targets import clockwork
from runtime_agent import ActionStatus, Engine

TARGET = HERE / "rt_targets" / "clockwork.py"
LINES = marked_lines(TARGET)
HITS = 20
#: Every core this interpreter can run actions on (settrace refuses all on 3.10).
CORES = [DEFAULT_CORE] + (["settrace"] if sys.version_info >= (3, 11) else [])
#: The module attributes a hook could borrow at call time.
NAMES: list[tuple[Any, str]] = [
    (sys, "_getframe"),
    (time, "monotonic"),
    (time, "time"),
    (time, "perf_counter"),
    (threading, "get_ident"),
    (threading, "current_thread"),
    (logging, "getLogger"),
]
_real_getframe = sys._getframe


def at(name: str) -> str:
    return f"rt_targets/clockwork.py:{LINES[name]}"


class Raiser:
    """Stands in for a stdlib function: raises, and notes the calling module."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.callers: list[str] = []

    def __call__(self, *args: object, **kwargs: object) -> Any:
        self.callers.append(_real_getframe(1).f_globals.get("__name__", "?"))
        raise RuntimeError(f"the host replaced {self.name}")


@contextmanager
def taken_away(owner: Any, name: str, mode: str) -> Iterator[Raiser | None]:
    """``owner.name`` deleted or replaced by a Raiser for the block, restored after."""
    original = getattr(owner, name)
    raiser = Raiser(f"{owner.__name__}.{name}") if mode == "raises" else None
    if raiser is None:
        delattr(owner, name)
    else:
        setattr(owner, name, raiser)
    try:
        yield raiser
    finally:
        setattr(owner, name, original)


@contextmanager
def app_logging() -> Iterator[list[logging.LogRecord]]:
    """The records the agent hands the application's logging, at INFO, for the block."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("runtime_agent.dynamic")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


_MANY = {"max_hits": 10**6}
_FAST = {"rate_limit": 10**6, **_MANY}
#: One action of each kind on clockwork.work (and risky), most with a condition.
PLACERS: dict[str, Callable[[Engine], ActionStatus]] = {
    "log": lambda e: e.add_log(at("work_total"), "n={n}", condition="n >= 0", **_FAST),
    "log_both": lambda e: e.add_log(at("work_more"), "total={total}", output="both", **_FAST),
    "snapshot": lambda e: e.add_snapshot(
        at("work_total"), condition="n >= 0", watch=["n * 3"], **_FAST
    ),
    "counter": lambda e: e.add_counter(at("work_total"), condition="n >= 0", **_MANY),
    "bare_counter": lambda e: e.add_counter(at("work_more"), **_MANY),
    "metric": lambda e: e.add_metric(at("work_more"), "total", condition="total >= 0", **_MANY),
    "duration": lambda e: e.add_duration("rt_targets.clockwork:work", condition="n >= 0"),
    "unwind": lambda e: e.add_duration("rt_targets.clockwork:risky"),
}


def place_every_kind(engine: Engine) -> dict[str, str]:
    """One action of each kind; ids by role."""
    ids = {role: place(engine).id for role, place in PLACERS.items()}
    for role, action_id in ids.items():
        assert engine.status(action_id).state == "installed", role
    return ids


def healthy(engine: Engine, role: str, action_id: str) -> bool:
    status = engine.status(action_id)
    return status.state == "installed" and (status.message == "" or role == "log_both")


@pytest.fixture(scope="module", params=CORES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    eng = Engine(core=request.param, cpu_budget=1.0, max_events=10**6, max_events_per_second=10**6)
    try:
        yield eng
    finally:
        eng.close()


_PLACED: dict[int, dict[str, str]] = {}


@pytest.fixture
def placed(engine: Engine) -> tuple[Engine, dict[str, str]]:
    """The module's engine (one at a time, see above) with one healthy action of
    each kind: any that a failed test left broken is placed again."""
    ids = _PLACED.setdefault(id(engine), {})
    for role, place in PLACERS.items():
        if role in ids and healthy(engine, role, ids[role]):
            continue
        if role in ids:
            engine.remove(ids[role])
        ids[role] = place(engine).id
    engine.drain()
    return engine, dict(ids)


def run_host(hits: int) -> None:
    """The host's own work, checked as it goes: results and its own exceptions."""
    for i in range(hits):
        one_call(i)


def one_call(i: int) -> None:
    # Its own frame, with run_host's, keeps a snapshot's three frames of
    # locals small (the test function's would hold the engine).
    assert clockwork.work(i) == 2 * i + 1
    assert clockwork.risky(i) == i
    try:
        clockwork.risky(-1)
    except ValueError as exc:  # the host's exception, not one of ours
        assert exc.args == (-1,)
    else:
        raise AssertionError("risky(-1) returned")


def check_recorded(engine: Engine, ids: dict[str, str], before: dict[str, int]) -> None:
    """Every action counted exactly ``HITS`` more hits, queued its events, and is fine."""
    expected = {role: HITS for role in ids}
    expected["unwind"] = 2 * HITS  # risky(i) returns, risky(-1) unwinds
    engine.flush()
    events = engine.drain()
    for role, action_id in ids.items():
        status = engine.status(action_id)
        assert status.state == "installed", (role, status.message)
        assert status.hits - before[role] == expected[role], role
        if role != "log_both":
            assert status.message == "", (role, status.message)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_action.setdefault(event.get("action", ""), []).append(event)
    for role in ("log", "log_both", "snapshot"):
        mine = [e for e in by_action.get(ids[role], []) if e["type"] != "state"]
        assert len(mine) == HITS, role
        assert all(type(e["ts"]) is float for e in mine)
    for role in ("metric", "duration", "unwind", "counter", "bare_counter"):
        counted = sum(e["count"] for e in by_action.get(ids[role], []) if e["type"] == "metric")
        assert counted == expected[role], role
    assert [e for e in by_action[ids["log"]] if e["type"] == "log"][-1]["message"] == (
        f"n={HITS - 1}"
    )


@pytest.mark.parametrize("mode", ["deleted", "raises"])
@pytest.mark.parametrize(("owner", "name"), NAMES, ids=[f"{o.__name__}.{n}" for o, n in NAMES])
def test_every_action_kind_runs_while_the_host_takes_a_name_away(placed, owner, name, mode):
    engine, ids = placed
    engine.drain()
    before = {role: engine.status(action_id).hits for role, action_id in ids.items()}
    with app_logging(), taken_away(owner, name, mode) as raiser:
        run_host(HITS)
    check_recorded(engine, ids, before)
    if raiser is not None:
        ours = [caller for caller in raiser.callers if caller.startswith("runtime_agent")]
        assert ours == []


def test_host_logging_failing_keeps_the_log_action_and_its_events(placed):
    engine, ids = placed
    engine.drain()
    with app_logging() as records, taken_away(threading, "get_ident", "raises") as raiser:
        assert clockwork.work(3) == 7
    assert records == []
    assert raiser is not None and "logging" in raiser.callers  # the host's logging broke
    status = engine.status(ids["log_both"])
    assert status.state == "installed"
    assert "application logging failed: RuntimeError" in status.message
    logs = [e for e in engine.drain() if e.get("action") == ids["log_both"]]
    assert [e["message"] for e in logs] == ["total=6"]  # the line runs before total += 1


def test_app_log_records_name_the_hosts_line(placed):
    _, ids = placed
    with app_logging() as records:
        clockwork.work(5)
    assert len(records) == 1
    record = records[0]
    assert record.getMessage() == "total=10"
    assert (record.pathname, record.lineno, record.funcName) == (
        str(TARGET),
        LINES["work_more"],
        "work",
    )
    assert record.runtime_agent_action == ids["log_both"]  # type: ignore[attr-defined]


def test_attrs_deletes_sys_getframe_while_actions_are_placed_and_run(placed) -> None:
    """attrs' test_missing_sys_getframe: ``del sys._getframe``, restored in finally.
    The agent started before; its channel may place actions at any moment."""
    engine, _ = placed
    engine.drain()
    original: Callable[..., Any] = sys._getframe
    del sys._getframe
    try:
        ids = place_every_kind(engine)
        run_host(HITS)
    finally:
        sys._getframe = original
    try:
        check_recorded(engine, ids, dict.fromkeys(ids, 0))
    finally:
        for action_id in ids.values():
            engine.remove(action_id)
