"""The CPU budget's setting: ``Engine(cpu_budget=...)`` and ``RUNTIME_AGENT_CPU_BUDGET``.

Any value used to be accepted (issue 19): 1e6 switched the budget off in
silence. A bad argument is the caller's mistake and raises before any core is
taken; a bad variable must not stop the agent, so it falls back to the
default and says so on the ``runtime_agent.budget`` logger.
"""

from __future__ import annotations

import logging
import sys

import pytest

from conftest import DEFAULT_CORE
from runtime_agent import AgentError, Engine
from runtime_agent.budget import DEFAULT_FRACTION, DEFAULT_WINDOW, ENV_VAR, fraction_from_env


def tool_ids() -> list[str | None]:
    """Who holds each sys.monitoring tool id (nothing to hold before 3.12)."""
    monitoring = getattr(sys, "monitoring", None)
    return [monitoring.get_tool(i) for i in range(6)] if monitoring is not None else []


@pytest.mark.parametrize(
    "value", [0, 0.0, -0.5, 1.0000001, 2, 1e6, float("nan"), float("inf"), True, "2%", [0.1]]
)
def test_engine_refuses_a_budget_outside_0_to_1_before_taking_a_core(value: object) -> None:
    before = tool_ids()
    with pytest.raises(AgentError, match=r"cpu_budget must be .* above 0 and at most 1") as exc:
        Engine(core=DEFAULT_CORE, cpu_budget=value)  # type: ignore[arg-type]
    assert repr(value) in str(exc.value)
    assert tool_ids() == before


@pytest.mark.parametrize("value", [1e-4, 0.02, 0.5, 1, 1.0])
def test_engine_takes_a_budget_in_range(value: float) -> None:
    with Engine(core=DEFAULT_CORE, cpu_budget=value) as engine:
        assert engine.stats()["cpu_budget_seconds"] == pytest.approx(value * DEFAULT_WINDOW)


@pytest.mark.parametrize(
    ("text", "fraction"), [("5%", 0.05), (" 0.1 ", 0.1), ("100%", 1.0), ("", DEFAULT_FRACTION)]
)
def test_the_variable_is_read_as_a_share_of_one_core(text: str, fraction: float) -> None:
    assert fraction_from_env({ENV_VAR: text}) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["lots", "150%", "0", "-1", "nan", "1e6"])
def test_a_bad_variable_falls_back_to_the_default_and_says_so(
    text: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, text)
    with caplog.at_level(logging.WARNING, logger="runtime_agent.budget"):
        with Engine(core=DEFAULT_CORE) as engine:
            seconds = engine.stats()["cpu_budget_seconds"]
    assert seconds == pytest.approx(DEFAULT_FRACTION * DEFAULT_WINDOW)
    [record] = [r for r in caplog.records if r.name == "runtime_agent.budget"]
    assert ENV_VAR in record.getMessage() and repr(text) in record.getMessage()
    assert "using the default 2%" in record.getMessage()
