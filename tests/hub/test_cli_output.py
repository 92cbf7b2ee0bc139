"""Application data cannot drive the terminal through the CLI: escapes, newlines, bidi.

A registered agent (what any agent-token holder can be) names itself and
reports log lines full of terminal escape sequences; every human-readable
command prints them escaped, and ``--json`` keeps them intact as JSON.
"""

from __future__ import annotations

import json
import re
import time

import httpx

from conftest import FakeAgent, cli_json, run_cli
from runtime_mcp.present import clean

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
SERVICE = "svc\x1b]0;pwned\x07\x1b[2J"
TAG = "prod\nFAKE-ROW live"
MESSAGE = "ok\x1b[31mred\r\n12:00:00 forged line\u2028\u202eevil"


def hostile_agent(hub) -> tuple[FakeAgent, str]:
    agent = FakeAgent(hub, service=SERVICE)
    again = agent.register(
        tags={"env": TAG}, host="h\u202eost", python="3\r12", credential=agent.credential
    )
    assert again.status_code == 200, again.text
    with hub.client() as http:
        action = http.post(
            "/v1/actions",
            json={
                "kind": "log",
                "location": "x.py:1",
                "message": "m={m}",
                "target": f"agent:{agent.id}",
                "wait": 0,
            },
        ).json()["action"]
    batch = {
        "protocol": 1,
        "batch": 1,
        "events": [
            {"type": "log", "action": action["id"], "ts": time.time(), "message": MESSAGE},
            {"type": "state", "action": action["id"], "state": "error", "message": "\x1b[1mX"},
        ],
    }
    with agent.client() as http:
        assert http.post(f"/v1/agents/{agent.id}/events", json=batch).json()["accepted"] == 1
    return agent, action["id"]


def assert_safe(text: str) -> None:
    assert not UNSAFE.search(text), repr(text)
    for line in text.splitlines():
        assert not line.startswith(("FAKE-ROW", "12:00:00 forged")), repr(text)


def test_human_output_escapes_application_data(hub):
    _, action_id = hostile_agent(hub)
    outputs = {
        "agents": run_cli("agents", hub=hub),
        "actions": run_cli("actions", hub=hub),
        "hits": run_cli("hits", action_id, hub=hub),
        "audit": run_cli("audit", hub=hub),
        "failure": run_cli("log", "x.py:1", "m", "--target", "service=nobody", hub=hub),
    }
    for name, out in outputs.items():
        assert_safe(out.stdout)
        assert_safe(out.stderr)
        assert "Traceback" not in out.stderr, (name, out.stderr)
    assert "svc\\x1b]0;pwned\\x07\\x1b[2J" in outputs["agents"].stdout
    assert (
        "prod\\nFAKE-ROW" in outputs["agents"].stdout and "h\\u202eost" in outputs["agents"].stdout
    )
    assert "ok\\x1b[31mred\\r\\n12:00:00 forged line\\u2028\\u202eevil" in outputs["hits"].stdout
    assert "\\x1b[1mX" in outputs["actions"].stdout or "\\x1b[1mX" in outputs["audit"].stdout
    assert outputs["failure"].returncode == 1 and outputs["failure"].stderr.count("\n") == 1
    assert "svc\\x1b]0;pwned" in outputs["failure"].stderr


def test_json_output_stays_json(hub):
    agent, action_id = hostile_agent(hub)
    [record] = [a for a in cli_json("agents", hub=hub) if a["id"] == agent.id]
    assert record["service"] == SERVICE and record["tags"] == {"env": TAG}
    hits = run_cli("hits", action_id, "--json", hub=hub)
    assert hits.returncode == 0
    assert_safe(hits.stdout)
    [hit] = [json.loads(line) for line in hits.stdout.splitlines()]
    assert hit["message"] == MESSAGE


def test_clean_escapes_each_unsafe_class_and_keeps_text():
    assert clean("caf\u00e9 \u65e5\u672c \U0001f600 tab\there") == (
        "caf\u00e9 \u65e5\u672c \U0001f600 tab\\there"
    )
    assert clean("\x00\x1b\x7f\x9b\u200b\u202e\u2066\ufeff\ud800") == (
        "\\x00\\x1b\\x7f\\x9b\\u200b\\u202e\\u2066\\ufeff\\ud800"
    )
    assert clean(12) == "12"


def test_hub_errors_are_escaped_too(hub):
    FakeAgent(hub, service="bad\x1b[2Jname")
    response = httpx.post(
        f"{hub.url}/v1/actions",
        json={"kind": "counter", "location": "x.py:1", "target": "service=none"},
    )
    assert "\x1b" in response.json()["message"]  # the hub says what is there...
    out = run_cli("metric", "x.py:1", "--target", "service=none", hub=hub)
    assert out.returncode == 1 and "bad\\x1b[2Jname" in out.stderr  # ...the CLI escapes it
    assert_safe(out.stderr)
