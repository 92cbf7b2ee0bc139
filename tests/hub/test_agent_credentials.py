"""An agent speaks only for itself: per-agent credentials, over real HTTP to a real hub.

The attacker holds what any agent holds (the shared agent token, or nothing on
an open loopback hub, and a credential of its own) and tries to speak for a
victim agent.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import threading
import time

import httpx
import pytest

from conftest import FakeAgent, HubProcess, agent_for, line_of, wait_until

ENTRY = f"trading_app/service.py:{line_of('price = self.prices.quote')}"


def place_for(hub: HubProcess, agent: FakeAgent, **spec: object) -> dict:
    body = {"kind": "counter", "location": "x.py:1", "target": f"agent:{agent.id}", "wait": 0}
    with hub.client() as http:
        response = http.post("/v1/actions", json={**body, **spec})
    assert response.status_code == 201, response.text
    return response.json()["action"]


def agent_requests(agent_id: str) -> list[tuple[str, str, dict | None]]:
    batch = {"protocol": 1, "batch": 1, "events": []}
    return [
        ("GET", f"/v1/agents/{agent_id}/actions?version=0&wait=0", None),
        ("POST", f"/v1/agents/{agent_id}/events", batch),
        ("POST", f"/v1/agents/{agent_id}/heartbeat", {"protocol": 1}),
        ("POST", f"/v1/agents/{agent_id}/answers", {"protocol": 1, "query": "q-1"}),
    ]


def test_registration_returns_a_credential_and_the_hub_keeps_only_its_hash(hub):
    agent = FakeAgent(hub)
    assert len(agent.credential) >= 40
    other = FakeAgent(hub)
    assert other.credential != agent.credential
    with hub.client() as http:
        listed = http.get("/v1/agents").text
    assert agent.credential not in listed and "credential" not in listed
    with sqlite3.connect(hub.db) as db:
        (stored,) = db.execute(
            "SELECT credential_hash FROM agents WHERE id = ?", (agent.id,)
        ).fetchone()
    assert stored == hashlib.sha256(agent.credential.encode()).hexdigest()
    for path in hub.db.parent.glob(hub.db.name + "*"):
        assert agent.credential.encode() not in path.read_bytes(), path


def test_agent_endpoints_need_that_agents_own_credential(tmp_path, processes):
    hub = HubProcess(tmp_path, token="user-secret", agent_token="agent-secret").start()
    processes.append(hub)
    victim, attacker = FakeAgent(hub), FakeAgent(hub)
    wrong = {
        "nothing": None,
        "another agent's credential": attacker.credential,
        "the shared agent token": "agent-secret",
        "the user token": "user-secret",
        "a non-ASCII secret": "Bearer-\u00e9\u00ff",
    }
    for method, path, body in agent_requests(victim.id):
        for what, secret in wrong.items():
            headers = {"Authorization": f"Bearer {secret}".encode("latin-1")} if secret else {}
            response = httpx.request(method, hub.url + path, json=body, headers=headers)
            assert response.status_code == 401, (what, path, response.text)
            assert response.json()["error"] == "unauthorized"
        with victim.client() as own:
            response = own.request(method, path, json=body)
        assert response.status_code == 200, (path, response.text)


def test_the_user_token_does_not_register_and_the_agent_secrets_do_not_read(tmp_path, processes):
    hub = HubProcess(tmp_path, token="user-secret", agent_token="agent-secret").start()
    processes.append(hub)
    agent = FakeAgent(hub)
    refused = agent.register(token="user-secret")
    assert refused.status_code == 403 and "agent token" in refused.json()["message"]
    for secret, status in (("agent-secret", 403), (agent.credential, 401)):
        with hub.client(token=secret) as http:
            for path in ("/v1/agents", "/v1/actions", "/v1/audit"):
                assert http.get(path).status_code == status, (secret, path)
            assert http.post("/v1/actions", json={"kind": "counter"}).status_code == status


def test_events_count_only_for_actions_sent_to_the_agent(hub):
    victim, attacker = FakeAgent(hub, service="victim"), FakeAgent(hub, service="attacker")
    action = place_for(hub, victim)
    forged = {
        "protocol": 1,
        "batch": 1,
        "events": [
            {"type": "log", "action": action["id"], "ts": time.time(), "message": "forged"},
            {"type": "state", "action": action["id"], "state": "error", "message": "forged"},
        ],
    }
    with attacker.client() as http:
        reply = http.post(f"/v1/agents/{attacker.id}/events", json=forged).json()
    assert reply == {"accepted": 0, "duplicate": False, "refused": 2}
    with hub.client() as http:
        assert http.get(f"/v1/actions/{action['id']}/hits").json()["hits"] == []
        states = http.get(f"/v1/actions/{action['id']}").json()["action"]["agents"]
    assert [(s["agent_id"], s["state"]) for s in states] == [(victim.id, "sent")]
    # The victim's own batch of the same number is not taken for a duplicate.
    genuine = {**forged, "events": forged["events"][:1]}
    with victim.client() as http:
        assert http.post(f"/v1/agents/{victim.id}/events", json=genuine).json()["accepted"] == 1


def test_reregistering_another_agents_instance_id_does_not_take_it_over(hub):
    victim = FakeAgent(hub, service="victim")
    thief = FakeAgent(hub, service="thief")
    for credential in (None, thief.credential, "x" * 43):
        fields = {"service": "thief"} if credential is None else {"credential": credential}
        response = victim.register(**{"service": "thief", **fields})
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "instance_claimed" and "credential" in body["message"]
    with hub.client() as http:
        record = next(a for a in http.get("/v1/agents").json()["agents"] if a["id"] == victim.id)
    assert record["service"] == "victim"
    with victim.client() as http:  # the victim's credential still works...
        assert http.post(f"/v1/agents/{victim.id}/heartbeat", json={}).status_code == 200
    # ...and re-registering with it keeps the record and the credential.
    again = victim.register(credential=victim.credential)
    assert again.status_code == 200
    assert again.json()["agent_id"] == victim.id and again.json()["credential"] == victim.credential


def test_a_departed_agent_cannot_be_kept_live_by_someone_else(tmp_path, processes):
    hub = HubProcess(tmp_path, extra=["--lost-after", "1"]).start()
    processes.append(hub)
    victim, attacker = FakeAgent(hub, service="victim"), FakeAgent(hub)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        with attacker.client() as http:
            for method, path, body in agent_requests(victim.id):
                assert http.request(method, path, json=body).status_code == 401
        assert victim.register().status_code == 409
        time.sleep(0.2)
    with hub.client() as http:
        record = next(a for a in http.get("/v1/agents").json()["agents"] if a["id"] == victim.id)
    assert record["status"] == "lost"


def test_a_source_answer_is_taken_only_from_the_agent_asked(hub):
    victim, attacker = FakeAgent(hub), FakeAgent(hub)
    version = victim.poll()["version"]
    result: dict = {}

    def ask() -> None:
        with hub.client() as http:
            reply = http.get("/v1/source", params={"location": "x.py:1", "agent": victim.id})
        result.update(reply.json())

    asking = threading.Thread(target=ask)
    asking.start()
    [query] = victim.poll(version=version, wait=5)["queries"]
    forged = {"protocol": 1, "query": query["id"], "result": {"lines": ["forged"]}}
    with attacker.client() as http:
        mine = http.post(f"/v1/agents/{attacker.id}/answers", json=forged)
        theirs = http.post(f"/v1/agents/{victim.id}/answers", json=forged)
    assert mine.json() == {"accepted": False}
    assert theirs.status_code == 401
    genuine = {"protocol": 1, "query": query["id"], "result": {"lines": ["genuine"]}}
    with victim.client() as http:
        assert http.post(f"/v1/agents/{victim.id}/answers", json=genuine).json()["accepted"]
    asking.join(timeout=10)
    assert result["source"] == {"lines": ["genuine"]}


def test_an_agent_keeps_its_credential_across_restarts_and_registers_again_when_forgotten(
    tmp_path, processes, start_agent
):
    hub = HubProcess(tmp_path).start()
    processes.append(hub)
    agent = start_agent(hub)
    with hub.client() as http:
        first = agent_for(http, agent.pid)["id"]
    hub.stop()
    hub.start()  # same database: the credential's hash survived
    with hub.client() as http:
        # The agent's reconnect backoff doubles while the hub is down (up to
        # 30 s): a slow restart on a loaded machine takes a few rounds.
        wait_until(lambda: agent_for(http, agent.pid), timeout=60)
        assert agent_for(http, agent.pid)["id"] == first
        registrations = [e for e in http.get("/v1/audit").json()["audit"] if e["op"] == "register"]
        assert len(registrations) == 1
    hub.stop(signal.SIGKILL)
    for path in tmp_path.glob(hub.db.name + "*"):
        path.unlink()  # a hub that forgot everything
    hub.start()
    with hub.client() as http:
        wait_until(lambda: agent_for(http, agent.pid), timeout=60)
        action = http.post(
            "/v1/actions", json={"kind": "counter", "location": ENTRY, "wait": 5}
        ).json()["action"]
    assert [a["state"] for a in action["agents"]] == ["installed"]


class StubEngine:
    """What the channel reads of an engine, for a channel run in the test process."""

    instance_id = "stub0123abcd"
    core = "settrace"
    core_status = "settrace: a stub engine in the test process"
    blocklist = None
    canonical = None

    def actions(self) -> list:
        return []

    def drain(self) -> list:
        return []

    def stats(self) -> dict:
        return {"dropped_overflow": 0, "dropped_rate": 0, "queued_events": 0}


@pytest.mark.parametrize("agent_token", [None, "agent-secret"])
def test_the_channel_takes_a_new_identity_when_its_instance_id_is_claimed(
    tmp_path, processes, agent_token
):
    """A register reply lost on the way: the hub has our instance id under a credential
    we never received. The channel registers afresh instead of looping on 409."""
    from runtime_agent.channel import Channel
    from runtime_agent.config import AgentConfig

    hub = HubProcess(tmp_path, token="u" if agent_token else None, agent_token=agent_token)
    processes.append(hub.start())
    FakeAgent(hub, service="lost", instance_id=StubEngine.instance_id)
    channel = Channel(StubEngine(), AgentConfig(hub.url, agent_token, "stubbed"))  # type: ignore[arg-type]
    channel.start()
    try:
        wait_until(lambda: channel.agent_id and channel.connected)
        with hub.client() as http:
            agents = http.get("/v1/agents").json()["agents"]
        mine = next(a for a in agents if a["id"] == channel.agent_id)
        assert mine["service"] == "stubbed" and mine["instance_id"] != StubEngine.instance_id
        assert {a["service"] for a in agents} == {"lost", "stubbed"}
    finally:
        channel.stop(flush_timeout=0.2)
