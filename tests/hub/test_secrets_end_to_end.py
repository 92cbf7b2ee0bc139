"""An attacker with the MCP tools against a real Starlette service under uvicorn.

The service runs under ``runtime-agent run`` with a real hub; the test drives
the tools over HTTP with the SDK client, as an assistant would, placing the
actions an attacker would try. No secret of the service may appear in any
answer, and every refused read says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from conftest import HubProcess, agent_for, end_process, free_port, wait_until

pytestmark = pytest.mark.asyncio

APPS = Path(__file__).parent / "rt_apps"
SHOP = APPS / "shop.py"
PASSWORD = "wonderland-42"
BEARER = "Bearer abcdefghijklmnopqrstuvwxyz123456"
REFUSED = ("bit_leak", "length")
SECRETS = (PASSWORD, "abcdefghijklmnopqrstuvwxyz123456", "4eC39HqLyjWDarjtT1zdp7dc")


def shop_line(marker: str) -> str:
    for number, line in enumerate(SHOP.read_text().splitlines(), start=1):
        if f"# {marker}" in line:
            return f"rt_apps/shop.py:{number}"
    raise LookupError(marker)


class Shop:
    """``runtime-agent run -- python -m uvicorn shop:app`` with traffic to /login."""

    def __init__(self, tmp: Path, hub: HubProcess) -> None:
        self.port = free_port()
        self.log = tmp / "shop.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_", "PYTHONPATH"))}
        env.update(RUNTIME_AGENT_HUB=hub.url, RUNTIME_AGENT_SERVICE="shop", PYTHONPATH=str(APPS))
        runner = [sys.executable, "-m", "runtime_agent", "run", "--"]
        uvicorn = [sys.executable, "-m", "uvicorn", "shop:app", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*runner, *uvicorn], env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT
        )
        self.stopping = threading.Event()
        self.logins = 0
        self.traffic = threading.Thread(target=self._login_forever, daemon=True)

    def _login_forever(self) -> None:
        url = f"http://127.0.0.1:{self.port}/login"
        while not self.stopping.wait(0.02):
            try:
                httpx.post(
                    url,
                    json={"user": "alice", "password": PASSWORD},
                    headers={"Authorization": BEARER},
                )
                self.logins += 1
            except httpx.HTTPError:
                pass  # not listening yet

    def stop(self) -> None:
        self.stopping.set()
        end_process(self.proc, 15)


async def text_of(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, text
    return text


async def test_no_secret_reaches_the_assistant(tmp_path, hub):
    shop = Shop(tmp_path, hub)
    try:
        with hub.client() as http:
            agent = wait_until(lambda: agent_for(http, shop.proc.pid), timeout=30)
        assert agent["service"] == "shop"
        shop.traffic.start()
        wait_until(lambda: shop.logins > 3, timeout=30)
        checked, login = shop_line("CHECKED"), shop_line("LOGIN")
        attacks: dict[str, dict[str, Any]] = {
            "log_locals": dict(message="pw={password} body={body} hdr={auth_header}"),
            "log_walks": dict(
                message="{list(body.values())} {sorted(body.items())} {str(body)} "
                "{body['pass' + 'word']} {body.get('PASSWORD'.lower())}"
            ),
            "log_globals": dict(message="{API_KEY} {SESSIONS}"),
            "char_leak": dict(message="c={ord(password[0])}"),
            "bit_leak": dict(message="bit", condition="ord(password[0]) > 100"),
        }
        async with Client(f"{hub.url}/mcp") as client:
            placed: dict[str, str] = {}
            answers: list[str] = []
            for name, spec in attacks.items():
                text = await text_of(client, "add_log", location=login, **spec)
                answers.append(text)
                placed[name] = json.loads(text)["action_id"]
            text = await text_of(
                client, "add_metric", location=checked, kind="value", expression="len(password)"
            )
            answers.append(text)
            placed["length"] = json.loads(text)["action_id"]
            text = await text_of(client, "add_snapshot", location=login, max_hits=1)
            answers.append(text)
            placed["snapshot"] = json.loads(text)["action_id"]

            results = {}
            for name, action_id in placed.items():
                if name in REFUSED:
                    continue
                results[name] = await text_of(
                    client, "get_results", action_id=action_id, wait_seconds=20, format="detailed"
                )
            for name in REFUSED:  # the agent reports the error after 20 failures in a row
                for _ in range(100):
                    results[name] = await text_of(client, "get_results", action_id=placed[name])
                    if "error" in json.loads(results[name])["summary"]:
                        break
                    await anyio.sleep(0.2)
            answers += results.values()
            answers.append(await text_of(client, "list_actions"))
            answers.append(await text_of(client, "compare_snapshots", action_id=placed["snapshot"]))
            await text_of(client, "remove_actions", all=True)
    finally:
        shop.stop()

    for answer in answers:
        for secret in SECRETS:
            assert secret not in answer
    hits = {name: json.loads(text)["hits"] for name, text in results.items()}
    [first] = hits["log_locals"][:1]
    assert first["message"].startswith(
        "pw=<redacted> body={'user': 'alice', 'password': <redacted>}"
    )
    assert first["message"].endswith("hdr=<redacted>")
    walks = hits["log_walks"][0]["message"]
    assert walks.count("reads the redacted value 'password'") >= 3, walks
    assert hits["log_globals"][0]["message"] == "<redacted> <redacted>"
    assert "reads the redacted value 'password'" in hits["char_leak"][0]["message"]
    for refused in REFUSED:
        summary = json.loads(results[refused])["summary"]
        assert "reads the redacted value 'password'" in summary, summary
        assert hits[refused] == []
    [snapshot] = hits["snapshot"]
    assert snapshot["locals"]["password"]["redacted"] is True
    assert "redacted" in json.dumps(snapshot["locals"]["request"])
