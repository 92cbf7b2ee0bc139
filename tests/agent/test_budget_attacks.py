"""Resource attacks through the engine (issue 9: Why 3, What to build 3 and 6).

Every attack is a real action placed on a real function
(``rt_targets/costly.py``), which the host then calls with large but
ordinary values. Measured here, per hit: the host's time (``perf_counter``
around the call) and its peak memory (tracemalloc, in a call of its own so
that tracing does not inflate the time). The action must record the budget
failure, the very message the sandbox gives for that expression, instead of
a result; its CPU accounting must show the time the hits took; and an
action paused for cost stays paused, whatever the host does meanwhile,
until ``Engine.resume``.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import DEFAULT_CORE, marked_lines
from rt_targets import costly
from runtime_agent import Engine
from runtime_agent.actions import MAX_CONSECUTIVE_FAILURES
from runtime_agent.budget import CpuBudget
from runtime_agent.engine import MAX_WATCH
from runtime_agent.sandbox import BudgetExceeded, Use, compile_expression
from runtime_agent.state import ActionStatus
from runtime_agent.template import MAX_TEMPLATE_FIELDS

LINE = f"rt_targets/costly.py:{marked_lines(Path(costly.__file__))['handle']}"
FUNCTION = "rt_targets/costly.py:handle"
MANY = 10**6

#: Generous bounds: the budget aims at about half a millisecond and 4 MiB.
PER_HIT_SECONDS = 0.05
PEAK_BYTES = 20 << 20
#: Hits per attack: fewer than the failures in a row that end an action.
HITS = 5
assert HITS + 1 < MAX_CONSECUTIVE_FAILURES

#: What the host hands its function: megabytes of text, bytes, a list and a
#: tuple of a million ints, a Decimal and an int of 100k bits (the largest
#: an expression may build).
HOST: dict[str, Any] = {
    "n": 1,
    "text": "1234 " * 400_000,
    "blob": b"x=1 " * 500_000,
    "items": list(range(1_000_000)),
    "pairs": tuple(range(1_000_000)),
    "price": Decimal("19.99"),
    "big": (1 << 99_990) + 1,
}

EMOJI = "\\U0001F600"  # as written in an expression: one wide character


def repeated(item: str, most: int = 1000) -> str:
    """``len((item, item, ...))``: as many copies as fit in 1000 characters
    (``most`` at most), each kept alive until the end of the evaluation."""
    head, tail = "len((", ",))"
    n = (1000 - len(head) - len(tail) + 1) // (len(item) + 1)
    return head + ",".join([item] * min(n, most)) + tail


#: A condition under 1000 characters like the issue's 979-character one:
#: strings of 999,999 wide characters, 4 MB each, over 350 MB in one hit.
ALLOCATES_350_MB = repeated("'\U0001f600'*999999")
assert ALLOCATES_350_MB.count("*999999") * 4 * 999_999 > 350e6

ATTACKS: dict[str, str] = {
    # Big ints: modular pow (the issue's own), the old guards' largest operands,
    # operands from the host, and chains of each sized operation.
    "modpow-4096-bit": "pow(3, 2**4095, 2**4096 - 1) > 0",
    "modpow-old-largest": "pow(3, 2**16383, 2**16384 - 1) > 0",
    "modpow-host-operands": "pow(3, big, big) > 0",
    "multiply-chain": repeated("(1<<49999)*(3<<49990)"),
    "multiply-host-chain": repeated("(big>>50000)*(big>>50000)"),
    "divide-chain": repeated("(1<<99999)%((1<<50000)-1)"),
    "shift-chain": repeated("(1<<99999)>>1"),
    "int-to-text-chain": repeated("str(1<<13999)"),
    # Building big values, kept alive; displays nested instead of comprehensions.
    "text-repeat-350MB": ALLOCATES_350_MB,
    "bytes-repeat": repeated("b'a'*999999"),
    "list-repeat": repeated("[0]*99999"),
    "nested-display-str": f'len(str([[[[[[["{EMOJI}"*9]*10]*10]*10]*10]*10]*10]))',
    "nested-display-max": repeated("max([[[0]*99]*99]*99)"),
    # str methods and format specs that amplify.
    "join": repeated(f'("{EMOJI}"*999).join("a"*999)'),
    "replace": repeated(f'("a"*999).replace("a","{EMOJI}"*999)'),
    "center": repeated("'a'.center(999999)"),
    "zfill": repeated("'7'.zfill(999999)"),
    "format-width": "f'{1:>999999}' > ''",
    "format-precision": repeated("f'{1.5:.9999f}'"),
    "split": repeated('("ab "*66666).split()', most=6),
    # Encodings that grow their input.
    "encode-xmlcharref": repeated(f"('{EMOJI}'*400000).encode('ascii','xmlcharrefreplace')"),
    "decode-backslash": repeated("(b'\\xff'*400000).decode('ascii','backslashreplace')"),
    "ascii": repeated(f"ascii('{EMOJI}'*99999)"),
    # The host's own large values: read, walked, hashed, converted.
    "host-text-read": "len(text) > 0",
    "host-text-compare": "text == text",
    "host-bytes-read": "blob[0] == 120",
    "host-list-sorted": "sorted(items)[0] == 0",
    "host-list-str": "len(str(items)) > 0",
    "host-tuple-hash": "pairs in {()}",
    # A Decimal or Fraction meeting the host's big int converts or multiplies
    # it first (17 ms for one 100k-bit int into a Decimal).
    "decimal-vs-host-big-int": repeated("price<big", most=10),
    "decimal-eq-host-big-int": repeated("price==big", most=10),
    "decimal-plus-host-big-int": repeated("price+big", most=10),
}


def call_host() -> float:
    """One call of the host function; its duration in seconds."""
    start = time.perf_counter()
    costly.handle(**HOST)
    return time.perf_counter() - start


def hit_times(n: int) -> list[float]:
    return [call_host() for _ in range(n)]


def peak_of_one_hit() -> tuple[int, float]:
    """Peak bytes traced during one call, and its duration (tracing included)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        seconds = call_host()
        return tracemalloc.get_traced_memory()[1], seconds
    finally:
        tracemalloc.stop()


