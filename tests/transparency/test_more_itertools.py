"""more-itertools' own tests come out the same with an action on every line of
``more_itertools/more.py`` as without (issue 17): any test whose outcome changes
fails this one, with its name and traceback.

Its tests are not in the wheel; ``more_itertools/v<version>/test_more.py`` is the
sdist's, for the version the dev extra pins on this interpreter (MIT, LICENSE beside
it). Each configuration runs in its own process (``runner.py``), the plain one and the
instrumented one side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import more_itertools
import pytest

import runtime_agent

HERE = Path(__file__).parent
VERSION = more_itertools.__version__
TESTS = HERE / "more_itertools" / f"v{VERSION.replace('.', '_')}" / "test_more.py"
#: Tests issue 17 saw fail under the agent (the second exists from 11.2).
MUST_PASS = (
    "ExtractTests.test_early_free",
    "SeekableTest.test_repeated_zero_cache_peek_has_bounded_memory",
)
TIMEOUT = 600


def run(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The runtime_agent this test imports, whichever checkout that is.
    agent_src = str(Path(runtime_agent.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [agent_src, env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(HERE / "runner.py"), str(TESTS), str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, output.decode(errors="replace")[-4000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    assert TESTS.exists(), (
        f"no vendored tests for more-itertools {VERSION}: put the sdist's tests/test_more.py "
        f"in {TESTS.parent} (pip download --no-deps --no-binary :all: more-itertools=={VERSION})"
    )
    tmp = tmp_path_factory.mktemp("more_itertools")
    plain = run(tmp / "plain.json")
    agent = run(tmp / "agent.json", "--instrument", "more_itertools.more")
    plain_report = finish(plain, tmp / "plain.json")
    agent_report = finish(agent, tmp / "agent.json")
    # The figures, shown with -s (and with any failure's output).
    print(
        f"more-itertools {VERSION} on {agent_report['core']}: {agent_report['placed']} "
        f"on {agent_report['lines']} lines placed in {agent_report['place_seconds']} s, "
        f"removed in {agent_report['remove_seconds']} s; tests {plain_report['test_seconds']} s "
        f"plainly, {agent_report['test_seconds']} s under the agent; {agent_report['states']}; "
        f"dropped_rate {agent_report['stats']['dropped_rate']}, "
        f"dropped_overflow {agent_report['stats']['dropped_overflow']}"
    )
    return plain_report, agent_report


def test_every_test_has_the_same_outcome_under_the_agent(runs: Any) -> None:
    plain, agent = runs
    missing = {"outcome": "not run", "detail": ""}
    changed = []
    for name in sorted(plain["outcomes"].keys() | agent["outcomes"].keys()):
        before = plain["outcomes"].get(name, missing)
        after = agent["outcomes"].get(name, missing)
        if before["outcome"] != after["outcome"]:
            detail = after["detail"] or before["detail"]
            changed.append(
                f"{name}: {before['outcome']} plainly, {after['outcome']} under the agent\n{detail}"
            )
    assert not changed, f"{len(changed)} outcomes changed:\n" + "\n".join(changed)
    assert len(plain["outcomes"]) > 600  # the whole module ran (692 of 11.1, 730 of 11.2)


def test_the_tests_that_caught_the_agent_pass_under_it(runs: Any) -> None:
    _, agent = runs
    outcomes = {name.split(".", 1)[1]: o["outcome"] for name, o in agent["outcomes"].items()}
    present = [name for name in MUST_PASS if name in outcomes]
    assert present[:1] == [MUST_PASS[0]]
    assert {name: outcomes[name] for name in present} == dict.fromkeys(present, "pass")


def test_every_planned_action_was_placed_and_stayed_on(runs: Any) -> None:
    _, agent = runs
    assert agent["refused"] == []
    placed = agent["placed"]
    assert sum(placed[k] for k in ("counter", "log", "snapshot")) == agent["lines"]
    assert placed["duration"] > 0 and placed["log"] > 0 and placed["snapshot"] > 0
    # Nothing broke: every action still installed, or paused by the CPU budget.
    assert set(agent["states"]) <= {"installed", "paused"}, agent["states"]
