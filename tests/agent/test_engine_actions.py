"""Action semantics: templates, conditions, limits, expiry, rate limits, removal, errors."""

from __future__ import annotations

import json
import logging
import time

import pytest

from conftest import LINES, at, events_of
from rt_targets import shapes
from runtime_agent import ActionNotFound, AgentError, ExpressionError


def trade(n: int = 1, price: float = 50.0, qty: int = 300) -> None:
    svc = shapes.Service()
    for _ in range(n):
        svc.execute_trade(shapes.Request("u42", [1, 2]), price, qty)


def test_log_renders_fields_only_when_condition_holds(engine):
    status = engine.add_log(
        at("trade_flag"), "total={total} user={req.user_id} qty={qty}", condition="total > 10000"
    )
    trade(price=10.0, qty=10)  # total 100: condition false
    trade(price=50.0, qty=300)  # total 15000
    logs = events_of(engine, "log", status.id)
    assert [e["message"] for e in logs] == ["total=15000.0 user=u42 qty=300"]
    assert logs[0]["line"] == LINES["trade_flag"]
    assert engine.status(status.id).hits == 1


def test_events_are_json_serialisable(engine):
    engine.add_log(at("trade_flag"), "t={total}")
    engine.add_snapshot(at("trade_return"), watch=["req.items[0]", "high_value"])
    engine.add_metric(at("trade_flag"), "total")
    engine.add_counter(at("trade_total"))
    trade(3)
    engine.flush()
    events = engine.drain()
    assert {e["type"] for e in events} >= {"log", "snapshot", "metric", "state"}
    json.dumps(events)


def test_max_hits_exhausts_and_stops_recording(engine):
    status = engine.add_log(at("trade_total"), "hit", max_hits=3)
    trade(10)
    assert len(events_of(engine, "log", status.id)) == 3
    now = engine.status(status.id)
    assert now.state == "exhausted"
    assert now.hits == 3
    assert "max_hits=3" in now.message


def test_exhaustion_emits_state_event_after_the_hits(engine):
    status = engine.add_log(at("trade_total"), "hit", max_hits=2)
    trade(5)
    mine = [e for e in engine.drain() if e["action"] == status.id]
    kinds = [(e["type"], e.get("state")) for e in mine]
    assert kinds == [("state", "installed"), ("log", None), ("log", None), ("state", "exhausted")]


def test_snapshot_defaults_to_one_hit(engine):
    status = engine.add_snapshot(at("trade_flag"))
    assert status.max_hits == 1
    trade(4)
    assert len(events_of(engine, "snapshot", status.id)) == 1


def test_snapshot_contents(engine):
    status = engine.add_snapshot(at("trade_return"), watch=["req.user_id", "total * 2"])
    trade(1)
    [snap] = events_of(engine, "snapshot", status.id)
    assert snap["function"].endswith("execute_trade")
    assert snap["locals"]["high_value"]["value"] is True
    assert snap["watch"]["req.user_id"]["value"] == "u42"
    assert snap["watch"]["total * 2"]["value"] == 30000.0
    assert snap["frames"][0]["line"] == LINES["trade_return"]
    assert snap["frames"][1]["function"] == "trade"
    assert len(snap["frames"]) <= 20
    assert snap["thread"]["name"] == "MainThread"


def test_ttl_expires_the_action(engine):
    status = engine.add_log(at("trade_total"), "hit", ttl_seconds=0.2)
    trade(1)
    time.sleep(0.5)
    trade(1)
    now = engine.status(status.id)
    assert now.state == "expired"
    assert now.hits == 1
    assert "ttl_seconds=0.2" in now.message


def test_rate_limit_drops_and_counts_excess(engine):
    status = engine.add_log(at("trade_total"), "hit", rate_limit=5)
    trade(40)
    logs = events_of(engine, "log", status.id)
    now = engine.status(status.id)
    assert now.hits == 40
    assert len(logs) + now.dropped == 40
    assert 5 <= len(logs) <= 10  # the run may straddle one second boundary


def test_remove_restores_the_code_and_stops_hits(engine):
    original = shapes.Service.execute_trade.__code__
    status = engine.add_counter(at("trade_total"))
    trade(2)
    engine.remove(status.id)
    trade(2)
    assert shapes.Service.execute_trade.__code__ is original
    with pytest.raises(ActionNotFound):
        engine.status(status.id)
    assert shapes.Service().execute_trade(shapes.Request("u", []), 2.0, 3) == (6.0, False)


def test_remove_all_and_unknown_id(engine):
    engine.add_counter(at("trade_total"))
    engine.add_log(at("plain_total"), "x")
    assert engine.remove_all() == 2
    assert engine.actions() == []
    with pytest.raises(ActionNotFound, match="nope"):
        engine.remove("nope")


