"""Polite use of sys.monitoring: a tool id only while actions need one, id 4
first, never another tool's; coverage.py and Hypothesis's explain phase keep
working in the same process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import marked_lines
from rt_targets import churn
from runtime_agent import Engine

HERE = Path(__file__).parent
STAY = f"rt_targets.churn:{marked_lines(Path(churn.__file__))['stay']}"
monitoring_only = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="sys.monitoring exists from 3.12"
)


def ours() -> list[int]:
    mon = sys.monitoring
    return [i for i in range(6) if mon.get_tool(i) == "runtime-agent"]


@pytest.fixture
def occupy() -> Iterator[list[int]]:
    """Take tool ids for a pretend other tool; freed afterwards."""
    held: list[int] = []
    yield held
    for tool in held:
        sys.monitoring.free_tool_id(tool)


def take(held: list[int], *tools: int) -> None:
    for tool in tools:
        sys.monitoring.use_tool_id(tool, f"other-{tool}")
        held.append(tool)


@monitoring_only
def test_a_tool_id_is_held_only_while_actions_need_one() -> None:
    assert ours() == []
    with Engine(core="monitoring") as eng:
        assert ours() == []
        assert eng.core_status.startswith("monitoring (no tool id held")
        first = eng.add_counter(STAY)
        second = eng.add_duration("rt_targets.churn:work")
        assert ours() == [4]
        assert eng.core_status == "monitoring (tool id 4)"
        churn.work(1)
        eng.remove(first.id)
        assert ours() == [4]  # the duration still needs it
        eng.remove(second.id)
        assert ours() == []
        assert eng.core_status.startswith("monitoring (no tool id held")
        again = eng.add_counter(STAY)
        churn.work(1)
        assert eng.status(again.id).hits == 1
        assert ours() == [4]
    assert ours() == []


@monitoring_only
def test_other_tools_ids_are_never_taken(occupy: list[int]) -> None:
    take(occupy, 4)
    with Engine(core="monitoring") as eng:
        eng.add_counter(STAY)
        assert ours() == [5]  # the next in the order: 4 is someone else's
    take(occupy, 0, 1, 2, 3)
    with Engine(core="monitoring") as eng:
        # The last free id goes to another tool after the engine started
        # (all taken at the start: test_cores_readonly falls back to settrace).
        take(occupy, 5)
        status = eng.add_counter(STAY)  # no exception to the host
        assert status.state == "error", status
        assert "every sys.monitoring tool id is taken" in status.message
        assert "4 other-4" in status.message and "place the action again" in status.message
        assert eng.core_status.startswith("monitoring: every sys.monitoring tool id is taken")
        assert [sys.monitoring.get_tool(i) for i in range(6)] == [f"other-{i}" for i in range(6)]
        assert churn.work(1) == 3  # the host's code runs as before
        sys.monitoring.free_tool_id(2)
        occupy.remove(2)
        placed = eng.add_counter(STAY)
        assert placed.state == "installed"
        churn.work(1)
        assert eng.status(placed.id).hits == 1
        assert ours() == [2]
    assert ours() == []


def test_coverage_and_hypothesis_explain_in_the_same_process(tmp_path: Path) -> None:
    """coverage.py (its sysmon core on 3.12+, tool id 1), a failing Hypothesis
    test whose explain phase traces with tool id 3, and an engine with a
    counter, all under ``-W error``: no warning, each gets its result."""
    script = textwrap.dedent(
        f"""
        import json, sys, warnings
        sys.path.insert(0, {str(HERE)!r})
        import coverage
        cov = coverage.Coverage(data_file=None, include=["*/rt_targets/churn.py"])
        cov.start()
        from hypothesis import Phase, given, settings, strategies as st
        from runtime_agent import Engine
        from rt_targets import churn

        engine = Engine()
        status = engine.add_counter({STAY!r})
        calls = []
        tools = set()
        mon = getattr(sys, "monitoring", None)

        @settings(database=None, derandomize=True,
                  phases=[Phase.generate, Phase.shrink, Phase.explain])
        @given(st.integers(min_value=0, max_value=1000))
        def check(n):
            calls.append(n)
            if mon is not None:
                tools.update((i, mon.get_tool(i)) for i in range(6) if mon.get_tool(i))
            if churn.work(n) > 9:
                raise ValueError("too big")

        try:
            check()
            notes = ["no failure"]
        except ValueError as exc:
            notes = getattr(exc, "__notes__", [])
        cov.stop()
        print(json.dumps({{
            "hits": engine.status(status.id).hits, "calls": len(calls), "notes": notes,
            "tools": sorted(tools), "core": engine.core_status,
            "covered": sorted(cov.get_data().lines(churn.__file__) or []),
        }}))
        engine.close()
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if sys.version_info >= (3, 12):
        env["COVERAGE_CORE"] = "sysmon"
    # A file, not -c: the explanation names lines of files it can read.
    (tmp_path / "host.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "-W", "error", str(tmp_path / "host.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "already taken" not in done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["calls"] > 1
    assert found["hits"] == found["calls"]
    assert marked_lines(Path(churn.__file__))["stay"] in found["covered"]
    if sys.version_info >= (3, 12):
        assert found["core"] == "monitoring (tool id 4)"
        assert [1, "coverage.py"] in found["tools"]
        assert [3, "scrutineer"] in found["tools"]  # Hypothesis's explain phase ran
        assert [4, "runtime-agent"] in found["tools"]
        assert "Explanation:" in found["notes"], found["notes"]
