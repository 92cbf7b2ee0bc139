"""The outbox between drains: small entries for hot log lines, and every lost event counted
on its action as well as engine-wide (issue 17: the outbox held ~600 bytes per pending log
line, enough to fail a library's own bounded-memory test; issue 19: drops reached no one)."""

from __future__ import annotations

import gc
import tracemalloc

from conftest import at, events_of
from rt_targets import shapes
from runtime_agent import Engine


def trade(n: int) -> None:
    svc = shapes.Service()
    for _ in range(n):
        svc.execute_trade(shapes.Request("u42", [1, 2]), 50.0, 300)


def held_per_event(engine: Engine, message: str, n: int = 2_000) -> float:
    """Bytes the outbox holds per pending log event of ``message``."""
    status = engine.add_log(at("trade_flag"), message, rate_limit=10**9)
    trade(3)  # warm: the first hits allocate caches, not events
    engine.drain()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        trade(n)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(events_of(engine, "log", status.id)) == n
    engine.remove(status.id)
    return held / n


def test_a_pending_log_event_costs_a_fraction_of_its_dict() -> None:
    # Before: 561 bytes for a constant message, 585 with one field; now 113 and 217.
    engine = Engine(max_events=10_000, max_events_per_second=10**9, cpu_budget=1.0)
    try:
        assert held_per_event(engine, "hit") < 200
        assert held_per_event(engine, "total={total}") < 300
    finally:
        engine.close()


def test_a_drained_log_event_is_whole() -> None:
    engine = Engine()
    try:
        constant = engine.add_log(at("trade_flag"), "hit {{literal}}")
        fields = engine.add_log(at("trade_flag"), "total={total} user={req.user_id}")
        trade(1)
        events = engine.drain()
        [one] = [e for e in events if e["type"] == "log" and e["action"] == constant.id]
        [two] = [e for e in events if e["type"] == "log" and e["action"] == fields.id]
        assert one["message"] == "hit {literal}"
        assert two["message"] == "total=15000.0 user=u42"
        for event in (one, two):
            assert event["line"] == constant.line
            assert event["file"] == constant.file
            assert event["function"] == "execute_trade"
            assert isinstance(event["ts"], float)
    finally:
        engine.close()


def test_overflow_drops_reach_the_actions_status_and_the_engines_stats() -> None:
    engine = Engine(max_events=5, max_events_per_second=10**9)
    try:
        log = engine.add_log(at("trade_total"), "t={total}", rate_limit=10**9)
        snap = engine.add_snapshot(at("trade_flag"), max_hits=1_000, rate_limit=10**9)
        engine.drain()  # the state events of the placements
        trade(10)  # 20 events into 5 places: the oldest 15 are lost
        stats = engine.stats()
        assert stats["dropped_overflow"] == 15
        lost = engine.status(log.id).dropped + engine.status(snap.id).dropped
        assert lost == 15
        assert engine.status(log.id).dropped >= 7  # the two actions alternate
        left = [e for e in engine.drain() if e["type"] in ("log", "snapshot")]
        assert len(left) == 5
    finally:
        engine.close()


def test_rate_cap_drops_reach_the_actions_status() -> None:
    engine = Engine(max_events=1_000, max_events_per_second=3)
    try:
        log = engine.add_log(at("trade_total"), "t={total}", rate_limit=10**9)
        engine.drain()
        trade(20)
        logs = events_of(engine, "log", log.id)
        dropped = engine.status(log.id).dropped
        assert len(logs) + dropped == 20
        assert dropped > 0  # at most 3 per second, in a loop of microseconds
        assert engine.stats()["dropped_rate"] == dropped
    finally:
        engine.close()
