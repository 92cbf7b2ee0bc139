"""An agent's batches fit what the hub accepts, and one the hub refuses never wedges
the channel (real hub process, in-process engine and channel).

Before: a batch over the hub's body limits (1 MiB compressed, 8 MiB inflated;
40 snapshots of random text make one) got 413 and was resent forever: no event of
any action reached the hub again.
"""

from __future__ import annotations

import random
import string

from conftest import HubProcess, wait_until
from runtime_agent import Engine
from runtime_agent.channel import Channel
from runtime_agent.config import AgentConfig

SNAPSHOTS = 40  # 87 kB each compressed: 3.5 MB in one batch before


def big_frame(seed: int) -> int:
    rng = random.Random(seed)
    # Random letters (they barely compress), as many as a snapshot captures.
    columns = [
        ["".join(rng.choices(string.ascii_letters, k=250)) for _ in range(100)] for _ in range(3)
    ]
    return len(columns)  # the snapshot's line


def line_of_return() -> int:
    return big_frame.__code__.co_firstlineno + 6


def test_an_oversized_backlog_is_split_and_delivered(tmp_path, processes):
    hub = HubProcess(tmp_path).start()
    processes.append(hub)
    # A CPU budget that the heavy snapshots in a row cannot exhaust.
    with Engine(cpu_budget=1.0) as engine:
        channel = Channel(engine, AgentConfig(hub.url, None, "batches"))
        channel.start()
        try:
            wait_until(lambda: channel.agent_id and channel.connected)
            with hub.client() as http:
                placed = http.post(
                    "/v1/actions",
                    json={
                        "kind": "snapshot",
                        "location": f"{__name__}:{line_of_return()}",
                        "max_hits": SNAPSHOTS,
                        "rate_limit": 10_000,
                        "target": f"agent:{channel.agent_id}",
                        "wait": 10,
                    },
                )
                assert placed.status_code == 201, placed.text
                action = placed.json()["action"]
                assert action["agents"][0]["state"] == "installed", action
            # The hub is out of reach while the backlog builds (the thread is held).
            channel._stop.set()
            assert channel._thread is not None
            channel._thread.join(timeout=30)
            for seed in range(SNAPSHOTS):
                big_frame(seed)
            channel.start()

            def stored() -> int:
                with hub.client() as http:
                    return http.get(f"/v1/actions/{action['id']}").json()["action"]["hits_stored"]

            try:
                wait_until(lambda: stored() == SNAPSHOTS, timeout=30)
            except AssertionError:
                raise AssertionError(
                    f"{stored()} of {SNAPSHOTS} stored; channel: {channel.last_error!r}; "
                    f"engine: {engine.stats()}; {engine.actions()}"
                ) from None
        finally:
            channel.stop(flush_timeout=0.2)