def budget_failure(eng: Engine, source: str, use: Use) -> str:
    """The sandbox's own BudgetExceeded message for ``source`` over the host's
    arguments, evaluated on its own: what the action must record."""
    expr = compile_expression(source, redactor=eng.redactor, use=use)
    with pytest.raises(BudgetExceeded) as info:
        expr.evaluate(dict(HOST), vars(costly))
    return str(info.value)


def assert_bounded(times: list[float], peak: int) -> None:
    # The median, not the worst: an attack costs every hit it reaches, while
    # one preempted call on a loaded machine must not fail the suite.
    typical = sorted(times)[len(times) // 2]
    assert typical < PER_HIT_SECONDS, f"hits held the host {typical * 1000:.1f} ms"
    assert peak < PEAK_BYTES, f"a hit allocated {peak / 1e6:.1f} MB at its peak"


def assert_cpu_accounted(status: ActionStatus, host_seconds: float) -> None:
    """Every hit is timed: the action's CPU is most of the host's time in it,
    never more (the hook runs inside the host's call)."""
    assert status.cpu_seconds > 0.0
    assert status.cpu_seconds <= host_seconds + 1e-6
    assert status.cpu_seconds >= 0.3 * host_seconds, (status.cpu_seconds, host_seconds)


def events_of(eng: Engine, action_id: str) -> list[dict[str, Any]]:
    eng.flush()
    return [e for e in eng.drain() if e.get("action") == action_id and e["type"] != "state"]


# -- every attack, as a condition -------------------------------------------------


@pytest.mark.parametrize("condition", [pytest.param(c, id=name) for name, c in ATTACKS.items()])
def test_an_attack_fails_on_the_budget_within_bounds(condition: str) -> None:
    with Engine(core=DEFAULT_CORE, cpu_budget=1.0) as eng:
        expected = budget_failure(eng, condition, "condition")
        status = eng.add_counter(LINE, condition=condition, max_hits=MANY)
        times = hit_times(HITS)
        peak, traced = peak_of_one_hit()
        after = eng.status(status.id)
        assert events_of(eng, status.id) == []  # no count went out
    assert_bounded(times, peak)
    assert after.state == "installed" and after.hits == 0
    assert after.message == f"condition failed: {expected}"
    assert_cpu_accounted(after, sum(times) + traced)


# -- every action kind over an expensive expression --------------------------------

#: The issue's own attack, in every place an expression can go.
ATTACK = ATTACKS["modpow-4096-bit"]
CONDITION_KINDS = ("counter", "metric-condition", "log-condition", "snapshot-condition", "duration")
KINDS = (*CONDITION_KINDS, "metric", "log-fields", "snapshot-watches")


def place(eng: Engine, kind: str, x: str) -> ActionStatus:
    """``x`` in the part of a ``kind`` action that evaluates expressions; the
    log and the snapshot take as many copies as they allow (one budget per hit)."""
    often = {"max_hits": MANY}
    shown = {"max_hits": MANY, "rate_limit": 1e9}
    if kind == "counter":
        return eng.add_counter(LINE, condition=x, **often)
    if kind == "metric-condition":
        return eng.add_metric(LINE, "n", condition=x, **often)
    if kind == "log-condition":
        return eng.add_log(LINE, "n={n}", condition=x, **shown)
    if kind == "snapshot-condition":
        return eng.add_snapshot(LINE, condition=x, **shown)
    if kind == "duration":
        return eng.add_duration(FUNCTION, condition=x, **often)
    if kind == "metric":
        return eng.add_metric(LINE, f"n if {x} else 0", **often)
    if kind == "log-fields":
        return eng.add_log(LINE, " ".join(["{" + x + "}"] * MAX_TEMPLATE_FIELDS), **shown)
    if kind == "snapshot-watches":
        return eng.add_snapshot(LINE, watch=[f"{x} or {i}" for i in range(MAX_WATCH)], **shown)
    raise AssertionError(kind)


def spent(source: str) -> str:
    """What a later expression of a hit reads once an earlier one spent the budget."""
    return f"{source}: not evaluated, this hit's earlier expressions spent its budget"


@pytest.mark.parametrize("kind", KINDS)
def test_every_action_kind_records_the_budget_failure_not_a_result(kind: str) -> None:
    with Engine(core=DEFAULT_CORE, cpu_budget=1.0) as eng:
        status = place(eng, kind, ATTACK)
        times = hit_times(HITS)
        peak, traced = peak_of_one_hit()
        after = eng.status(status.id)
        events = events_of(eng, status.id)
        if kind in CONDITION_KINDS:
            expected = budget_failure(eng, ATTACK, "condition")
        elif kind == "metric":
            expected = budget_failure(eng, f"n if {ATTACK} else 0", "metric")
        elif kind == "log-fields":
            expected = budget_failure(eng, ATTACK, "value")
        else:
            expected = budget_failure(eng, f"{ATTACK} or 0", "value")
    assert_bounded(times, peak)
    assert_cpu_accounted(after, sum(times) + traced)
    assert after.state == "installed"
    if kind in CONDITION_KINDS:
        assert after.hits == 0
        assert after.message == f"condition failed: {expected}"
        assert events == []
    elif kind == "metric":
        assert after.hits == HITS + 1
        assert after.message == f"expression failed: {expected}"
        assert events == []  # no value was aggregated
    elif kind == "log-fields":
        assert [e["type"] for e in events] == ["log"] * (HITS + 1)
        for event in events:
            fields = str(event["message"])
            assert fields.startswith(f"<{expected}> <{spent(ATTACK)}")
            assert fields.count(spent(ATTACK)) == MAX_TEMPLATE_FIELDS - 1
    else:
        assert [e["type"] for e in events] == ["snapshot"] * (HITS + 1)
        for event in events:
            watched = event["watch"]
            assert len(watched) == MAX_WATCH
            assert watched[f"{ATTACK} or 0"] == {"type": "error", "notCaptured": expected}
            for i in range(1, MAX_WATCH):
                later = watched[f"{ATTACK} or {i}"]
                assert later["type"] == "error"
                assert later["notCaptured"].startswith(spent(f"{ATTACK} or {i}"))


# -- paused for cost: stays paused until resumed ---------------------------------

#: Costly but within the budget: it succeeds, in about half a millisecond.
COSTLY = "len(str(1 << 12000)) > 0"

PAUSE_KINDS = {
    "counter": lambda eng: eng.add_counter(LINE, condition=COSTLY, max_hits=MANY),
    "metric": lambda eng: eng.add_metric(LINE, f"n if {COSTLY} else 0", max_hits=MANY),
    "log": lambda eng: eng.add_log(LINE, "{" + COSTLY + "}", max_hits=MANY, rate_limit=1e9),
    "snapshot": lambda eng: eng.add_snapshot(LINE, watch=[COSTLY], max_hits=MANY, rate_limit=1e9),
    "duration": lambda eng: eng.add_duration(FUNCTION, condition=COSTLY, max_hits=MANY),
}


@pytest.mark.parametrize("kind", sorted(PAUSE_KINDS))
def test_an_action_paused_for_cost_stays_paused_until_resumed(kind: str) -> None:
    with Engine(core=DEFAULT_CORE) as eng:
        # 1 ms of hook time per 0.1 s window: a few costly hits pause it.
        eng._budget = CpuBudget(fraction=0.01, window=0.1)
        status = PAUSE_KINDS[kind](eng)
        costly_times = []
        for _ in range(200):
            costly_times.append(call_host())
            if eng.status(status.id).state != "installed":
                break
        paused = eng.status(status.id)
        assert paused.state == "paused", paused.message
        assert "stays paused" in paused.message and "Engine.resume" in paused.message
        assert paused.cpu_seconds > 0.001  # what it cost is what paused it
        events = events_of(eng, status.id)

        idle_times = hit_times(200)
        time.sleep(0.25)  # the window empties; the housekeeping thread ticks
        idle_times += hit_times(200)
        still = eng.status(status.id)
        # The costly expression never ran again: no hit, no time, no event.
        assert still.state == "paused" and still.message == paused.message
        assert still.hits == paused.hits
        assert still.cpu_seconds == paused.cpu_seconds
        assert events_of(eng, status.id) == []
        assert statistics.median(idle_times) < statistics.median(costly_times) / 4

        resumed = eng.resume(status.id)
        assert resumed.state == "installed" and resumed.message == "resumed by a caller"
        call_host()
        again = eng.status(status.id)
        assert again.hits == paused.hits + 1
        assert again.cpu_seconds > paused.cpu_seconds
    assert events or kind in ("counter", "metric", "duration")
