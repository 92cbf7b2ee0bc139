"""Cores that cannot change host state, and that say which one runs and why.

Before 3.13 CPython's trace trampoline writes a frame's locals back after a
trace event; a closure variable another thread changed meanwhile got its old
value back (issue 9: more than half of 300k ``nonlocal`` increments lost).
The race below is that attack: one thread increments a closure variable, the
other runs an action on a line that reads it; the final count must be exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from conftest import DEFAULT_CORE
from runtime_agent import CoreRefused, Engine
from runtime_agent.backends import choose_backend

INCREMENTS = 200_000
HERE = os.path.abspath(__file__)


def make_counter():
    n = 0

    def increment(times: int) -> None:
        nonlocal n
        for _ in range(times):
            n += 1

    def read() -> int:
        return n  # the action's line: reads the closure variable

    def total() -> int:
        return n

    return increment, read, total


def plain_reader(k: int) -> int:
    doubled = k * 2  # a line in a function without closure variables
    return doubled


def reads_its_own_locals(n: int) -> tuple[int, int]:
    a = n + 1  # the action's line
    "a" in sys._getframe().f_locals  # the host reads its locals and keeps nothing
    b = a * 2
    return a, b


READ_LINE = f"{HERE}:{make_counter.__code__.co_firstlineno + 9}"
PLAIN_LINE = f"{HERE}:{plain_reader.__code__.co_firstlineno + 1}"


def snapshotted_callee(x: int) -> int:
    return x * 2  # the snapshot's line: it captures the caller's locals too


def traced_caller(n: int) -> int:
    a = n + 1
    b = snapshotted_callee(a)
    c = a + b  # a counter here: the caller is traced as well
    return c


CALLEE_LINE = f"{HERE}:{snapshotted_callee.__code__.co_firstlineno + 1}"
CALLER_LINE = f"{HERE}:{traced_caller.__code__.co_firstlineno + 3}"
OWN_READ_LINE = f"{HERE}:{reads_its_own_locals.__code__.co_firstlineno + 1}"
#: The settrace core writes locals back before 3.13 (always on 3.10).
SETTRACE_WRITES_BACK = sys.version_info < (3, 13)


@pytest.fixture(params=[DEFAULT_CORE, "settrace"])
def any_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    eng = Engine(core=request.param)
    try:
        yield eng
    finally:
        eng.close()


def race(reader, increment, stop_after: int = INCREMENTS) -> None:
    """Run ``reader`` in a loop on another thread while this one increments."""
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            reader()

    thread = threading.Thread(target=loop)  # started after the action: traced everywhere
    thread.start()
    try:
        increment(stop_after)
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize("kind", ["log", "snapshot", "condition", "counter"])
def test_closure_counter_stays_exact_or_the_action_is_refused(any_engine, kind):
    increment, read, total = make_counter()
    place = {
        "log": lambda: any_engine.add_log(READ_LINE, "n={n}", max_hits=10**9, rate_limit=1e9),
        "snapshot": lambda: any_engine.add_snapshot(READ_LINE, max_hits=10**9, rate_limit=1e9),
        "condition": lambda: any_engine.add_counter(READ_LINE, condition="n >= 0"),
        "counter": lambda: any_engine.add_counter(READ_LINE),
    }[kind]
    if any_engine.core == "settrace" and SETTRACE_WRITES_BACK:
        with pytest.raises(CoreRefused) as refused:
            place()
        assert "pip install bytecode" in str(refused.value) or "tool id" in str(refused.value)
        return
    status = place()
    assert status.state == "installed", status.message
    race(read, increment)
    assert total() == INCREMENTS
    assert any_engine.status(status.id).hits > 0  # the action really ran meanwhile


@pytest.mark.parametrize("kind", ["log", "snapshot", "metric", "counter_if"])
def test_a_host_reading_its_own_locals_after_a_hit_keeps_them(any_engine, kind):
    # Before, the settrace core emptied the dict it had read at the frame's
    # next trace event; the host's own f_locals read in between made CPython
    # write that empty dict back: every local unbound (UnboundLocalError on
    # 3.11, None on 3.12).
    place = {
        "log": lambda: any_engine.add_log(OWN_READ_LINE, "n={n}"),
        "snapshot": lambda: any_engine.add_snapshot(OWN_READ_LINE, max_hits=10),
        "metric": lambda: any_engine.add_metric(OWN_READ_LINE, "n"),
        "counter_if": lambda: any_engine.add_counter(OWN_READ_LINE, condition="n >= 0"),
    }
    if any_engine.core == "settrace" and sys.version_info < (3, 11):
        with pytest.raises(CoreRefused):
            place[kind]()
        return
    placed = place[kind]()
    assert [reads_its_own_locals(n) for n in range(3)] == [(1, 2), (2, 4), (3, 6)]
    assert any_engine.status(placed.id).hits == 3


def test_a_snapshot_leaves_a_traced_callers_locals_bound(any_engine):
    # A caller frame's dict handed back (emptied) by a snapshot would be
    # written back by the settrace core's trampoline at the caller's own
    # next trace event, unbinding its locals.
    if any_engine.core == "settrace" and sys.version_info < (3, 11):
        with pytest.raises(CoreRefused):
            any_engine.add_snapshot(CALLEE_LINE)
        return
    snapshot = any_engine.add_snapshot(CALLEE_LINE, max_hits=10)
    counter = any_engine.add_counter(CALLER_LINE)
    assert [traced_caller(n) for n in range(3)] == [3, 6, 9]
    assert any_engine.status(snapshot.id).hits == 3
    assert any_engine.status(counter.id).hits == 3
    frames = next(e for e in any_engine.drain() if e["type"] == "snapshot")["frames"]
    assert frames[1]["function"] == "traced_caller" and "locals" in frames[1]


def test_settrace_on_plain_code_leaves_other_closures_exact():
    """3.11+: tracing a function without closures harms no closure elsewhere."""
    if sys.version_info < (3, 11):
        pytest.skip("3.10: the settrace core refuses every action (next test)")
    increment, read, total = make_counter()
    with Engine(core="settrace") as eng:
        status = eng.add_log(PLAIN_LINE, "k={k}", max_hits=10**9, rate_limit=1e9)

        def reader() -> None:
            read()
            plain_reader(1)

        race(reader, increment)
        assert total() == INCREMENTS
        assert eng.status(status.id).hits > 0


def test_settrace_refusal_names_the_reason_and_what_to_do():
    with Engine(core="settrace") as eng:
        if sys.version_info >= (3, 13):
            assert eng.add_log(READ_LINE, "n={n}").state == "installed"
            return
        with pytest.raises(CoreRefused) as refused:
            eng.add_counter(READ_LINE)
        message = str(refused.value)
        assert message.startswith(f"{READ_LINE}: the settrace core cannot run this counter")
        if sys.version_info < (3, 11):
            assert "refuses every action" in message
            with pytest.raises(CoreRefused, match="refuses every action"):
                eng.add_counter(PLAIN_LINE)  # even code without closures
        else:
            assert "read has closure variables (n)" in message
            assert eng.add_counter(PLAIN_LINE).state == "installed"
        advice = "pip install bytecode" if sys.version_info < (3, 12) else "free a sys.monitoring"
        assert advice in message and "Python 3.13+" in message
        assert eng.actions() == [] or all(a.location == PLAIN_LINE for a in eng.actions())


def outer_with_closure() -> dict:
    secret_count = 41

    def bump() -> None:
        nonlocal secret_count
        secret_count += 1

    bump()
    return plain_reader(secret_count)


def test_settrace_snapshot_omits_caller_locals_it_cannot_read_safely():
    if not (3, 11) <= sys.version_info < (3, 13):
        pytest.skip("only 3.11 and 3.12 write back after a read")
    with Engine(core="settrace") as eng:
        status = eng.add_snapshot(PLAIN_LINE)
        outer_with_closure()
        [snap] = [e for e in eng.drain() if e["type"] == "snapshot" and e["action"] == status.id]
    top, caller = snap["frames"][0], snap["frames"][1]
    assert "k" in top["locals"]
    assert caller["function"].endswith("outer_with_closure")
    assert "locals" not in caller
    assert "closure variables (secret_count" in caller["locals_omitted"]


def test_status_says_which_core_runs_and_why():
    with Engine() as eng:
        stats = eng.stats()
        assert stats["core"] == DEFAULT_CORE
        if DEFAULT_CORE == "monitoring":
            # No tool id until an action needs one (test_monitoring_tools.py).
            assert stats["core_status"].startswith("monitoring (no tool id held")
            eng.add_counter(READ_LINE)
            status = eng.stats()["core_status"]
            assert status.startswith("monitoring (tool id "), status
            tool = int(status.rsplit(" ", 1)[1].rstrip(")"))
            assert sys.monitoring.get_tool(tool) == "runtime-agent"
        else:
            import bytecode

            assert stats["core_status"] == f"bytecode (bytecode {bytecode.__version__})"
    with Engine(core="settrace") as eng:
        assert eng.core_status == "settrace (asked for)"
    backend = choose_backend(environ={"RUNTIME_AGENT_CORE": "settrace"})
    try:
        assert backend.status == "settrace (RUNTIME_AGENT_CORE=settrace)"
    finally:
        backend.close()


def run_agent(prelude: str) -> dict:
    """A fresh interpreter: ``prelude``, then an Engine; its status and a refusal as JSON."""
    script = textwrap.dedent(prelude) + textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {os.path.dirname(HERE)!r})
        from runtime_agent import CoreRefused, Engine
        from test_cores_readonly import READ_LINE
        engine = Engine()
        try:
            engine.add_log(READ_LINE, "n={{n}}")
            refused = None
        except CoreRefused as exc:
            refused = str(exc)
        print(json.dumps({{"core": engine.core, "status": engine.core_status,
                          "refused": refused}}))
        engine.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_tool_id_taken_falls_back_to_settrace_visibly():
    if sys.version_info < (3, 12):
        pytest.skip("sys.monitoring exists from 3.12")
    found = run_agent(
        """
        import sys
        for tool in range(6):
            sys.monitoring.use_tool_id(tool, f"other-{tool}")
        """
    )
    assert found["core"] == "settrace"
    assert found["status"].startswith("settrace: every sys.monitoring tool id is taken (")
    assert "0 other-0" in found["status"] and "5 other-5" in found["status"]
    if sys.version_info < (3, 13):
        assert "free a sys.monitoring tool id" in found["refused"]
    else:
        assert found["refused"] is None  # 3.13 writes nothing back


def test_bytecode_missing_falls_back_to_settrace_visibly():
    if sys.version_info >= (3, 12):
        pytest.skip("the bytecode core serves 3.10 and 3.11")
    found = run_agent(
        """
        import sys

        class NoBytecode:
            def find_spec(self, name, path=None, target=None):
                if name == "bytecode" or name.startswith("bytecode."):
                    raise ImportError("No module named 'bytecode' (hidden by the test)")
                return None

        sys.meta_path.insert(0, NoBytecode())
        """
    )
    assert found["core"] == "settrace"
    assert found["status"] == "settrace: bytecode is not installed; pip install bytecode"
    assert "pip install bytecode" in found["refused"]
