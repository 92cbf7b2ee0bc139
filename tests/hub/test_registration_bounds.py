"""Registration flooding: whoever may register (the agent token's holders, or anyone
on an open loopback hub) cannot fill the hub's memory or store with agents.

Before: every registration under a new instance id added an agent record, in
memory and in SQLite, without bound; departed agents stayed for 10 minutes.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from conftest import FakeAgent, HubProcess, wait_until
from runtime_mcp.settings import HubSettings
from runtime_mcp.store import BATCHES_KEPT, Store


def register(hub: HubProcess, instance_id: str, **fields: object) -> httpx.Response:
    body = {"protocol": 1, "instance_id": instance_id, "service": "flood", **fields}
    return httpx.post(f"{hub.url}/v1/agents/register", json=body, timeout=10)


def stored_agents(hub: HubProcess) -> int:
    with sqlite3.connect(hub.db) as db:
        return int(db.execute("SELECT COUNT(*) FROM agents").fetchone()[0])


def depart(agent: FakeAgent) -> None:
    """Drop a long poll mid-wait, as a process that dies does: the hub shows it lost."""
    version = agent.poll()["version"]
    with pytest.raises(httpx.TimeoutException), agent.client() as http:
        params = {"version": version, "wait": 20}
        http.get(f"/v1/agents/{agent.id}/actions", params=params, timeout=0.3)


def status_of(hub: HubProcess, agent_id: str) -> str | None:
    with hub.client() as http:
        agents = http.get("/v1/agents").json()["agents"]
    return next((a["status"] for a in agents if a["id"] == agent_id), None)


def test_registrations_are_bounded_by_count_and_rate(tmp_path, processes):
    """One hub for both bounds (a hub start costs seconds): 3 records, 4 new a minute."""
    hub = HubProcess(tmp_path, extra=["--max-agents", "3", "--max-registrations", "4"]).start()
    processes.append(hub)
    agents = [FakeAgent(hub) for _ in range(3)]
    refused = register(hub, "one-too-many")
    assert refused.status_code == 429
    body = refused.json()
    assert set(body) == {"error", "message"} and body["error"] == "too_many_agents"
    assert "--max-agents 3" in body["message"]
    assert stored_agents(hub) == 3
    # A live agent registering again under its own record is not refused.
    again = agents[0].register(credential=agents[0].credential)
    assert again.status_code == 200 and again.json()["agent_id"] == agents[0].id

    depart(agents[1])
    wait_until(lambda: status_of(hub, agents[1].id) == "lost")
    admitted = register(hub, "after-departure")
    assert admitted.status_code == 200, admitted.text
    # The departed agent was reaped to make room: gone from the list and the store,
    # and its credential no longer speaks for it.
    assert status_of(hub, agents[1].id) is None
    assert stored_agents(hub) == 3
    with agents[1].client() as http:
        assert http.post(f"/v1/agents/{agents[1].id}/heartbeat", json={"protocol": 1}).is_error

    # Four new records this minute (the refused one did not count): the window is full
    # even though a lost agent could be reaped.
    depart(agents[2])
    wait_until(lambda: status_of(hub, agents[2].id) == "lost")
    refused = register(hub, "burst-over")
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_registrations"
    assert "--max-registrations 4" in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert status_of(hub, agents[2].id) == "lost"  # nothing reaped for a refused one
    # Re-registering a known record adds nothing, so the window does not refuse it.
    again = agents[0].register(credential=agents[0].credential)
    assert again.status_code == 200 and again.json()["agent_id"] == agents[0].id


def test_batch_numbers_kept_for_deduplication_are_bounded():
    store = Store(":memory:")
    for batch in range(1, 3 * BATCHES_KEPT):
        store.ingest("ag-1", batch, [], set())
    kept = store._read("SELECT COUNT(*) FROM batches WHERE agent_id = 'ag-1'")[0][0]
    assert kept <= BATCHES_KEPT
    # The recent ones still deduplicate a resent batch.
    assert store.ingest("ag-1", 3 * BATCHES_KEPT - 1, [], set()) == (0, True)
    # A batch numbered far above the rest cannot pin old rows in place.
    store.ingest("ag-1", 10**9, [], set())
    for batch in range(10**9 - 5 * BATCHES_KEPT, 10**9, 7):
        store.ingest("ag-1", batch, [], set())
    kept = store._read("SELECT COUNT(*) FROM batches WHERE agent_id = 'ag-1'")[0][0]
    assert kept <= BATCHES_KEPT


def test_a_forgotten_agent_leaves_no_rows_behind():
    store = Store(":memory:")
    store.upsert_agent({"id": "ag-1", "instance_id": "inst1", "service": "s", "tags": {}}, "h")
    store.add_action(
        {"id": "a-1", "kind": "counter", "location": "x.py:1", "target": "all", "expires_at": 1e12},
        ["ag-1"],
        "user",
    )
    store.ingest("ag-1", 1, [], set())
    store.forget_agent("ag-1")
    for table in ("agents", "batches", "action_agents"):
        assert store._read(f"SELECT COUNT(*) FROM {table}")[0][0] == 0, table


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("max_agents", 0, "--max-agents"), ("max_registrations", 0, "--max-registrations")],
)
def test_limits_below_one_are_refused(field, value, flag):
    refusal = HubSettings(**{field: value}).check_limits()
    assert refusal is not None and flag in refusal
    assert HubSettings().check_limits() is None


def test_registration_churn_cannot_flush_what_people_did_from_the_audit_trail():
    """At 600 new agents a minute, each reaping a lost one, agents add 1,200 audit
    entries a minute: they must go before the record of placements and removals."""
    store = Store(":memory:")
    store.record("user@127.0.0.1", "place", {"kind": "snapshot"}, action_id="a-1")
    for n in range(50):
        store.record(f"agent:ag-{n}", "register", {}, agent_id=f"ag-{n}")
        store.record("hub", "reap", {}, agent_id=f"ag-{n}")
    store.record("user@127.0.0.1", "remove", {}, action_id="a-1")
    assert store.trim_audit(max_rows=20, max_age=86400) == 82
    kept = store.audit(limit=100)
    assert [(e["op"], e["action_id"]) for e in kept if e["actor"].startswith("user")] == [
        ("place", "a-1"),
        ("remove", "a-1"),
    ]
    assert len(kept) == 20 and kept[-2]["op"] == "reap"  # the newest agents' entries stay
    # Only when people's entries alone pass the cap do the oldest of them go.
    for _ in range(30):
        store.record("user@127.0.0.1", "place", {}, action_id="a-2")
    store.trim_audit(max_rows=20, max_age=86400)
    kept = store.audit(limit=100)
    assert len(kept) == 20 and all(e["actor"].startswith("user") for e in kept)


def test_an_agent_reaped_while_its_poll_waits_gets_an_empty_answer_not_a_500():
    """A poll may wait 30 s, twice the silence after which an agent shows as lost: at
    the cap its record can be reaped meanwhile (before: KeyError in ``desired``)."""
    import anyio

    from runtime_mcp.hub import Hub

    hub = Hub(Store(":memory:"), lost_after=0.05, max_agents=1)
    info = {"service": "s", "tags": {}}
    first, _ = hub.register({**info, "instance_id": "first1"})

    async def scenario() -> dict:
        async with anyio.create_task_group() as tasks:
            reply: dict = {}

            async def poll() -> None:
                reply.update(await hub.poll(first, hub.generation, wait=5))

            tasks.start_soon(poll)
            await anyio.sleep(0.2)  # silent past lost_after, its poll still open
            await anyio.to_thread.run_sync(hub.register, {**info, "instance_id": "second"})
            hub._bump()  # an action change wakes every poll
        return reply

    reply = anyio.run(scenario)
    assert reply["changed"] is True and reply["actions"] == []
    assert not hub.known(first) and first not in hub._seen