def test_condition_that_keeps_failing_goes_to_error(engine):
    status = engine.add_log(at("trade_total"), "x", condition="no_such_name > 1")
    trade(30)
    now = engine.status(status.id)
    assert now.state == "error"
    assert "no_such_name" in now.message


def test_rejected_expression_places_nothing(engine):
    with pytest.raises(ExpressionError, match="condition"):
        engine.add_log(at("trade_total"), "x", condition="total = 3")
    with pytest.raises(ExpressionError):
        engine.add_log(at("trade_total"), "unclosed {total")
    # Nested past the compiler's stack: an ExpressionError, not a RecursionError.
    deep = "-" * 999 + "1"
    with pytest.raises(ExpressionError, match="nested too deeply"):
        engine.add_counter(at("trade_total"), condition=deep)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        engine.add_log(at("trade_total"), "{" + deep + "}")
    assert engine.actions() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_hits": 0}, "max_hits"),
        ({"max_hits": -3}, "max_hits"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
        ({"output": "stdout"}, "output"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": float("inf")}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
    ],
)
def test_bad_arguments_are_clear_errors(engine, kwargs, message):
    with pytest.raises(AgentError, match=message):
        engine.add_log(at("trade_total"), "x", **kwargs)


def test_log_to_the_application_logging(engine, caplog):
    status = engine.add_log(at("trade_flag"), "flag for {total}", output="app")
    with caplog.at_level(logging.INFO, logger="runtime_agent.dynamic"):
        trade(1)
    assert [r.getMessage() for r in caplog.records] == ["flag for 15000.0"]
    assert events_of(engine, "log", status.id) == []


def test_redacted_names_never_leave_the_process(engine):
    status = engine.add_log(at("secrets"), "user={user} pw={password} tok={token}")
    snap = engine.add_snapshot(at("secrets"))
    password = "hunter2"  # the caller's frame is captured too: its name hides it
    result = shapes.secrets_here(password, "bob")
    assert result == "bob:7:6"
    events = engine.drain()
    [log] = [e for e in events if e["action"] == status.id and e["type"] == "log"]
    assert log["message"] == "user=bob pw=<redacted> tok=<redacted>"
    [shot] = [e for e in events if e["action"] == snap.id and e["type"] == "snapshot"]
    assert shot["locals"]["password"] == {"type": "str", "redacted": True}
    assert shot["locals"]["user"]["value"] == "bob"
    assert "hunter2" not in json.dumps(shot)
    assert "abc123" not in json.dumps(shot)


def test_counter_and_metric_aggregates(engine):
    counter = engine.add_counter(at("trade_total"), condition="qty > 100")
    metric = engine.add_metric(at("trade_flag"), "total")
    for qty in (50, 150, 250):
        shapes.Service().execute_trade(shapes.Request("u", []), 10.0, qty)
    engine.flush()
    events = engine.drain()
    [count] = [e for e in events if e["action"] == counter.id and e["type"] == "metric"]
    [value] = [e for e in events if e["action"] == metric.id and e["type"] == "metric"]
    assert count["count"] == 2
    assert value["count"] == 3
    assert (value["min"], value["max"], value["mean"]) == (500.0, 2500.0, 1500.0)
    assert value["p50"] == 1500.0
    # Nothing new: no empty aggregate.
    engine.flush()
    assert [e for e in engine.drain() if e["type"] == "metric"] == []


def test_metric_of_a_non_number_reports_why(engine):
    status = engine.add_metric(at("trade_flag"), "req.user_id")
    trade(25)
    now = engine.status(status.id)
    assert now.state == "error"
    assert "not a number" in now.message


def test_several_actions_on_one_line(engine):
    a = engine.add_counter(at("trade_total"))
    b = engine.add_log(at("trade_total"), "p={price}", max_hits=1)
    trade(3)
    assert engine.status(a.id).hits == 3
    assert engine.status(b.id).state == "exhausted"
    engine.remove(a.id)
    trade(1)
    assert engine.status(b.id).hits == 1


def test_closed_engine_refuses_new_actions():
    from runtime_agent import Engine

    eng = Engine()
    eng.close()
    with pytest.raises(AgentError, match="closed"):
        eng.add_counter(at("trade_total"))


def test_a_core_refusal_fails_the_action_not_the_caller(engine, monkeypatch):
    from runtime_agent.backends import BackendError

    def refuse(*args, **kwargs):
        raise BackendError("too deeply nested")

    monkeypatch.setattr(engine._backend, "set_lines", refuse)
    status = engine.add_counter(at("trade_total"))
    now = engine.status(status.id)
    assert now.state == "error"
    assert "too deeply nested" in now.message
    monkeypatch.undo()
    trade(1)  # the host runs on, untouched
    assert engine.status(status.id).hits == 0
