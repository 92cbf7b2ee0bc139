"""Fixtures for the agent tests: an engine per test, and target line lookup."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_agent import Engine

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

_MARK = re.compile(r"#\s*L:(\w+)")


def marked_lines(path: Path) -> dict[str, int]:
    """``# L:name`` markers of a file, by name."""
    found: dict[str, int] = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = _MARK.search(text)
        if match:
            found[match.group(1)] = number
    return found


SHAPES = HERE / "rt_targets" / "shapes.py"
LINES = marked_lines(SHAPES)


def at(name: str) -> str:
    """A location in rt_targets/shapes.py by marker, as an assistant would write it."""
    return f"rt_targets/shapes.py:{LINES[name]}"


DEFAULT_CORE = "monitoring" if sys.version_info >= (3, 12) else "bytecode"


@pytest.fixture(params=[DEFAULT_CORE, "settrace"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on this interpreter's default core, and on the settrace fallback."""
    if request.param == "settrace" and sys.version_info < (3, 11):
        pytest.skip("the settrace core refuses every action on 3.10 (test_cores_readonly.py)")
    eng = Engine(core=request.param)
    try:
        yield eng
    finally:
        eng.close()


#: The settrace core's gap on 3.11 and 3.12 (backends/settrace.py): CPython
#: writes a frame's locals dict back after every trace call that follows a
#: read of it, so the agent can neither empty nor restore that dict there; it
#: keeps what the agent's read put in it until the frame ends or is read again.
SETTRACE_LOCALS_GAP = "the settrace core cannot hand a frame's locals dict back before 3.13"


@pytest.fixture
def settrace_locals_gap(request: pytest.FixtureRequest, engine: Engine) -> None:
    """Marks the test a strict xfail on the settrace core before 3.13."""
    if engine.core == "settrace" and sys.version_info < (3, 13):
        request.applymarker(pytest.mark.xfail(strict=True, reason=SETTRACE_LOCALS_GAP))


def refuses_closures(engine: Engine) -> bool:
    """Whether the engine's core refuses actions on code with closure variables:
    settrace before 3.13, whose trace trampoline would write them back."""
    return engine.core == "settrace" and sys.version_info < (3, 13)


def events_of(engine: Engine, kind: str, action_id: str | None = None) -> list[dict]:
    """Drained events of one type (and action)."""
    return [
        e
        for e in engine.drain()
        if e["type"] == kind and (action_id is None or e["action"] == action_id)
    ]
