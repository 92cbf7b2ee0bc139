"""The hub's /mcp endpoint is built in the background (runtime_mcp.mcp_mount)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from runtime_mcp import mcp_mount
from runtime_mcp.server import build
from runtime_mcp.settings import HubSettings


def test_building_the_hub_imports_no_mcp_sdk(tmp_path: Path) -> None:
    # The point of the mount: a hub listens before the SDK's slow import.
    script = (
        "import sys\n"
        "from runtime_mcp.server import build\n"
        "from runtime_mcp.settings import HubSettings\n"
        f"build(HubSettings(db={str(tmp_path / 'hub.db')!r}))\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def _client(tmp_path: Path, token: str | None = None) -> TestClient:
    app = build(HubSettings(db=str(tmp_path / "hub.db"), user_token=token))[1]
    # The browser guard answers only the loopback names.
    return TestClient(app, base_url="http://127.0.0.1:7007")


def test_a_failed_build_answers_503_and_the_rest_of_the_hub_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: mcp_mount.McpMount) -> None:
        raise ImportError("No module named 'mcp'")

    monkeypatch.setattr(mcp_mount.McpMount, "_build", broken)
    with _client(tmp_path) as client:
        answer = client.post("/mcp", json={})
        assert answer.status_code == 503
        body = answer.json()
        assert body["error"] == "mcp_unavailable"
        assert "ImportError: No module named 'mcp'" in body["message"]
        assert "REST API and agents still work" in body["message"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/agents").status_code == 200


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The MCP server's build waits until the event is set (at the latest on teardown)."""
    event = threading.Event()
    original = mcp_mount.McpMount._build

    def slow(self: mcp_mount.McpMount) -> object:
        event.wait(30)
        return original(self)

    monkeypatch.setattr(mcp_mount.McpMount, "_build", slow)
    yield event
    event.set()


def test_the_token_is_checked_before_the_mcp_server_is_ready(
    tmp_path: Path, release: threading.Event
) -> None:
    with _client(tmp_path, token="u-secret") as client:
        answer = client.post("/mcp", json={})
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
        release.set()  # the client's shutdown waits for the build


def test_a_request_waits_for_the_build_and_then_reaches_the_sdk(
    tmp_path: Path, release: threading.Event
) -> None:
    with _client(tmp_path) as client:
        threading.Timer(0.3, release.set).start()
        answer = client.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            },
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert release.is_set()
        assert answer.status_code == 200
        assert '"name":"runtime-mcp"' in answer.text
