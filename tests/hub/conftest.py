"""Real processes on loopback: a hub (``runtime-mcp serve``) and agent processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TRADING = REPO / "examples" / "trading"
CLI = [sys.executable, "-m", "runtime_mcp"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float = 15.0, every: float = 0.05) -> object:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s; last: {last!r}")


def end_process(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Send ``sig`` to a still-running process and reap it, killing it after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class HubProcess:
    """A ``runtime-mcp serve`` subprocess."""

    def __init__(
        self,
        tmp: Path,
        token: str | None = None,
        agent_token: str | None = None,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "hub.sqlite3"
        self.token = token
        self.agent_token = agent_token
        self.extra = extra or []
        self.env = env or {}
        self.log = tmp / f"hub-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        args = [*CLI, "serve", "--port", str(self.port), "--db", str(self.db), *self.extra]
        if self.token:
            args += ["--token", self.token]
        if self.agent_token:
            args += ["--agent-token", self.agent_token]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_MCP_")}
        env.update(self.env)
        self.proc = subprocess.Popen(
            args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env
        )
        wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        end_process(self.proc, sig)
        self.proc = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


APP = textwrap.dedent(
    """
    import os, sys, time, random
    sys.path.insert(0, {trading!r})
    import runtime_agent
    from trading_app.service import TradeExecutionService, TradeRequest

    runtime_agent.start()
    service = TradeExecutionService()
    rng = random.Random(os.getpid())
    n = 0
    while True:
        n += 1
        qty = rng.choice([1, 5, 20, 200])
        service.execute_trade(TradeRequest(f"user-{{n}}", rng.choice(["ACME", "HOOLI"]), qty))
        time.sleep({pause})
    """
)


class AgentProcess:
    """A small service with the agent attached, as its own process."""

    def __init__(
        self,
        tmp: Path,
        hub: HubProcess,
        service: str,
        tags: str = "",
        pause: float = 0.005,
        token: str | None = None,
    ) -> None:
        self.script = tmp / f"app-{service}-{time.monotonic_ns()}.py"
        self.script.write_text(APP.format(trading=str(TRADING), pause=pause))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
        self.env.update(
            RUNTIME_AGENT_HUB=hub.url, RUNTIME_AGENT_SERVICE=service, RUNTIME_AGENT_TAGS=tags
        )
        if token or hub.agent_token:
            self.env["RUNTIME_AGENT_TOKEN"] = token or hub.agent_token or ""
        self.log = tmp / f"{self.script.stem}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script)],
            env=self.env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        end_process(self.proc, sig)


@pytest.fixture
def processes() -> Iterator[list[HubProcess | AgentProcess]]:
    """Everything a test starts; stopped at the end whatever happens."""
    started: list[HubProcess | AgentProcess] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop(signal.SIGKILL if isinstance(proc, AgentProcess) else signal.SIGTERM)


@pytest.fixture
def hub(tmp_path: Path, processes: list) -> HubProcess:
    proc = HubProcess(tmp_path).start()
    processes.append(proc)
    return proc


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub (no tokens) for the tests of a module that need no hub of their own."""
    proc = HubProcess(tmp_path_factory.mktemp("hub")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def start_agent(tmp_path: Path, processes: list) -> Callable[..., AgentProcess]:
    def start(
        hub: HubProcess,
        service: str = "trading",
        tags: str = "",
        wait: bool = True,
        **kwargs: object,
    ) -> AgentProcess:
        agent = AgentProcess(tmp_path, hub, service, tags, **kwargs).start()  # type: ignore[arg-type]
        processes.append(agent)
        if wait:
            with hub.client() as http:
                wait_until(lambda: agent_for(http, agent.pid))
        return agent

    return start


def agent_for(http: httpx.Client, pid: int) -> dict | None:
    """The live agent record of a process, if registered."""
    for agent in http.get("/v1/agents").json()["agents"]:
        if agent["pid"] == pid and agent["status"] == "live":
            return agent
    return None


class FakeAgent:
    """An agent the test speaks for over HTTP: registered, holding its credential."""

    def __init__(
        self,
        hub: HubProcess,
        service: str = "fake",
        token: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.hub = hub
        self.instance_id = instance_id or f"fake{time.monotonic_ns()}"
        self.service = service
        reply = self.register(token=token)
        assert reply.status_code == 200, reply.text
        self.id: str = reply.json()["agent_id"]
        self.credential: str = reply.json()["credential"]

    def register(self, token: str | None = None, **fields: object) -> httpx.Response:
        body = {"protocol": 1, "instance_id": self.instance_id, "service": self.service}
        body.update(fields)
        headers = {"Authorization": f"Bearer {token or self.hub.agent_token}"}
        if not (token or self.hub.agent_token):
            headers = {}
        return httpx.post(f"{self.hub.url}/v1/agents/register", json=body, headers=headers)

    def client(self, credential: str | None = None) -> httpx.Client:
        """An HTTP client speaking with this agent's credential (or another)."""
        return httpx.Client(
            base_url=self.hub.url,
            headers={"Authorization": f"Bearer {credential or self.credential}"},
            timeout=30,
        )

    def poll(self, version: int = 0, wait: float = 0) -> dict:
        with self.client() as http:
            reply = http.get(
                f"/v1/agents/{self.id}/actions", params={"version": version, "wait": wait}
            )
        assert reply.status_code == 200, reply.text
        return reply.json()


def line_of(text: str) -> int:
    """The line of ``text`` in the trading example's service.py."""
    source = (TRADING / "trading_app" / "service.py").read_text().splitlines()
    for number, line in enumerate(source, start=1):
        if text in line:
            return number
    raise LookupError(text)


def run_cli(
    *args: str, hub: HubProcess | None = None, token: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_MCP_")}
    if hub is not None:
        env["RUNTIME_MCP_HUB"] = hub.url
    if token:
        env["RUNTIME_MCP_TOKEN"] = token
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def cli_json(*args: str, hub: HubProcess, token: str | None = None) -> object:
    out = run_cli(*args, "--json", hub=hub, token=token)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
