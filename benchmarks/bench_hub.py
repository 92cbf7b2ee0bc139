"""Hub figures, measured on loopback in one run.

Usage: python benchmarks/bench_hub.py [--quick]

1. Placement latency: the user API call until every matching agent reports
   ``installed`` (real agent processes), p50 and p90 (target p50 < 50 ms).
2. Hit-to-visible latency: a hit in the agent until the hits endpoint returns
   it (target p50 < 250 ms).
3. Ingest rate with 200 simulated agents registered and uploading batches
   concurrently (target >= 20,000 hits/s on 2 cores), with the hub's CPU and
   memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

TRADING = Path(__file__).resolve().parents[1] / "examples" / "trading"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise SystemExit("timed out")


def proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds and resident MiB of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024
    return cpu, rss


AGENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {trading!r})
    import runtime_agent
    from trading_app.service import TradeExecutionService, TradeRequest
    runtime_agent.start()
    service = TradeExecutionService()
    while True:
        service.execute_trade(TradeRequest("u", "ACME", 3))
        time.sleep(0.005)
    """
)


def placement_and_visibility(hub: str, tmp: Path, rounds: int) -> None:
    script = tmp / "agent.py"
    script.write_text(AGENT.format(trading=str(TRADING)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    env.update(RUNTIME_AGENT_HUB=hub, RUNTIME_AGENT_SERVICE="bench")
    agents = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        with httpx.Client(base_url=hub, timeout=30) as http:
            wait_until(
                lambda: (
                    len(
                        [
                            a
                            for a in http.get("/v1/agents").json()["agents"]
                            if a["status"] == "live"
                        ]
                    )
                    == 3
                )
            )
            line = next(
                n
                for n, text in enumerate(
                    (TRADING / "trading_app" / "service.py").read_text().splitlines(), 1
                )
                if "total = round(" in text
            )
            place, visible = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                action = http.post(
                    "/v1/actions",
                    json={
                        "kind": "log",
                        "location": f"trading_app/service.py:{line}",
                        "message": "t={total}",
                        "target": "service=bench",
                        "wait": 10,
                    },
                ).json()["action"]
                place.append(time.perf_counter() - started)
                states = {a["state"] for a in action["agents"]}
                assert states == {"installed"}, action["agents"]
                # Each hit carries the agent's wall-clock time; poll the hits endpoint
                # and note how long after that each one became readable.
                cursor, deadline = 0, time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    page = http.get(
                        f"/v1/actions/{action['id']}/hits", params={"after": cursor, "limit": 1000}
                    ).json()
                    now = time.time()
                    visible += [now - h["ts"] for h in page["hits"] if h["type"] == "log"]
                    cursor = page["cursor"]
                    time.sleep(0.005)
                http.delete(f"/v1/actions/{action['id']}")
            report("placement until every agent installed (3 agents)", place, 0.050)
            report(
                "hit to visible in the hits endpoint (every hit of 1 s per round)", visible, 0.250
            )
    finally:
        for proc in agents:
            proc.kill()
            proc.wait()


def report(title: str, samples: list[float], target: float) -> None:
    ms = sorted(s * 1000 for s in samples)
    p50 = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    verdict = "meets" if p50 / 1000 <= target else "MISSES"
    print(
        f"  {title}: p50 {p50:.1f} ms, p90 {p90:.1f} ms over {len(ms)} "
        f"({verdict} the p50 target of {target * 1000:.0f} ms)"
    )


async def ingest(hub: str, agents: int, seconds: float, batch_size: int) -> None:
    limits = httpx.Limits(max_connections=agents, max_keepalive_connections=agents)
    async with httpx.AsyncClient(base_url=hub, timeout=60, limits=limits) as http:
        ids = []
        for n in range(agents):
            reply = await http.post(
                "/v1/agents/register",
                json={
                    "protocol": 1,
                    "instance_id": f"bench{n:05d}{os.getpid()}",
                    "service": "ingest",
                    "tags": {"n": str(n)},
                },
            )
            ids.append(reply.json()["agent_id"])
        action = (
            await http.post(
                "/v1/actions",
                json={
                    "kind": "log",
                    "location": "ingest.py:1",
                    "message": "x",
                    "target": "service=ingest",
                    "wait": 0,
                },
            )
        ).json()["action"]
        stop = time.monotonic() + seconds
        sent = 0

        async def upload(agent_id: str) -> None:
            nonlocal sent
            batch = 0
            while time.monotonic() < stop:
                batch += 1
                events = [
                    {
                        "type": "log",
                        "action": action["id"],
                        "ts": time.time(),
                        "message": f"hit {batch}.{i}",
                    }
                    for i in range(batch_size)
                ]
                body = json.dumps({"protocol": 1, "batch": batch, "events": events})
                reply = await http.post(
                    f"/v1/agents/{agent_id}/events",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                if reply.status_code == 200:
                    sent += reply.json()["accepted"]

        started = time.monotonic()
        await asyncio.gather(*(upload(a) for a in ids))
        elapsed = time.monotonic() - started
    rate = sent / elapsed
    verdict = "meets" if rate >= 20_000 else "MISSES"
    print(
        f"  ingest with {agents} agents uploading batches of {batch_size}: "
        f"{rate:,.0f} hits/s stored ({verdict} the 20,000 hits/s target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime_mcp",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp / "hub.sqlite3"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: httpx.get(f"{hub}/healthz").status_code == 200)
        print(f"hub benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        placement_and_visibility(hub, tmp, 5 if args.quick else 30)
        cpu0, _ = proc_stats(proc.pid)
        started = time.monotonic()
        asyncio.run(ingest(hub, 20 if args.quick else 200, 2 if args.quick else 10, 500))
        cpu1, rss = proc_stats(proc.pid)
        share = (cpu1 - cpu0) / (time.monotonic() - started)
        print(f"  hub during ingest: {share * 100:.0f}% of one core, {rss:.0f} MiB resident")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
