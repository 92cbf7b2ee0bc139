"""The runtime-mcp command line against a real hub and agent."""

from __future__ import annotations

import json
import subprocess

from conftest import CLI, HubProcess, cli_json, line_of, run_cli

FLAG = f"trading_app/service.py:{line_of('rules = self.fraud.review')}"


def test_agents_table_and_json(hub, start_agent):
    agent = start_agent(hub, tags="env=prod")
    out = run_cli("agents", hub=hub)
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0].split()
    assert header[:3] == ["ID", "SERVICE", "TAGS"]
    assert "env=prod" in out.stdout and "live" in out.stdout
    [record] = cli_json("agents", hub=hub)
    assert record["pid"] == agent.pid


def test_snapshot_hits_rm_audit(hub, start_agent):
    start_agent(hub, tags="env=prod")
    placed = cli_json(
        "snapshot",
        FLAG,
        "--if",
        "total > 10000",
        "--max-hits",
        "2",
        "--watch",
        "high_value",
        "--target",
        "env=prod",
        hub=hub,
    )
    assert placed["agents"][0]["state"] == "installed"
    action_id = placed["id"]
    listing = run_cli("actions", hub=hub)
    assert action_id in listing.stdout and "total > 10000" in listing.stdout
    follow = subprocess.run(
        [*CLI, "hits", action_id, "--json"],
        capture_output=True,
        text=True,
        env={"RUNTIME_MCP_HUB": hub.url, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert follow.returncode == 0, follow.stderr
    out = run_cli("rm", action_id, hub=hub)
    assert out.returncode == 0 and action_id in out.stdout
    audit = cli_json("audit", hub=hub)
    assert next(e["op"] for e in audit if e["action_id"] == action_id) == "place"


def test_log_with_bad_line_reports_the_agents_error(hub, start_agent):
    start_agent(hub)
    out = run_cli("log", "trading_app/service.py:1", "x={x}", hub=hub)
    assert out.returncode == 1
    assert "error" in out.stdout and "line 1" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_metric_kinds(hub, start_agent):
    start_agent(hub)
    value = cli_json("metric", FLAG, "--kind", "value", "--expr", "total", hub=hub)
    assert value["kind"] == "metric" and value["expression"] == "total"
    duration = cli_json(
        "metric",
        "trading_app.service:TradeExecutionService.execute_trade",
        "--kind",
        "duration",
        hub=hub,
    )
    assert duration["agents"][0]["state"] == "installed"
    out = run_cli("metric", FLAG, "--kind", "value", hub=hub)
    assert out.returncode == 2 and "--expr" in out.stderr


def test_errors_are_one_line_without_traceback(tmp_path):
    down = run_cli("agents", "--hub", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1
    assert "cannot reach the hub at http://127.0.0.1:9" in down.stderr
    assert "Traceback" not in down.stderr
    hub = HubProcess(tmp_path, token="t0k3n", agent_token="ag3nt").start()
    try:
        refused = run_cli("agents", hub=hub)
        assert refused.returncode == 1 and "RUNTIME_MCP_TOKEN" in refused.stderr
        ok = run_cli("agents", "--json", hub=hub, token="t0k3n")
        assert ok.returncode == 0 and json.loads(ok.stdout) == []
        usage = run_cli("rm", hub=hub, token="t0k3n")
        assert usage.returncode == 2 and "--all" in usage.stderr
    finally:
        hub.stop()


def test_serve_refuses_a_public_bind_without_tokens(tmp_path):
    out = run_cli(
        "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "x.db"), timeout=30
    )
    assert out.returncode == 2
    assert "--token" in out.stderr and "--agent-token" in out.stderr
    assert "Traceback" not in out.stderr
