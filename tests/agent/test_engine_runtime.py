"""The engine inside a real host: threads, asyncio, fork, the CPU budget,
coverage.py in the same process, and a module's own test suite."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import unittest
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import DEFAULT_CORE, at, events_of, refuses_closures
from rt_targets import shapes
from runtime_agent import ActionStatus, CoreRefused, Engine
from runtime_agent.budget import CpuBudget

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def test_counts_are_exact_under_threads(engine):
    status = engine.add_counter(at("plain_total"))
    limited = engine.add_log(at("plain_return"), "{a}", max_hits=100, rate_limit=10_000)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for i in range(2000):
            shapes.plain(i, 2)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.status(status.id).hits == 16_000
    assert len(events_of(engine, "log", limited.id)) == 100
    assert engine.status(limited.id).hits == 100


def test_snapshot_in_asyncio_task_has_task_and_context(engine):
    status = engine.add_snapshot(at("coroutine"))

    async def main() -> int:
        REQUEST_ID.set("req-7")
        return await asyncio.create_task(shapes.coroutine(5), name="trade-task")

    assert asyncio.run(main()) == 15
    [snap] = events_of(engine, "snapshot", status.id)
    assert snap["task"] == "trade-task"
    assert snap["context"]["request_id"]["value"] == "req-7"


def test_hooks_never_raise_into_the_host(engine, monkeypatch):
    status = engine.add_log(at("plain_total"), "{a}")

    def broken(*args, **kwargs):
        raise RuntimeError("bug in the agent")

    from runtime_agent import template

    monkeypatch.setattr(template.Template, "capture", broken)
    assert shapes.plain(2, 3) == 7
    now = engine.status(status.id)
    assert now.state == "error"
    assert "bug in the agent" in now.message
    assert shapes.plain(2, 3) == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_forked_child_keeps_actions_with_a_new_identity(engine):
    status = engine.add_counter(at("plain_total"))
    shapes.plain(1, 1)
    parent_id = engine.instance_id
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running pytest's teardown
        try:
            queued_from_parent = len(engine.drain())
            shapes.plain(1, 1)
            shapes.plain(1, 1)
            result = {
                "id": engine.instance_id,
                "hits": engine.status(status.id).hits,
                "queued_from_parent": queued_from_parent,
            }
            os.write(write, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child["id"] != parent_id
    assert child["hits"] == 3  # the parent's one hit, then two of its own
    assert child["queued_from_parent"] == 0
    assert engine.status(status.id).hits == 1


def test_cpu_budget_pauses_a_hot_action_until_it_is_resumed():
    with Engine(core=DEFAULT_CORE) as eng:
        eng._budget = CpuBudget(fraction=0.01, window=1.0)
        status = eng.add_snapshot(at("slow"), max_hits=10**6, rate_limit=10**6)
        deadline = time.monotonic() + 5
        while eng.status(status.id).state != "paused" and time.monotonic() < deadline:
            shapes.slow(1.0)
        paused = eng.status(status.id)
        assert paused.state == "paused"
        assert "over the 1% budget" in paused.message
        assert "resume it" in paused.message and "replace it" in paused.message
        hits = paused.hits
        for _ in range(200):
            shapes.slow(1.0)
        assert eng.status(status.id).hits == hits  # paused: nothing recorded
        time.sleep(1.5)  # the window empties: it used to resume by itself here
        assert eng.status(status.id).state == "paused"
        shapes.slow(1.0)
        assert eng.status(status.id).hits == hits
        resumed = eng.resume(status.id)
        assert resumed.state == "installed"
        assert resumed.message == "resumed by a caller"
        shapes.slow(1.0)
        assert eng.status(status.id).hits == hits + 1


def test_module_own_tests_pass_with_an_action_on_every_line(engine):
    import textwrap as target

    from runtime_agent.locate import code_lines, live_code

    lines = set()
    for path, _ in live_code(target.__file__, lambda c: c):
        lines |= code_lines(path.code)

    def place(add: Callable[[int], ActionStatus], numbers: list[int]) -> list[ActionStatus]:
        placed = []
        for number in numbers:
            try:
                placed.append(add(number))
            except CoreRefused:  # settrace before 3.13: functions with closures
                assert refuses_closures(engine)
        return placed

    where = target.__file__
    placed = place(lambda n: engine.add_counter(f"{where}:{n}"), sorted(lines))
    snaps = place(lambda n: engine.add_log(f"{where}:{n}", "{self}"), sorted(lines)[:40])
    assert len(placed) > 100
    from test import test_textwrap

    suite = unittest.defaultTestLoader.loadTestsFromModule(test_textwrap)
    result = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(suite)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun > 50
    assert sum(engine.status(p.id).hits for p in placed) > 1000
    assert any(engine.status(s.id).hits for s in snaps)
    engine.remove_all()


COVERAGE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {targets!r})
    from runtime_agent import Engine
    from rt_targets import shapes
    engine = Engine()
    status = engine.add_counter({location!r})
    for i in range(5):
        shapes.loop(3)
    print(json.dumps({{"hits": engine.status(status.id).hits, "core": engine.core}}))
    engine.close()
    """
)


def test_coverage_measures_the_module_while_actions_are_on_it(tmp_path):
    script = tmp_path / "run.py"
    targets = str(Path(__file__).parent)
    script.write_text(COVERAGE_SCRIPT.format(targets=targets, location=at("loop_body")))
    env = dict(os.environ)
    if sys.version_info >= (3, 12):
        env["COVERAGE_CORE"] = "sysmon"
    data = tmp_path / ".coverage"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            f"--data-file={data}",
            "--include=*shapes.py",
            str(script),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["hits"] == 15
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", "-"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    files = json.loads(report.stdout)["files"]
    [measured] = [f for name, f in files.items() if name.endswith("shapes.py")]
    body = int(at("loop_body").rsplit(":", 1)[1])
    assert body in measured["executed_lines"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring exists from 3.12")
def test_monitoring_leaves_other_tools_alone():
    """A debugger's switched-off locations stay off in code we never touch, and
    it keeps receiving its events where we do."""
    mon = sys.monitoring
    debugger = mon.DEBUGGER_ID
    assert mon.get_tool(debugger) is None
    seen: list[tuple[str, int]] = []

    def on_line(code, line):
        seen.append((code.co_name, line))
        return mon.DISABLE

    mon.use_tool_id(debugger, "test-debugger")
    try:
        mon.register_callback(debugger, mon.events.LINE, on_line)
        for func in (shapes.plain, shapes.loop):
            mon.set_local_events(debugger, func.__code__, mon.events.LINE)
        shapes.plain(1, 2)
        shapes.loop(2)
        before = len(seen)
        with Engine(core="monitoring") as eng:
            assert eng.core == "monitoring"
            status = eng.add_counter(at("plain_total"))
            shapes.loop(2)  # untouched by us: the debugger's DISABLEs hold
            assert seen[before:] == []
            assert shapes.plain(1, 2) == 3
            assert eng.status(status.id).hits == 1
            assert mon.get_tool(debugger) == "test-debugger"
        shapes.loop(2)
        # Only the code object we instrumented was re-armed for the debugger.
        assert {name for name, _ in seen[before:]} == {"plain"}
    finally:
        mon.register_callback(debugger, mon.events.LINE, None)
        for func in (shapes.plain, shapes.loop):
            mon.set_local_events(debugger, func.__code__, 0)
        mon.free_tool_id(debugger)
