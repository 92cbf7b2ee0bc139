"""The MCP server through the real SDK client: in memory, over stdio, over HTTP."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from conftest import HubProcess, line_of
from runtime_mcp.mcp_server import build_server

FLAG = f"trading_app/service.py:{line_of('rules = self.fraud.review')}"

pytestmark = pytest.mark.asyncio


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Error executing tool" not in text or ":" in text.split("Error executing tool", 1)[1]
    return text


def stdio_params(hub_url: str, token: str | None = None) -> StdioServerParameters:
    args = ["-m", "runtime_mcp", "stdio", "--hub", hub_url]
    if token:
        args += ["--token", token]
    return StdioServerParameters(command=sys.executable, args=args)


async def test_tools_are_described_and_annotated(hub):
    async with Client(build_server(hub.url, None)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "list_agents",
        "get_source",
        "add_log",
        "add_snapshot",
        "add_metric",
        "list_actions",
        "remove_actions",
        "get_results",
        "compare_snapshots",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80
        assert tool.output_schema is not None
    assert tools["list_agents"].annotations.read_only_hint is True
    assert tools["remove_actions"].annotations.destructive_hint is True
    assert tools["add_snapshot"].annotations.read_only_hint is False


async def test_the_investigation_over_http(hub, start_agent):
    start_agent(hub, tags="env=prod")
    start_agent(hub, tags="env=preprod")
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with Client(f"{hub.url}/mcp") as client:
        agents = await call(client, "list_agents", service="trading")
        assert len(agents["agents"]) == 2
        source = await call(client, "get_source", location=FLAG, context=3)
        flag_line = int(FLAG.rsplit(":", 1)[1])
        [row] = [
            r for r in source["text"].splitlines() if r[1:].lstrip().startswith(f"{flag_line} |")
        ]
        assert row.startswith(">") and "self.fraud.review" in row
        assert flag_line in source["actionable_lines"]
        assert len(source["sha256"]) == 64
        placed = await call(
            client,
            "add_snapshot",
            location=FLAG,
            condition="total > 10000",
            max_hits=3,
            target="env=prod",
            watch=["high_value"],
        )
        assert [a["state"] for a in placed["agents"]] == ["installed"]
        result = await client.call_tool(
            "get_results",
            {"action_id": placed["action_id"], "wait_seconds": 20, "min_hits": 3},
            progress_callback=on_progress,
        )
        results = result.structured_content
        assert len(results["hits"]) == 3, results["summary"]
        for hit in results["hits"]:
            assert hit["watch"]["high_value"] == "false"
        compared = await call(client, "compare_snapshots", action_id=placed["action_id"])
        assert "total" in compared["differing"] or "request" in compared["differing"]
        assert "high_value" not in compared["differing"]
        listed = await call(client, "list_actions")
        assert [a["action_id"] for a in listed["actions"]] == [placed["action_id"]]
        removed = await call(client, "remove_actions", all=True)
        assert removed["removed"] == [placed["action_id"]]


async def test_error_paths_over_stdio(hub, start_agent):
    start_agent(hub, service="trading")
    async with Client(stdio_params(hub.url)) as client:
        text = await call_error(client, "add_log", location="trading_app/service.py", message="x")
        assert "cannot read location" in text and "file.py:LINE" in text
        text = await call_error(client, "add_snapshot", location=FLAG, condition="total = 3")
        assert "condition" in text and "rejected" in text
        placed = await call(client, "add_log", location="trading_app/service.py:2", message="x")
        assert placed["agents"][0]["state"] == "error"
        assert "nearest lines with code" in placed["summary"] or "module-level" in placed["summary"]
        text = await call_error(client, "get_results", action_id="a-missing")
        assert "no action a-missing" in text
        text = await call_error(client, "add_metric", location=FLAG, target="service=billing")
        assert "no live agent matches" in text and "trading" in text
        text = await call_error(client, "add_metric", location=FLAG, kind="value")
        assert "needs an expression" in text
        text = await call_error(client, "remove_actions")
        assert "all=true" in text


async def test_hub_down_and_wrong_token(tmp_path, processes):
    async with Client(stdio_params("http://127.0.0.1:9")) as client:
        text = await call_error(client, "list_agents")
        assert "cannot reach the hub at http://127.0.0.1:9" in text
    hub = HubProcess(tmp_path, token="user-t", agent_token="agent-t").start()
    processes.append(hub)
    async with Client(stdio_params(hub.url, token="wrong")) as client:
        text = await call_error(client, "list_actions")
        assert "unknown token" in text and "RUNTIME_MCP_TOKEN" in text
    async with Client(stdio_params(hub.url, token="user-t")) as client:
        assert (await call(client, "list_actions"))["actions"] == []
    response = httpx.post(f"{hub.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401


async def test_results_are_paginated(hub, start_agent):
    start_agent(hub)
    async with Client(build_server(hub.url, None)) as client:
        placed = await call(client, "add_log", location=FLAG, message="t={total}", max_hits=60)
        first = await call(
            client, "get_results", action_id=placed["action_id"], wait_seconds=20, min_hits=25
        )
        assert len(first["hits"]) == 25
        assert first["more"] is True or first["next_cursor"] > 0
        second = await call(
            client,
            "get_results",
            action_id=placed["action_id"],
            cursor=first["next_cursor"],
            wait_seconds=20,
            min_hits=5,
        )
        seqs = [h["seq"] for h in first["hits"]] + [h["seq"] for h in second["hits"]]
        assert seqs == sorted(set(seqs))
