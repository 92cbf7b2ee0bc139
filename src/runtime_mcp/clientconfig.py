"""``runtime-mcp client-config``: the MCP settings file each assistant reads.

The token is never written into the file: the entry refers to the
``RUNTIME_MCP_TOKEN`` environment variable in each client's own syntax (HTTP),
or the stdio proxy reads it from the environment it inherits.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

FILES = {
    "claude": Path(".mcp.json"),
    "cursor": Path(".cursor") / "mcp.json",
    "kiro": Path(".kiro") / "settings" / "mcp.json",
}
TOKEN_REF = {
    "claude": "${RUNTIME_MCP_TOKEN}",
    "cursor": "${env:RUNTIME_MCP_TOKEN}",
    "kiro": "${RUNTIME_MCP_TOKEN}",
}
SERVER_NAME = "runtime-mcp"


def entry(client: str, http_url: str | None, hub_url: str, with_token: bool) -> dict[str, Any]:
    """The ``mcpServers`` entry for one client."""
    if http_url is not None:
        server: dict[str, Any] = {"url": http_url}
        if client == "claude":
            server = {"type": "http", **server}
        if with_token:
            server["headers"] = {"Authorization": f"Bearer {TOKEN_REF[client]}"}
    else:
        command = shutil.which("runtime-mcp") or f"{sys.executable}"
        args = ["stdio", "--hub", hub_url]
        if command == sys.executable:
            args = ["-m", "runtime_mcp", *args]
        server = {"command": command, "args": args}
        if client == "claude":
            server = {"type": "stdio", **server}
    if client == "kiro":
        server["autoApprove"] = [
            "list_agents",
            "get_source",
            "list_actions",
            "get_results",
            "compare_snapshots",
        ]
        server["disabled"] = False
    return server


def render(
    client: str,
    http_url: str | None,
    hub_url: str,
    with_token: bool,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole file, merged into what is there already (other servers are kept)."""
    data = dict(existing or {})
    servers = dict(data.get("mcpServers") or {})
    servers[SERVER_NAME] = entry(client, http_url, hub_url, with_token)
    data["mcpServers"] = servers
    return data


def write(client: str, data: dict[str, Any], root: Path) -> Path:
    """Write the client's file under ``root``; returns its path."""
    path = root / FILES[client]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_existing(client: str, root: Path) -> dict[str, Any]:
    """The client's current file, or {}; ValueError when it is not valid JSON."""
    path = root / FILES[client]
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or move it first") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object; fix or move it first")
    return data
