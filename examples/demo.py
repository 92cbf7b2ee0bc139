"""`make demo`: why do trades over $10,000 skip the strict fraud check?

Starts a hub (embedded SQLite), two instances of the trading service with the
agent attached (``env=prod`` and ``env=preprod``) and a traffic generator, then
investigates the bug through an MCP client session, exactly as an assistant
would:

1. list the live agents;
2. a log in ``execute_trade`` showing user, symbol, quantity, price and total;
3. a conditional snapshot where the flag is decided (``total > 10000``, max 3
   hits, prod only), whose values show the high-value flag is still false;
4. the fix applied to preprod (restarted with the fixed code), and a log before
   the fraud check confirming the flag is now true there;
5. every action removed, and the audit trail.

Everything it starts is stopped, even on failure or Ctrl-C. Exits 0 only when
every step saw what it expected.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from mcp import Client

HERE = Path(__file__).resolve().parent
TRADING = HERE / "trading"
SERVICE_FILE = TRADING / "trading_app" / "service.py"


class DemoFailure(Exception):
    """A step did not see what it expected."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def line_of(text: str, path: Path = SERVICE_FILE) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise LookupError(text)


def say(text: str = "") -> None:
    print(text, flush=True)


class Processes:
    """Everything the demo starts, stopped in reverse order whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DemoFailure(f"{url} did not come up within {timeout:g}s")


def service_command(hub: str, env_tag: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runtime_agent",
        "run",
        "--hub",
        hub,
        "--service",
        "trading",
        "--tags",
        f"env={env_tag}",
        "--",
        sys.executable,
        "-m",
        "trading_app.server",
        "--port",
        str(port),
    ]


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    say(f"  -> {tool}({shown})")
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise DemoFailure(f"{tool} failed: {text}")
    data = result.structured_content or {}
    if data.get("summary"):
        say(f"  <- {data['summary']}")
    return data


async def wait_for_agent(client: Client, env_tag: str, not_pid: int | None = None) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = await client.call_tool("list_agents", {"tags": f"env={env_tag}"})
        agents = [
            a
            for a in (result.structured_content or {}).get("agents", [])
            if a["status"] == "live" and a["pid"] != not_pid
        ]
        if agents:
            return agents[0]
        await asyncio.sleep(0.2)
    raise DemoFailure(f"no live agent with env={env_tag} after 20s")


async def investigate(
    hub: str, procs: Processes, fixed_dir: Path, preprod_port: int, env: dict[str, str]
) -> None:
    flag_line = line_of("rules = self.fraud.review")
    total_line = line_of("high_value = False")
    async with Client(f"{hub}/mcp") as client:
        say("\n[1] Which services are live?")
        agents = await call(client, "list_agents", service="trading")
        for agent in agents["agents"]:
            say(
                f"      {agent['id']}  env={agent['tags'].get('env')}  pid {agent['pid']}  "
                f"Python {agent['python']}  core {agent['core']}"
            )
        if {a["tags"].get("env") for a in agents["agents"] if a["status"] == "live"} != {
            "prod",
            "preprod",
        }:
            raise DemoFailure("expected live prod and preprod agents")
        prod_pid = next(a["pid"] for a in agents["agents"] if a["tags"].get("env") == "prod")
        preprod_pid = next(a["pid"] for a in agents["agents"] if a["tags"].get("env") == "preprod")

        say("\n[2] What do trades look like inside execute_trade?")
        source = await call(
            client, "get_source", location="trading_app.service:TradeExecutionService.execute_trade"
        )
        for row in source["text"].splitlines():
            say(f"      {row}")
        log = await call(
            client,
            "add_log",
            location=f"trading_app/service.py:{total_line}",
            message="user={request.user_id} symbol={request.symbol} "
            "qty={request.quantity} price={price} total={total}",
            max_hits=5,
            target="service=trading,env=prod",
        )
        got = await call(
            client, "get_results", action_id=log["action_id"], wait_seconds=15, min_hits=5
        )
        for hit in got["hits"]:
            say(f"      log: {hit['message']}")
        if len(got["hits"]) < 5:
            raise DemoFailure("expected 5 log lines from prod")

        say("\n[3] Is the high-value flag set for trades over $10,000 in prod?")
        snap = await call(
            client,
            "add_snapshot",
            location=f"trading_app/service.py:{flag_line}",
            condition="total > 10000",
            max_hits=3,
            target="env=prod",
            watch=["high_value", "self.limits"],
        )
        got = await call(
            client, "get_results", action_id=snap["action_id"], wait_seconds=20, min_hits=3
        )
        if len(got["hits"]) != 3:
            raise DemoFailure(f"expected 3 snapshots, got {len(got['hits'])}")
        for hit in got["hits"]:
            total, flag = hit["locals"]["total"], hit["watch"]["high_value"]
            say(
                f"      snapshot: total={total} high_value={flag} "
                f"limits={hit['watch']['self.limits']}"
            )
            if flag != "false" or float(total) <= 10000:
                raise DemoFailure(
                    f"the snapshot did not show the bug: total={total} high_value={flag}"
                )
        compared = await call(
            client,
            "compare_snapshots",
            action_id=snap["action_id"],
            variables=["total", "high_value", "self.limits"],
        )
        say(f"      differ across hits: {compared['differing']}; high_value is false in every one")
        say(
            "      => the limit is looked up as limits['high_value_usd'], but the limits "
            "only have 'high_value':\n         the KeyError is swallowed, so the flag stays "
            "false and the lenient rules apply."
        )

        say("\n[4] Apply the fix to preprod and confirm")
        procs.stop("preprod")
        procs.start(
            "preprod-fixed",
            service_command(hub, "preprod", preprod_port),
            cwd=fixed_dir,
            env={**env, "PYTHONPATH": str(fixed_dir)},
        )
        say("  (preprod restarted from a copy with limits['high_value'])")
        wait_http(f"http://127.0.0.1:{preprod_port}/health")
        await wait_for_agent(client, "preprod", not_pid=preprod_pid)
        fixed_line = line_of("rules = self.fraud.review", fixed_dir / "trading_app" / "service.py")
        confirm = await call(
            client,
            "add_log",
            location=f"trading_app/service.py:{fixed_line}",
            message="total={total} high_value={high_value}",
            condition="total > 10000",
            max_hits=3,
            target="env=preprod",
        )
        got = await call(
            client, "get_results", action_id=confirm["action_id"], wait_seconds=20, min_hits=3
        )
        for hit in got["hits"]:
            say(f"      preprod log: {hit['message']}")
        if len(got["hits"]) != 3 or not all("high_value=True" in h["message"] for h in got["hits"]):
            raise DemoFailure("the fixed preprod did not show high_value=True")
        say(f"      prod (pid {prod_pid}) still runs the old code; preprod is fixed.")

        say("\n[5] Clean up")
        await call(client, "remove_actions", all=True)
        listed = await call(client, "list_actions")
        if any(a["status"] == "active" for a in listed["actions"]):
            raise DemoFailure("actions are still active after remove_actions")
    audit = httpx.get(f"{hub}/v1/audit", params={"limit": 40}).json()["audit"]
    say("  audit trail:")
    for entry in audit:
        stamp = time.strftime("%H:%M:%S", time.localtime(entry["ts"]))
        detail = entry["detail"].get("location") or entry["detail"].get("message") or ""
        say(
            f"      {stamp} {entry['actor']:<24} {entry['op']:<10} "
            f"{entry.get('action_id') or '-':<11} {detail}"
        )
    if not any(e["op"] == "remove" for e in audit):
        raise DemoFailure("the audit trail has no removals")


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="runtime-mcp-demo-"))
    procs = Processes(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_", "PYTHONPATH"))}
    hub_port, prod_port, preprod_port = free_port(), free_port(), free_port()
    hub = f"http://127.0.0.1:{hub_port}"
    fixed_dir = workdir / "trading-fixed"
    shutil.copytree(TRADING, fixed_dir, ignore=shutil.ignore_patterns("__pycache__"))
    fixed = fixed_dir / "trading_app" / "service.py"
    fixed.write_text(
        fixed.read_text().replace('self.limits["high_value_usd"]', 'self.limits["high_value"]')
    )
    code = 1
    try:
        say(f"runtime-mcp demo (logs in {workdir})")
        procs.start(
            "hub",
            [
                sys.executable,
                "-m",
                "runtime_mcp",
                "serve",
                "--port",
                str(hub_port),
                "--db",
                str(workdir / "hub.sqlite3"),
            ],
            env=env,
        )
        wait_http(f"{hub}/healthz")
        say(f"  hub on {hub}, MCP at {hub}/mcp")
        service_env = {**env, "PYTHONPATH": str(TRADING)}
        procs.start("prod", service_command(hub, "prod", prod_port), cwd=TRADING, env=service_env)
        procs.start(
            "preprod", service_command(hub, "preprod", preprod_port), cwd=TRADING, env=service_env
        )
        wait_http(f"http://127.0.0.1:{prod_port}/health")
        wait_http(f"http://127.0.0.1:{preprod_port}/health")
        procs.start(
            "traffic",
            [
                sys.executable,
                "-m",
                "trading_app.traffic",
                "--port",
                str(prod_port),
                "--port",
                str(preprod_port),
            ],
            cwd=TRADING,
            env=service_env,
        )
        say(f"  trading service: prod on :{prod_port}, preprod on :{preprod_port}; traffic running")
        asyncio.run(investigate(hub, procs, fixed_dir, preprod_port, service_env))
        code = 0
    except DemoFailure as exc:
        say(f"\nDEMO FAILED: {exc}")
        for name in ("hub", "prod", "preprod", "preprod-fixed"):
            tail = procs.tail(name, 8)
            if tail:
                say(f"--- {name} log ---\n{tail}")
    except KeyboardInterrupt:
        say("\ninterrupted")
        code = 130
    finally:
        procs.stop_all()
    if code == 0:
        say(f"\nDemo passed in {time.monotonic() - started:.1f}s: every step saw what it expected.")
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
