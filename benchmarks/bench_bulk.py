"""Bulk placement: counters on every executable line of one module, placed and removed.

Usage: python benchmarks/bench_bulk.py [--actions N] [--core CORE] [--no-before]

A module of ``N`` (default 1,000) executable lines is generated in a temporary
directory: functions of straight-line code, a loop, a branch and a closure
whose body is a line of its own (nested code, which the bytecode core rebuilds
through its parent). A counter goes on every line, first one action at a time
(``before``: one ``add_counter`` and later one ``remove`` per action), then all
in one ``Engine.batch()`` (``after``), in the same run. After each placement
every function runs once and every counter must have fired; after each removal
every function must run its original code object again. The figures are wall
seconds for the placement and for the removal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import CodeType, ModuleType

from runtime_agent import Engine

#: One function of the generated module; ``{i}`` numbers it. Every line but
#: the ``def`` runs on one call (the ``def`` line belongs to the module's code).
FUNCTION = """\
def f{i}(x):
    a = x + {i}
    b = a * 2
    for k in range(2):
        b += k
    c = [b, a]
    if b > -1:
        c.append(1)
    def inner():
        return a + b
    d = inner() + len(c)
    return d

"""


def generate(directory: Path, actions: int) -> tuple[str, list[int]]:
    """Write the module; returns its name and the lines to count (``actions`` of them)."""
    per_function = sum(1 for line in FUNCTION.splitlines() if line.startswith(" "))
    functions = -(-actions // per_function)
    text = "".join(FUNCTION.format(i=i) for i in range(functions))
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(" ")]
    name = f"bulk_target_{functions}"
    (directory / f"{name}.py").write_text(text)
    return name, lines[:actions]


def functions_of(module: ModuleType) -> Iterator[Callable[[int], int]]:
    for name, value in vars(module).items():
        if name.startswith("f") and callable(value):
            yield value


def run_all(module: ModuleType) -> int:
    return sum(f(1) for f in functions_of(module))


def one_round(
    engine: Engine, module: ModuleType, lines: list[int], batched: bool
) -> tuple[float, float]:
    """Place a counter on every line, check they fire, remove them; (place s, remove s)."""
    originals: dict[str, CodeType] = {f.__name__: f.__code__ for f in functions_of(module)}
    expected = run_all(module)
    batch: Callable[[], AbstractContextManager[object]] = engine.batch if batched else nullcontext
    where = module.__name__
    started = time.perf_counter()
    with batch():
        ids = [engine.add_counter(f"{where}:{line}").id for line in lines]
    placed = time.perf_counter() - started
    states = {s.state for s in engine.actions()}
    if states != {"installed"}:
        raise SystemExit(f"not every action installed: {states}")
    if run_all(module) != expected:
        raise SystemExit("the instrumented module computed something else")
    cold = [s.line for s in engine.actions() if s.hits < 1]
    if cold:
        raise SystemExit(f"{len(cold)} counters did not fire, e.g. at lines {cold[:5]}")
    started = time.perf_counter()
    with batch():
        for action_id in ids:
            engine.remove(action_id)
    removed = time.perf_counter() - started
    changed = [f.__name__ for f in functions_of(module) if f.__code__ is not originals[f.__name__]]
    if changed:
        raise SystemExit(f"{len(changed)} functions do not run their original code: {changed[:3]}")
    return placed, removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1_000, help="counters to place")
    parser.add_argument("--core", default=None, help="RUNTIME_AGENT_CORE to use")
    parser.add_argument(
        "--no-before", action="store_true", help="skip the one-at-a-time round (slow)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        name, lines = generate(Path(tmp), args.actions)
        module = importlib.import_module(name)
        engine = Engine(core=args.core, max_events=100_000, cpu_budget=1.0)
        try:
            version = ".".join(map(str, sys.version_info[:2]))
            print(f"Python {version}, core {engine.core_status}, {len(lines)} counters")
            rounds = [("after (batched)", True)]
            if not args.no_before:
                rounds.insert(0, ("before (one at a time)", False))
            for label, batched in rounds:
                placed, removed = one_round(engine, module, lines, batched)
                print(f"  {label:24} place {placed:8.2f} s   remove {removed:8.2f} s")
        finally:
            engine.close()


if __name__ == "__main__":
    main()
