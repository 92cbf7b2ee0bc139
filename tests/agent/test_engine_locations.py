"""Location forms, their errors, and pending actions installed on import."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from conftest import LINES, SHAPES, at, refuses_closures
from rt_targets import shapes
from runtime_agent import CoreRefused, LocationError

LINE = LINES["trade_total"]


@pytest.mark.parametrize(
    "location",
    [
        f"rt_targets/shapes.py:{LINE}",
        f"/srv/app/tests/agent/rt_targets/shapes.py:{LINE}"[len("/srv/app/") :],
        f"{SHAPES}:{LINE}",
        f"shapes.py:{LINE}",
        f"rt_targets.shapes:{LINE}",
    ],
)
def test_line_location_forms(engine, location):
    status = engine.add_counter(location)
    assert status.state == "installed", status.message
    assert status.file is not None and status.file.endswith("shapes.py")
    assert status.line == LINE
    assert status.function.endswith("execute_trade")
    shapes.Service().execute_trade(shapes.Request("u", []), 1.0, 1)
    assert engine.status(status.id).hits == 1


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("shapes.py", "cannot read location"),
        ("shapes.py:", "cannot read location"),
        ("shapes.py:0", "line numbers start at 1"),
        ("shapes.py:12a", "as a line or a name"),
        ("not a module:3", "as a file or module"),
        (f"rt_targets/shapes.py:{LINES['plain_blank']}", "no code at line"),
        (f"rt_targets/shapes.py:{LINES['module_level']}", "module-level code"),
        (f"rt_targets/shapes.py:{LINES['trade_total']}0", "nearest lines with code"),
    ],
)
def test_bad_locations_say_why(engine, location, message):
    with pytest.raises(LocationError, match=message):
        engine.add_counter(location)
    assert engine.actions() == []


def test_no_code_error_names_the_nearest_lines(engine):
    blank = LINES["plain_blank"]
    with pytest.raises(LocationError) as info:
        engine.add_counter(f"rt_targets/shapes.py:{blank}")
    assert f"{LINES['plain_total']}, {LINES['plain_return']}" in str(info.value)


def test_ambiguous_file_names_the_candidates(engine, tmp_path, monkeypatch):
    for pkg in ("alpha_pkg", "beta_pkg"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
        (tmp_path / pkg / "dup_mod.py").write_text("def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("alpha_pkg.dup_mod")
    importlib.import_module("beta_pkg.dup_mod")
    with pytest.raises(LocationError) as info:
        engine.add_counter("dup_mod.py:2")
    assert "alpha_pkg" in str(info.value) and "beta_pkg" in str(info.value)
    assert "give more of the path" in str(info.value)
    status = engine.add_counter("beta_pkg/dup_mod.py:2")
    assert status.state == "installed"
    sys.modules["beta_pkg.dup_mod"].f(1)
    sys.modules["alpha_pkg.dup_mod"].f(1)
    assert engine.status(status.id).hits == 1


def test_function_location_for_a_line_action_is_an_error(engine):
    with pytest.raises(LocationError, match="names a function"):
        engine.add_counter("rt_targets.shapes:plain")


def test_unknown_function_lists_the_close_ones(engine):
    with pytest.raises(LocationError, match=r"Service\.execute_trade"):
        engine.add_duration("rt_targets.shapes:Other.execute_trade")


def test_duration_at_a_line_times_the_function_around_it(engine):
    if refuses_closures(engine):
        with pytest.raises(CoreRefused, match="closure variables"):
            engine.add_duration(at("closure"))
        return
    status = engine.add_duration(at("closure"))
    assert status.function.endswith("adder")
    shapes.make_adder(2)(3)
    engine.flush()
    metrics = [e for e in engine.drain() if e["type"] == "metric"]
    assert metrics and metrics[0]["count"] == 1


def test_pending_until_imported_then_installed(engine, tmp_path, monkeypatch):
    module = tmp_path / "late_mod_for_pending.py"
    module.write_text(
        textwrap.dedent(
            """
            def compute(x):
                doubled = x * 2
                return doubled
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    status = engine.add_log("late_mod_for_pending.py:3", "x={x}")
    assert status.state == "pending"
    assert "imported" in status.message
    by_module = engine.add_counter("late_mod_for_pending:4")
    assert by_module.state == "pending"
    mod = importlib.import_module("late_mod_for_pending")
    try:
        assert mod.compute(21) == 42
        assert engine.status(status.id).state == "installed"
        assert engine.status(by_module.id).hits == 1
        logs = [e for e in engine.drain() if e["type"] == "log"]
        assert [e["message"] for e in logs] == ["x=21"]
        # The module's loader is the real one, not a wrapper of ours.
        assert type(mod.__loader__).__name__ == "SourceFileLoader"
        assert mod.__spec__.loader is mod.__loader__
    finally:
        sys.modules.pop("late_mod_for_pending", None)


def test_pending_that_cannot_install_reports_an_error(engine, tmp_path, monkeypatch):
    (tmp_path / "late_mod_bad_line.py").write_text("X = 1\n\n\ndef f():\n    return X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status = engine.add_counter("late_mod_bad_line.py:2")
    assert status.state == "pending"
    importlib.import_module("late_mod_bad_line")
    try:
        now = engine.status(status.id)
        assert now.state == "error"
        assert "no code at line 2" in now.message
    finally:
        sys.modules.pop("late_mod_bad_line", None)


def test_import_hook_leaves_when_nothing_is_pending(engine, tmp_path, monkeypatch):
    (tmp_path / "late_mod_hook.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = list(sys.meta_path)
    status = engine.add_counter("late_mod_hook.py:2")
    assert len(sys.meta_path) == len(before) + 1
    engine.remove(status.id)
    assert sys.meta_path == before


def test_blocklist_refuses_actions(tmp_path):
    from runtime_agent import BlockedLocation, Engine

    with Engine(blocklist=["*rt_targets/shapes.py"]) as eng:
        with pytest.raises(BlockedLocation, match="blocklist"):
            eng.add_counter(at("trade_total"))
    with Engine(blocklist=["rt_targets.*"]) as eng:
        with pytest.raises(BlockedLocation):
            eng.add_counter(at("trade_total"))
