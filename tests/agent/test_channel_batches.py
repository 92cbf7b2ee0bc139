"""The channel's batches: bounded in bytes, split when the hub refuses one as too
large, and a refused event dropped and counted instead of holding up the rest."""

from __future__ import annotations

from typing import Any

from runtime_agent import Engine
from runtime_agent.channel import MAX_BATCH, MAX_BATCH_BYTES, Channel
from runtime_agent.config import AgentConfig
from runtime_agent.hubclient import HubError, encode


class Hub:
    """Takes at most ``room`` events a batch (413 past it) and refuses (400) any batch
    holding an event marked bad, as the real hub would refuse its field."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.stored: list[int] = []
        self.batches: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: dict[str, Any], token: Any = None) -> dict:
        events = body["events"]
        if len(events) > self.room:
            raise HubError(413, "too_large", "body over the limit")
        if any(e.get("bad") for e in events):
            raise HubError(400, "bad_request", "events.0.line: bad")
        self.batches.append(body)
        self.stored += [e["n"] for e in events]
        return {"accepted": len(events)}


def channel_with(events: list[dict[str, Any]], hub: Hub, engine: Engine) -> Channel:
    channel = Channel(engine, AgentConfig(hub="http://127.0.0.1:9", token=None, service="t"))
    channel._upload = hub  # type: ignore[assignment]
    channel.agent_id = "ag-1"
    channel._reports = list(events)
    return channel


def test_a_batch_too_large_is_split_and_a_refused_event_is_dropped_and_counted():
    events = [{"type": "log", "action": "a", "message": "m", "n": n} for n in range(40)]
    events[17]["bad"] = True
    hub = Hub(room=8)
    with Engine() as engine:
        channel = channel_with(events, hub, engine)
        channel._ship(force=True)
        assert channel._pending is None and not channel._reports
    assert hub.stored == [n for n in range(40) if n != 17]  # in order, nothing twice
    assert "refused an event" in channel.last_error
    # The drop is reported once, in a batch sent after it.
    assert sum(batch["dropped"] for batch in hub.batches) == 1


def test_batches_are_cut_by_bytes_before_the_hub_has_to_refuse_them():
    big = "x" * 100_000
    events = [
        {"type": "snapshot", "action": "a", "locals": {"v": {"type": "str", "value": big}}, "n": n}
        for n in range(30)
    ] + [{"type": "log", "action": "a", "message": "m", "n": 30 + n} for n in range(600)]
    hub = Hub(room=10_000)
    with Engine() as engine:
        channel = channel_with(events, hub, engine)
        channel._ship(force=True)
    assert hub.stored == list(range(630))
    for batch in hub.batches:
        assert len(batch["events"]) <= MAX_BATCH
        assert len(encode(batch)) <= MAX_BATCH_BYTES + 110_000  # one event past the mark
