"""Per-call cost of the agent's actions, measured side by side in one run.

Usage: python benchmarks/bench_engine.py [--quick]

For this interpreter and its default core it prints the time a call gains from:
(a) an uninstrumented function in a module that carries actions,
(b) an action whose condition is false, (c) a counter hit, (d) a log hit with
six template fields, also as a ratio to the same six fields logged by hand with
``logging.info`` into a StreamHandler, (e) a snapshot of a frame with ten
locals, and (f) a counter whose condition is costly but within the
evaluation budget (a 12,000-bit int to decimal text, about 0.4 ms of work).
Each figure is the best of several repeats (the machine is shared), as the
difference to the same call with no action, in the same run.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_target as t
from runtime_agent import Engine
from runtime_agent.cost import NS_PER_STEP, WORK_BUDGET

#: Costly but allowed: converting a 12,000-bit int to text is most of the
#: work budget (tests/agent/test_budget_attacks.py pauses actions with it).
HEAVY_CONDITION = "len(str(1 << 12000)) > 0"


def line_of(func: Callable[..., object]) -> int:
    """The ``# ACTION LINE`` of a function in bench_target."""
    lines, start = __import__("inspect").getsourcelines(func)
    for offset, text in enumerate(lines):
        if "ACTION LINE" in text:
            return start + offset
    raise LookupError(func.__name__)


def best(stmt: Callable[[], object], number: int, repeat: int) -> float:
    """Best seconds per call over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (50_000, 7)
    engine = Engine(max_events=1_000_000, max_events_per_second=10**9, cpu_budget=1.0)
    where = f"bench_target.py:{line_of(t.carrier)}"
    order = t.Order("u42", "ACME")

    def measure(name: str, stmt: Callable[[], object], n: int = number) -> float:
        """Best seconds per call; the events it produced are drained (off the clock)."""
        value = best(stmt, n, repeat)
        engine.drain()
        return value

    # (a) A function that carries no action, in a module that does; (b) an
    # action whose condition is false. Baselines first, with no action at all.
    base_untouched = measure("untouched_before", lambda: t.untouched(1, 2))
    base_carrier = measure("carrier_base", lambda: t.carrier(1, 2))
    cond = engine.add_log(where, "never {a}", condition="a > 1000000")
    after_untouched = measure("untouched_after", lambda: t.untouched(1, 2))
    with_false = measure("condition_false", lambda: t.carrier(1, 2))
    engine.remove(cond.id)

    # (c) A counter hit.
    counter = engine.add_counter(where, max_hits=10**9)
    with_counter = measure("counter", lambda: t.carrier(1, 2))
    engine.remove(counter.id)

    # (d) A log hit with six fields, and the same six fields logged by hand.
    six = f"bench_target.py:{line_of(t.six_fields)}"
    base_six = measure("six_base", lambda: t.six_fields(order, 3, 10.5, 0.25, "XNAS"))
    log = engine.add_log(
        six,
        "user={order.user_id} symbol={order.symbol} qty={qty} price={price} fee={fee} "
        "venue={venue}",
        max_hits=10**9,
        rate_limit=10**9,
    )
    with_log = measure("log6", lambda: t.six_fields(order, 3, 10.5, 0.25, "XNAS"))
    engine.remove(log.id)
    logger = logging.getLogger("bench.handwritten")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    by_hand = measure(
        "log6_by_hand", lambda: t.six_fields_logged(logger, order, 3, 10.5, 0.25, "XNAS")
    )

    # (e) A snapshot of a frame with ten locals.
    ten = f"bench_target.py:{line_of(t.ten_locals)}"
    base_ten = measure("ten_base", lambda: t.ten_locals(3), n=max(number // 10, 500))
    snap = engine.add_snapshot(ten, max_hits=10**9, rate_limit=10**9)
    with_snap = measure("snapshot", lambda: t.ten_locals(3), n=max(number // 10, 500))
    engine.remove(snap.id)

    # (f) A condition that spends most of one evaluation's budget and holds.
    heavy = engine.add_counter(where, condition=HEAVY_CONDITION, max_hits=10**9)
    # Few calls: at 100% of a core for the benchmark, more would pause it.
    with_heavy = measure("heavy_condition", lambda: t.carrier(1, 2), n=max(number // 100, 100))
    ran = engine.status(heavy.id)
    assert ran.state == "installed" and ran.hits > 0, ran.message  # held, never paused
    engine.remove(heavy.id)
    engine.close()

    ns = 1e9
    a = (after_untouched - base_untouched) * ns
    b = (with_false - base_carrier) * ns
    c = (with_counter - base_carrier) * ns
    d = (with_log - base_six) * ns
    hand = (by_hand - base_six) * ns
    e = (with_snap - base_ten) * 1e6
    f = (with_heavy - base_carrier) * 1e6
    version = sys.version.split()[0]
    print(f"Python {version}, core {engine.core}  (best of {repeat} x {number} calls)")
    print(
        f"  (a) uninstrumented function, module carries actions: {a:+8.1f} ns/call"
        "  (target: unmeasurable)"
    )
    print(
        f"  (b) action with a false condition:                   {b:+8.1f} ns/call"
        "  (target on 3.12+: <= 300)"
    )
    print(
        f"  (c) counter hit:                                     {c:+8.1f} ns/call"
        "  (target on 3.12+: <= 300)"
    )
    print(f"  (d) log hit, 6 fields:                               {d:+8.1f} ns/call")
    print(f"      same 6 fields by hand, logging.info to a stream: {hand:+8.1f} ns/call")
    print(
        f"      ratio (d) / by hand:                             {d / hand:8.2f}"
        "  (target on 3.12+: <= 0.30)"
    )
    print(
        f"  (e) snapshot, frame with 10 locals:                  {e:+8.2f} us/call"
        "  (target on 3.12+: <= 50)"
    )
    print(
        f"  (f) counter, costly condition within the budget:     {f:+8.2f} us/call"
        f"  (budget: about {WORK_BUDGET * NS_PER_STEP / 1000:g} us of work)"
    )


if __name__ == "__main__":
    main()
