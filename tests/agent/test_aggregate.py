"""The metric window: exact count/min/max/mean, a bounded reservoir for the
percentiles, and slots reused from one window to the next (issue 17: a hot line
allocates nothing once its reservoir exists)."""

from __future__ import annotations

import tracemalloc

from runtime_agent.aggregate import RESERVOIR_SIZE, Aggregate


def test_a_window_reports_exact_figures_and_then_starts_over() -> None:
    agg = Aggregate()
    for value in (5.0, 1.0, 3.0, 2.0, 4.0):
        agg.add(value)
    assert agg.take() == {
        "count": 5,
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
        "p50": 3.0,
        "p90": 5.0,
        "p99": 5.0,
    }
    assert agg.take() is None
    agg.add(7.0)
    # The slots of the first window are reused, never read again.
    assert agg.take() == {
        "count": 1,
        "min": 7.0,
        "max": 7.0,
        "mean": 7.0,
        "p50": 7.0,
        "p90": 7.0,
        "p99": 7.0,
    }


def test_the_reservoir_stays_bounded_and_uniform_past_its_size() -> None:
    agg = Aggregate()
    n = RESERVOIR_SIZE * 20
    for i in range(n):
        agg.add(float(i))
    assert len(agg.sample) == RESERVOIR_SIZE
    figures = agg.take()
    assert figures is not None
    assert figures["count"] == n and figures["min"] == 0.0 and figures["max"] == n - 1
    # A uniform sample of 0..n-1: its median is near n/2, not the first values kept.
    assert 0.4 * n < figures["p50"] < 0.6 * n


def test_a_hot_metric_allocates_nothing_after_its_first_window() -> None:
    agg = Aggregate()
    for i in range(RESERVOIR_SIZE * 2):
        agg.add(i / 7)
    agg.take()
    tracemalloc.start()
    try:
        for i in range(RESERVOIR_SIZE * 10):
            agg.add(i / 7)
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Boxed floats in a list would hold ~24 KB; what is left is the running figures.
    assert retained < 1024, retained
