"""The hub with real agent processes on loopback."""

from __future__ import annotations

import gzip
import json
import signal
import sys
import time

import httpx

from conftest import FakeAgent, HubProcess, agent_for, line_of, wait_until

FLAG_LINE = line_of("rules = self.fraud.review")
ENTRY_LINE = line_of("price = self.prices.quote")


def place(http: httpx.Client, **spec: object) -> dict:
    response = http.post("/v1/actions", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["action"]


def test_registration_describes_the_process(hub, start_agent):
    agent = start_agent(hub, service="trading", tags="env=prod,region=eu")
    with hub.client() as http:
        record = agent_for(http, agent.pid)
    assert record["service"] == "trading"
    assert record["tags"] == {"env": "prod", "region": "eu"}
    assert record["python"].count(".") == 2
    # Which core runs and why, as the agent says it: "monitoring (no tool id
    # held: ...)" until an action needs one, then "monitoring (tool id 4)".
    expected = "monitoring (" if sys.version_info >= (3, 12) else "bytecode (bytecode "
    assert record["core"].startswith(expected), record["core"]
    assert record["host"]
    assert record["status"] == "live"


def test_placement_reaches_matching_agents_only(hub, start_agent):
    prod = start_agent(hub, tags="env=prod")
    pre = start_agent(hub, tags="env=preprod")
    with hub.client() as http:
        action = place(
            http,
            kind="counter",
            location=f"trading_app/service.py:{FLAG_LINE}",
            target="service=trading,env=prod",
            wait=5,
        )
        states = {a["agent_id"]: a for a in action["agents"]}
        prod_id = agent_for(http, prod.pid)["id"]
        pre_id = agent_for(http, pre.pid)["id"]
    assert set(states) == {prod_id}
    assert states[prod_id]["state"] == "installed"
    assert states[prod_id]["line"] == FLAG_LINE
    assert pre_id not in states


def test_results_flow_back(hub, start_agent):
    start_agent(hub)
    with hub.client() as http:
        action = place(
            http,
            kind="snapshot",
            location=f"trading_app/service.py:{FLAG_LINE}",
            condition="total > 10000",
            max_hits=3,
            wait=5,
        )
        page = http.get(
            f"/v1/actions/{action['id']}/hits", params={"wait": 15, "min_hits": 3}
        ).json()
    snaps = [h for h in page["hits"] if h["type"] == "snapshot"]
    assert len(snaps) == 3
    for snap in snaps:
        assert snap["locals"]["total"]["value"] > 10000
        assert snap["locals"]["high_value"]["value"] is False
    assert page["cursor"] == snaps[-1]["seq"]


def test_agent_errors_come_back_per_agent(hub, start_agent):
    start_agent(hub)
    with hub.client() as http:
        action = place(http, kind="log", location="trading_app/service.py:2", message="x", wait=5)
    [answer] = action["agents"]
    assert answer["state"] == "error"
    assert "nearest lines with code" in answer["message"] or "module-level" in answer["message"]


def test_late_joiner_gets_the_actions_of_its_service(hub, start_agent):
    start_agent(hub, service="trading")
    with hub.client() as http:
        action = place(
            http,
            kind="counter",
            location=f"trading_app/service.py:{ENTRY_LINE}",
            target="service=trading",
            wait=5,
        )
        late = start_agent(hub, service="trading")
        late_id = agent_for(http, late.pid)["id"]

        def installed_on_late() -> bool:
            states = http.get(f"/v1/actions/{action['id']}").json()["action"]["agents"]
            return any(a["agent_id"] == late_id and a["state"] == "installed" for a in states)

        wait_until(installed_on_late)


def test_no_matching_agent_names_the_live_services(hub, start_agent):
    start_agent(hub, service="trading", tags="env=prod")
    with hub.client() as http:
        response = http.post(
            "/v1/actions",
            json={"kind": "counter", "location": "x.py:1", "target": "service=billing"},
        )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "no_matching_agent"
    assert "trading (env=prod)" in body["message"]


def test_removal_reaches_the_agent(hub, start_agent):
    start_agent(hub)
    with hub.client() as http:
        action = place(
            http, kind="counter", location=f"trading_app/service.py:{ENTRY_LINE}", wait=5
        )
        assert http.delete(f"/v1/actions/{action['id']}").json()["removed"] == [action["id"]]

        def removed() -> bool:
            states = http.get(f"/v1/actions/{action['id']}").json()["action"]["agents"]
            return all(a["state"] == "removed" for a in states)

        wait_until(removed)
        audit = http.get("/v1/audit", params={"action": action["id"]}).json()["audit"]
    assert [e["op"] for e in audit] == ["place", "installed", "remove", "removed"]


def test_hub_restart_keeps_actions_and_agents_reconnect(tmp_path, processes, start_agent):
    hub = HubProcess(tmp_path).start()
    processes.append(hub)
    agent = start_agent(hub)
    with hub.client() as http:
        action = place(
            http,
            kind="log",
            location=f"trading_app/service.py:{ENTRY_LINE}",
            message="qty={request.quantity}",
            max_hits=100_000,
            wait=5,
        )
        wait_until(lambda: http.get(f"/v1/actions/{action['id']}/hits").json()["hits"])
    hub.stop()
    hub.start()
    with hub.client() as http:
        wait_until(lambda: agent_for(http, agent.pid))
        before = http.get(f"/v1/actions/{action['id']}").json()["action"]["hits_stored"]
        assert http.get("/v1/actions").json()["actions"][0]["id"] == action["id"]
        wait_until(
            lambda: http.get(f"/v1/actions/{action['id']}").json()["action"]["hits_stored"] > before
        )


def test_lost_agent_is_shown_lost(tmp_path, processes, start_agent):
    hub = HubProcess(tmp_path, extra=["--lost-after", "1"]).start()
    processes.append(hub)
    agent = start_agent(hub)
    agent.stop(signal.SIGKILL)
    with hub.client() as http:

        def lost() -> bool:
            agents = http.get("/v1/agents").json()["agents"]
            return any(a["pid"] == agent.pid and a["status"] == "lost" for a in agents)

        wait_until(lost, timeout=10)


def test_tokens(tmp_path, processes, start_agent):
    hub = HubProcess(tmp_path, token="user-secret", agent_token="agent-secret").start()
    processes.append(hub)
    start_agent(hub)
    with httpx.Client(base_url=hub.url) as anon:
        assert anon.get("/v1/agents").status_code == 401
        assert anon.post("/v1/agents/register", json={}).status_code == 401
    with hub.client(token="agent-secret") as agent_http:
        response = agent_http.get("/v1/agents")
        assert response.status_code == 403
        assert "user token" in response.json()["message"]
    with hub.client(token="wrong") as bad:
        assert bad.get("/v1/actions").status_code == 401
    with hub.client(token="user-secret") as http:
        assert len(http.get("/v1/agents").json()["agents"]) == 1


def test_malformed_and_oversized_requests_get_clear_4xx(hub):
    agent = FakeAgent(hub)
    agent_id = agent.id
    with agent.client() as http:
        cases = [
            (
                http.post(
                    "/v1/agents/register",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                ),
                400,
                "not valid JSON",
            ),
            (http.post("/v1/agents/register", json={"protocol": 1}), 400, "instance_id"),
            (
                http.post(
                    "/v1/agents/register",
                    json={"protocol": 9, "instance_id": "abcd", "service": "x"},
                ),
                400,
                "protocol",
            ),
            (
                http.post(
                    f"/v1/agents/{agent_id}/events",
                    json={"batch": 1, "events": [{"type": "bogus", "action": "a"}]},
                ),
                400,
                "events.0.type",
            ),
            (
                http.post("/v1/agents/nope/events", json={"batch": 1, "events": []}),
                404,
                "register again",
            ),
            (
                http.post(
                    "/v1/agents/register",
                    content=b"x" * (2 << 20),
                    headers={"content-type": "application/json"},
                ),
                413,
                "limit",
            ),
            (
                http.post(
                    f"/v1/agents/{agent_id}/events",
                    content=gzip.compress(b" " * (9 << 20)),
                    headers={"content-type": "application/json", "content-encoding": "gzip"},
                ),
                413,
                "inflates",
            ),
            (
                http.post(
                    f"/v1/agents/{agent_id}/events",
                    content=b"{}",
                    headers={"content-type": "application/json", "content-encoding": "br"},
                ),
                415,
                "gzip",
            ),
            (
                http.post("/v1/actions", json={"kind": "log", "location": "a.py:1"}),
                400,
                "needs a message",
            ),
            (
                http.post("/v1/actions", json={"kind": "teleport", "location": "a.py:1"}),
                400,
                "kind",
            ),
            (
                http.post(
                    "/v1/actions",
                    json={"kind": "counter", "location": "a.py:1", "target": "nonsense"},
                ),
                400,
                "target",
            ),
            (http.get("/v1/actions/a-missing/hits"), 404, "no action"),
            (http.get("/v1/nothing"), 404, "no such endpoint"),
        ]
        for response, status, words in cases:
            assert response.status_code == status, (response.request.url, response.text)
            assert words in response.json()["message"], response.text
        # The hub is still fine.
        assert http.get("/healthz").status_code == 200


def test_duplicate_batches_are_stored_once(hub):
    agent = FakeAgent(hub)
    with hub.client() as http:
        action = place(http, kind="counter", location="x.py:1", target=f"agent:{agent.id}", wait=0)
        batch = {
            "protocol": 1,
            "batch": 10**9,
            "events": [
                {"type": "log", "action": action["id"], "ts": time.time(), "message": "hello"}
            ],
        }
        with agent.client() as as_agent:
            first = as_agent.post(f"/v1/agents/{agent.id}/events", json=batch).json()
            second = as_agent.post(f"/v1/agents/{agent.id}/events", json=batch).json()
        assert first == {"accepted": 1, "duplicate": False, "refused": 0}
        assert second == {"accepted": 0, "duplicate": True, "refused": 0}
        hits = http.get(f"/v1/actions/{action['id']}/hits").json()["hits"]
        assert [h["message"] for h in hits if h["type"] == "log"] == ["hello"]


def test_kill_9_mid_upload_loses_nothing_acknowledged(tmp_path, processes, start_agent):
    hub = HubProcess(tmp_path).start()
    processes.append(hub)
    # Under the engine-wide cap of 1,000 events/s, so the agent drops nothing itself.
    start_agent(hub, pause=0.002)
    with hub.client() as http:
        action = place(
            http,
            kind="log",
            location=f"trading_app/service.py:{ENTRY_LINE}",
            message="n={request.user_id}",
            max_hits=900,
            rate_limit=100_000,
            wait=5,
        )
        wait_until(
            lambda: http.get(f"/v1/actions/{action['id']}").json()["action"]["hits_stored"] > 100
        )
    hub.stop(signal.SIGKILL)
    hub.start()
    with hub.client() as http:

        def all_stored() -> bool:
            row = http.get(f"/v1/actions/{action['id']}").json()["action"]
            return row["hits_stored"] >= 900

        wait_until(all_stored, timeout=60)
        messages: list[str] = []
        cursor = 0
        while True:
            page = http.get(
                f"/v1/actions/{action['id']}/hits", params={"after": cursor, "limit": 1000}
            ).json()
            if not page["hits"]:
                break
            messages += [h["message"] for h in page["hits"] if h["type"] == "log"]
            cursor = page["cursor"]
    assert len(messages) == 900  # under the per-action retention cap of 1,000
    assert len(set(messages)) == 900  # each hit once: nothing lost, nothing stored twice


def test_push_latency_is_reported_in_the_placement(hub, start_agent):
    start_agent(hub)
    with hub.client() as http:
        started = time.monotonic()
        action = place(
            http, kind="counter", location=f"trading_app/service.py:{ENTRY_LINE}", wait=10
        )
        elapsed = time.monotonic() - started
    assert action["agents"][0]["state"] == "installed"
    assert elapsed < 10  # answered, not timed out: the figure itself is in benchmarks/
    json.dumps(action)


FORKING_APP = """
import os, sys, time
sys.path.insert(0, {trading!r})
import runtime_agent
from trading_app.service import TradeExecutionService, TradeRequest

agent = runtime_agent.start()
service = TradeExecutionService()
while not agent.engine.actions():  # wait for the hub's action, then fork a worker
    service.execute_trade(TradeRequest("u", "ACME", 2))
    time.sleep(0.01)
child = os.fork()
while True:
    service.execute_trade(TradeRequest("u", "ACME", 2))
    time.sleep(0.01)
"""


def test_forked_worker_registers_itself_and_keeps_the_actions(hub, tmp_path, processes):
    import os
    import subprocess
    import sys

    from conftest import TRADING

    script = tmp_path / "forking.py"
    script.write_text(FORKING_APP.format(trading=str(TRADING)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    env.update(RUNTIME_AGENT_HUB=hub.url, RUNTIME_AGENT_SERVICE="workers")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    class Group:
        def stop(self, sig=None):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    processes.append(Group())
    with hub.client() as http:
        wait_until(lambda: agent_for(http, proc.pid))
        action = place(
            http,
            kind="counter",
            location=f"trading_app/service.py:{ENTRY_LINE}",
            target="service=workers",
            wait=5,
        )

        def two_installed() -> list:
            agents = http.get(f"/v1/actions/{action['id']}").json()["action"]["agents"]
            live = [a for a in agents if a["state"] == "installed"]
            return live if len(live) == 2 else []

        installed = wait_until(two_installed)
        pids = {a["pid"] for a in installed}
        assert proc.pid in pids and len(pids) == 2
        ids = {a["agent_id"] for a in installed}
        assert len(ids) == 2  # the worker is an agent of its own
