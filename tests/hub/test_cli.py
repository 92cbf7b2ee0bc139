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


def test_runtime_agent_run_attaches_without_code_changes(hub, tmp_path, processes):
    import os
    import sys

    from conftest import TRADING, agent_for, wait_until

    script = tmp_path / "plain_app.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(TRADING)!r})\n"
        "from trading_app.service import TradeExecutionService, TradeRequest\n"
        "service = TradeExecutionService()\n"
        "while True:\n"
        "    service.execute_trade(TradeRequest('u', 'ACME', 2))\n"
        "    time.sleep(0.01)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime_agent",
            "run",
            "--hub",
            hub.url,
            "--service",
            "zero",
            "--tags",
            "env=test",
            "--",
            sys.executable,
            str(script),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    class Proc:
        def stop(self, sig=None):
            proc.kill()
            proc.wait()

    processes.append(Proc())
    with hub.client() as http:
        record = wait_until(lambda: agent_for(http, proc.pid))
    assert record["service"] == "zero" and record["tags"] == {"env": "test"}


def test_runtime_agent_run_usage_errors():
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "runtime_agent", "run", "--tags", "oops"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "command to run" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "runtime_agent", "run", "--tags", "oops", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "key=value" in out.stderr
    assert "Traceback" not in out.stderr


def test_client_config_for_each_assistant(tmp_path):
    existing = tmp_path / ".mcp.json"
    existing.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))
    out = run_cli(
        "client-config",
        "claude",
        "--with-token",
        "--write",
        "--dir",
        str(tmp_path),
        "--hub",
        "http://127.0.0.1:7878",
    )
    assert out.returncode == 0, out.stderr
    claude = json.loads(existing.read_text())["mcpServers"]
    assert claude["other"] == {"command": "x"}
    assert claude["runtime-mcp"] == {
        "type": "http",
        "url": "http://127.0.0.1:7878/mcp",
        "headers": {"Authorization": "Bearer ${RUNTIME_MCP_TOKEN}"},
    }
    out = run_cli("client-config", "cursor", "--with-token", "--write", "--dir", str(tmp_path))
    cursor = json.loads((tmp_path / ".cursor" / "mcp.json").read_text())
    assert cursor["mcpServers"]["runtime-mcp"]["headers"]["Authorization"] == (
        "Bearer ${env:RUNTIME_MCP_TOKEN}"
    )
    out = run_cli("client-config", "kiro", "--stdio", "--write", "--dir", str(tmp_path))
    kiro = json.loads((tmp_path / ".kiro" / "settings" / "mcp.json").read_text())
    entry = kiro["mcpServers"]["runtime-mcp"]
    assert "stdio" in entry["args"] and "list_agents" in entry["autoApprove"]
    assert "token" not in json.dumps(kiro).lower()
    (tmp_path / ".mcp.json").write_text("{broken")
    bad = run_cli("client-config", "claude", "--write", "--dir", str(tmp_path))
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
