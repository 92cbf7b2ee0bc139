"""The audit trail stays bounded; a hub reachable beyond this machine needs both tokens."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import FakeAgent, HubProcess, run_cli, wait_until
from runtime_mcp.store import AUDITED_STATES, Store


def audit_rows(hub: HubProcess) -> list:
    with hub.client() as http:
        return http.get("/v1/audit", params={"limit": 10_000}).json()["audit"]


def test_agent_requests_do_not_grow_the_audit_trail(hub):
    """Before: 30 batches of 1,000 state flips added 30,000 rows."""
    agent = FakeAgent(hub)
    with hub.client() as http:
        action = http.post(
            "/v1/actions",
            json={
                "kind": "counter",
                "location": "x.py:1",
                "target": f"agent:{agent.id}",
                "wait": 0,
            },
        ).json()["action"]
    before = len(audit_rows(hub))
    with agent.client() as http:
        for batch in range(1, 31):
            events = [
                {"type": "state", "action": action["id"], "state": ("installed", "paused")[i % 2]}
                for i in range(1000)
            ]
            reply = http.post(
                f"/v1/agents/{agent.id}/events",
                json={"protocol": 1, "batch": batch, "events": events},
            )
            assert reply.status_code == 200, reply.text
    added = audit_rows(hub)[before:]
    assert len(added) == AUDITED_STATES + 1
    assert added[-1]["op"] == "audit_capped" and "not audited" in added[-1]["detail"]["message"]
    # The action's row still follows the agent's latest state.
    with hub.client() as http:
        [row] = http.get(f"/v1/actions/{action['id']}").json()["action"]["agents"]
    assert row["state"] == "paused"


def test_the_audit_trail_is_trimmed_to_its_row_cap(tmp_path, processes):
    hub = HubProcess(tmp_path, extra=["--audit-max-rows", "10"]).start()
    processes.append(hub)
    agent = FakeAgent(hub)
    with hub.client() as http:
        for _ in range(15):
            placed = http.post(
                "/v1/actions",
                json={
                    "kind": "counter",
                    "location": "x.py:1",
                    "target": f"agent:{agent.id}",
                    "wait": 0,
                },
            )
            assert placed.status_code == 201
            http.delete(f"/v1/actions/{placed.json()['action']['id']}")
    assert len(audit_rows(hub)) > 10
    newest = audit_rows(hub)[-1]["seq"]
    kept = wait_until(lambda: (rows := audit_rows(hub)) and len(rows) <= 10 and rows)
    assert kept[-1]["seq"] == newest  # the oldest go first


def test_audit_entries_older_than_the_age_limit_go():
    store = Store(":memory:")
    store.record("user", "place", {})
    store.record("user", "remove", {})
    assert store.trim_audit(max_rows=100, max_age=86400) == 0
    assert store.count_audit() == 2
    assert store.trim_audit(max_rows=100, max_age=86400, now=time.time() + 2 * 86400) == 2
    assert store.count_audit() == 0


def test_bad_retention_settings_refuse_to_start(tmp_path):
    for flag, value, words in (
        ("--audit-max-rows", "0", "at least 10"),
        ("--audit-max-days", "nan", "days above 0"),
        ("--audit-max-days", "-1", "days above 0"),
        ("--audit-max-rows", "many", "invalid int"),
    ):
        out = run_cli("serve", "--port", "0", "--db", str(tmp_path / "x.db"), flag, value)
        assert out.returncode == 2 and words in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "192.0.2.7", "hub.example"])
@pytest.mark.parametrize("tokens", [[], ["--token", "u"], ["--agent-token", "a"]])
def test_every_non_loopback_bind_needs_both_tokens(tmp_path, host, tokens):
    out = run_cli("serve", "--host", host, "--port", "0", "--db", str(tmp_path / "x.db"), *tokens)
    assert out.returncode == 2, (host, tokens, out.stderr)
    assert "without tokens" in out.stderr and "--agent-token" in out.stderr
    if host == "":
        assert "every interface" in out.stderr


def test_one_token_for_both_roles_is_refused(tmp_path):
    out = run_cli(
        "serve",
        "--port",
        "0",
        "--db",
        str(tmp_path / "x.db"),
        "--token",
        "same",
        "--agent-token",
        "same",
    )
    assert out.returncode == 2 and "must differ" in out.stderr


def test_a_hub_on_every_interface_with_both_tokens_answers_its_loopback_name(tmp_path, processes):
    hub = HubProcess(tmp_path, token="u", agent_token="a", extra=["--host", "0.0.0.0"]).start()
    processes.append(hub)
    assert (
        httpx.get(f"{hub.url}/v1/agents", headers={"Authorization": "Bearer u"}).status_code == 200
    )
    assert httpx.get(f"{hub.url}/v1/agents").status_code == 401
