"""The agent keeps its own time while the host's tests freeze, jump or travel.

Under freezegun every action with a 7-day TTL expired after one call (issue
19): the agent read ``time.monotonic`` through the module. Here each way a
test suite moves time (``unittest.mock.patch`` of ``time.monotonic``,
``time.time`` and ``time.perf_counter`` to a frozen or a jumping value,
freezegun's ``freeze_time`` with 8-day ticks, time-machine's ``travel`` with
8-day shifts) runs for a second of real time while actions fire: TTLs,
per-action and engine-wide rate windows, metric flushes, timestamps, hub
deadlines and the CPU budget must all follow real time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import freezegun
import pytest
import time_machine

from conftest import DEFAULT_CORE, HERE, marked_lines
from rt_targets import clockwork
from runtime_agent import Engine, clock
from runtime_agent.channel import place_from_spec

LINES = marked_lines(HERE / "rt_targets" / "clockwork.py")
WEEK = 7 * 24 * 3600.0
EIGHT_DAYS = dt.timedelta(days=8)
#: The real time each scenario runs for (at least): past the 1 s TTL, over two rate windows.
STEPS, STEP = 22, 0.05


def at(name: str) -> str:
    return f"rt_targets/clockwork.py:{LINES[name]}"


@contextmanager
def mock_frozen() -> Iterator[Callable[[], None]]:
    with (
        mock.patch("time.monotonic", return_value=1000.0),
        mock.patch("time.time", return_value=0.0),
        mock.patch("time.perf_counter", return_value=5.0),
    ):
        yield lambda: None


@contextmanager
def mock_jumping() -> Iterator[Callable[[], None]]:
    values = itertools.cycle([0.0, 1e9, 2e9])  # every read a different second, or days away

    def fake() -> float:
        return next(values)

    with (
        mock.patch("time.monotonic", fake),
        mock.patch("time.time", fake),
        mock.patch("time.perf_counter", fake),
    ):
        yield lambda: None


@contextmanager
def freezegun_frozen() -> Iterator[Callable[[], None]]:
    with freezegun.freeze_time("2020-01-01") as frozen:
        yield lambda: frozen.tick(EIGHT_DAYS)


@contextmanager
def time_machine_travel() -> Iterator[Callable[[], None]]:
    destination = dt.datetime(1985, 10, 26, tzinfo=dt.timezone.utc)
    with time_machine.travel(destination, tick=False) as traveller:
        assert time.time() == destination.timestamp()  # it does move time.time
        yield lambda: traveller.shift(EIGHT_DAYS)


SCENARIOS: dict[str, Callable[[], Any]] = {
    "mock-frozen": mock_frozen,
    "mock-jumping": mock_jumping,
    "freezegun": freezegun_frozen,
    "time-machine": time_machine_travel,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clock_reads_real_time_while_the_host_moves_it(scenario: str) -> None:
    before_wall, before_mono, before_perf = time.time(), time.monotonic(), time.perf_counter()
    with SCENARIOS[scenario]() as jump:
        start_mono, start_perf = clock.monotonic(), clock.perf()
        jump()
        time.sleep(0.05)
        wall, mono, perf = clock.wall(), clock.monotonic(), clock.perf()
    after_wall = time.time()
    assert before_wall - 0.01 <= wall <= after_wall + 0.01
    assert before_mono <= start_mono and mono - start_mono >= 0.05
    assert before_perf <= start_perf and perf - start_perf >= 0.05
    assert abs(clock.wall() - time.time()) < 0.01


def test_wall_keeps_its_offset_while_time_machine_travels() -> None:
    assert not clock._travelling()
    with time_machine.travel(dt.datetime(1985, 10, 26, tzinfo=dt.timezone.utc), tick=False):
        assert clock._travelling()
        # Past the resync interval: wall must not take the travelled clock's offset.
        with mock.patch.object(clock, "RESYNC_SECONDS", 0.0):
            assert abs(clock.wall() - time_machine.escape_hatch.time.time()) < 0.01
    assert not clock._travelling()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ttls_rates_flushes_and_timestamps_follow_real_time(scenario: str) -> None:
    before = time.time()
    with Engine(
        core=DEFAULT_CORE, cpu_budget=1.0, metrics_interval=0.3, max_events_per_second=20
    ) as engine:
        short_counter = engine.add_counter(at("work_total"), ttl_seconds=1.0).id
        short_log = engine.add_log(at("work_total"), "short", ttl_seconds=1.0, rate_limit=1).id
        week_counter = engine.add_counter(at("work_more"), ttl_seconds=WEEK).id
        week_log = engine.add_log(at("work_more"), "slow {n}", ttl_seconds=WEEK, rate_limit=3).id
        capped = engine.add_log(at("work_more"), "capped", ttl_seconds=WEEK, rate_limit=10**6).id
        calls = 0
        first = clock.monotonic()
        with SCENARIOS[scenario]() as jump:
            for step in range(STEPS):
                if step in (5, 15):
                    jump()
                for i in range(3):
                    clockwork.work(i)
                    calls += 1
                time.sleep(STEP)
            states = {a: engine.status(a).state for a in (short_counter, short_log)}
            week = {a: engine.status(a) for a in (week_counter, week_log, capped)}
            events = engine.drain()
            stats = engine.stats()
        after, last = time.time(), clock.monotonic()
    windows = int(last) - int(first) + 1  # the rate windows (whole seconds) the loop met
    assert states == {short_counter: "expired", short_log: "expired"}
    for status in week.values():
        assert status.state == "installed", status.message
        assert status.hits == calls  # every call counted, none expired or paused
    logs = [e for e in events if e["type"] == "log"]
    slow = [e for e in logs if e["action"] == week_log]
    # At most 3 a second; more than one window's worth, as a second passed.
    assert 4 <= len(slow) <= 3 * windows
    # The engine-wide cap of 20 a second, over every window the loop met.
    assert 20 < len(logs) <= 20 * windows
    assert stats["dropped_rate"] > 0
    flushed = [e for e in events if e["type"] == "metric" and e["action"] == week_counter]
    assert flushed, "the housekeeping thread flushed no metric in a second"
    assert all(before - 0.01 <= e["ts"] <= after + 0.01 for e in events)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hub_deadlines_use_real_time(scenario: str) -> None:
    expires_at = time.time() + 600
    with Engine(core=DEFAULT_CORE) as engine:
        with SCENARIOS[scenario]() as jump:
            jump()
            spec = {"kind": "counter", "location": at("work_total"), "expires_at": expires_at}
            place_from_spec(engine, "from-hub", spec)
            remaining = engine.status("from-hub").expires_in
    assert 590 <= remaining <= 600


@pytest.mark.parametrize("scenario", ["mock-frozen", "freezegun"])
def test_the_cpu_budget_times_hooks_on_real_time(scenario: str) -> None:
    # 0.05% of a core over the 10 s window: 5 ms of snapshots, a few dozen hits.
    with Engine(core=DEFAULT_CORE, cpu_budget=0.0005) as engine:
        costly = engine.add_snapshot(
            at("work_total"), watch=["n * 3"], max_hits=10**6, rate_limit=10**6
        ).id
        with SCENARIOS[scenario]():
            for _ in range(300):
                clockwork.work(1)
                if engine.status(costly).state == "paused":
                    break
                time.sleep(0.002)
            status = engine.status(costly)
    assert status.state == "paused", f"{status.hits} hits, {status.cpu_seconds} s"
    assert 0 < status.cpu_seconds < 1.0
