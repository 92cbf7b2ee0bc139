"""The MCP server: runtime-mcp's tools for coding assistants.

The same tools serve both transports: streamable HTTP at the hub's ``/mcp``
and ``runtime-mcp stdio``. They are thin and task-level, and talk to the hub's
user API, so what an assistant does is what the CLI does, with the same audit
trail. Every failure reaches the model as a tool error with a message that
says what to do next.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from runtime_mcp.client import AsyncHubClient, HubClientError
from runtime_mcp.results import (
    compare_rows,
    concise_hit,
    fit_page,
    summarize_results,
)

log = structlog.get_logger("runtime_mcp.mcp")
P = ParamSpec("P")
T = TypeVar("T")

INSTRUCTIONS = """\
runtime-mcp gives you live runtime context from running Python services, without a redeploy.
Typical investigation: list_agents -> get_source (see what the live process runs, and which
lines can carry actions) -> add_snapshot or add_log at the suspicious line, with a condition
that selects the interesting calls -> get_results with wait_seconds -> compare_snapshots ->
remove_actions when done. Actions are read-only, expire on their own (default 1 hour), and
values named like secrets are redacted."""

KIND_FOR_METRIC = {"count": "counter", "value": "metric", "duration": "duration"}

Location = Annotated[
    str,
    Field(
        min_length=3,
        max_length=1024,
        description="path/to/file.py:LINE (matched by path suffix against the live files), "
        "package.module:LINE, or for durations package.module:Qualname",
    ),
]
Condition = Annotated[
    str | None,
    Field(
        default=None,
        max_length=1000,
        description="Python expression over the frame's variables; the action fires only "
        "when it is true, e.g. 'total > 10000 and user.tier == \"gold\"'",
    ),
]
Target = Annotated[
    str,
    Field(
        default="all",
        max_length=512,
        description="which agents: 'all', 'service=NAME', tags like 'env=prod' (comma "
        "combines: 'service=trading,env=prod'), or 'agent:ID'",
    ),
]
Ttl = Annotated[
    float, Field(default=3600.0, gt=0, le=7 * 24 * 3600, description="seconds until it expires")
]


class AgentInfo(BaseModel):
    """One live (or recently lost) agent: a process of a service."""

    id: str
    service: str
    tags: dict[str, str]
    host: str | None
    pid: int | None
    python: str | None
    core: str | None = Field(
        description="which instrumentation core runs and why, e.g. 'monitoring (tool id 4)'"
    )
    code_version: str | None
    status: str = Field(description="live, or lost when it stopped talking to the hub")
    actions: int = Field(description="actions currently targeting it")
    last_seen_seconds_ago: float


class AgentList(BaseModel):
    agents: list[AgentInfo]
    summary: str


class AgentAnswer(BaseModel):
    """Where an action stands on one agent."""

    agent_id: str
    service: str | None
    state: str = Field(
        description="sent (no answer yet), installed, pending (module not "
        "imported yet), error, paused, exhausted, expired or removed"
    )
    file: str | None = None
    line: int | None = None
    hits: int = 0
    message: str = ""


class Placement(BaseModel):
    action_id: str
    kind: str
    location: str
    condition: str | None
    target: str
    agents: list[AgentAnswer]
    summary: str


class SourceView(BaseModel):
    agent_id: str
    file: str
    sha256: str = Field(description="SHA-256 of the live file: compare with your checkout")
    first_line: int
    last_line: int
    function: str | None
    text: str = Field(description="numbered lines; '>' marks lines where actions can go")
    actionable_lines: list[int]


class ActionInfo(BaseModel):
    action_id: str
    kind: str
    location: str
    condition: str | None
    target: str
    status: str = Field(description="active, expired or removed")
    expires_in_seconds: float
    hits_stored: int
    agents: list[AgentAnswer]


class ActionList(BaseModel):
    actions: list[ActionInfo]
    summary: str


class Removed(BaseModel):
    removed: list[str]
    summary: str


class Results(BaseModel):
    action_id: str
    kind: str
    status: str
    hits: list[dict[str, Any]]
    next_cursor: int = Field(description="pass as cursor to get the hits after these")
    more: bool = Field(description="true when more hits are stored after next_cursor")
    agents: list[AgentAnswer]
    summary: str


class Comparison(BaseModel):
    action_id: str
    columns: list[str] = Field(description="variables; the ones whose values differ come first")
    differing: list[str]
    rows: list[dict[str, str]]
    summary: str


def _answers(action: dict[str, Any]) -> list[AgentAnswer]:
    return [
        AgentAnswer(
            agent_id=a["agent_id"],
            service=a.get("service"),
            state=a["state"],
            file=a.get("file"),
            line=a.get("line"),
            hits=a.get("hits") or 0,
            message=a.get("message") or "",
        )
        for a in action.get("agents", [])
    ]


def _placement_summary(action: dict[str, Any], answers: list[AgentAnswer]) -> str:
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer.state] = counts.get(answer.state, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    text = f"{action['kind']} {action['id']} at {action['location']}: {parts or 'no agent'}."
    errors = {a.message for a in answers if a.state == "error" and a.message}
    if errors:
        text += " Errors: " + " | ".join(sorted(errors))
    if any(a.state == "sent" for a in answers):
        text += " Some agents have not answered yet; list_actions shows their state later."
    if any(a.state == "installed" for a in answers):
        text += f" Read results with get_results(action_id='{action['id']}', wait_seconds=...)."
    return text


class Tools:
    """The tool implementations, bound to one hub."""

    def __init__(self, hub_url: str, token: str | None, verify: bool = True) -> None:
        self.hub_url = hub_url
        self.token = token
        self.verify = verify

    @asynccontextmanager
    async def hub(self) -> AsyncIterator[AsyncHubClient]:
        client = AsyncHubClient(self.hub_url, self.token, verify=self.verify)
        try:
            yield client
        except HubClientError as exc:
            message = str(exc)
            if exc.code == "unknown_action":
                message += "; list_actions shows the ids"
            raise ToolError(message) from None
        finally:
            await client.aclose()

    async def list_agents(self, service: str | None, tags: str | None) -> AgentList:
        async with self.hub() as hub:
            data = (await hub.call("GET", "/v1/agents"))["agents"]
        wanted: dict[str, str] = {}
        for part in (tags or "").split(","):
            key, sep, value = part.partition("=")
            if part.strip() and not sep:
                raise ToolError(f"tags must look like env=prod,region=eu; got {part!r}")
            if sep:
                wanted[key.strip()] = value.strip()
        now = time.time()
        agents = [
            AgentInfo(
                id=a["id"],
                service=a["service"],
                tags=a["tags"],
                host=a.get("host"),
                pid=a.get("pid"),
                python=a.get("python"),
                core=a.get("core"),
                code_version=a.get("code_version"),
                status=a["status"],
                actions=a.get("actions", 0),
                last_seen_seconds_ago=round(max(0.0, now - (a.get("last_seen") or 0)), 1),
            )
            for a in data
            if (service is None or a["service"] == service)
            and all(a["tags"].get(k) == v for k, v in wanted.items())
        ]
        live = [a for a in agents if a.status == "live"]
        services = sorted({a.service for a in live})
        summary = (
            f"{len(live)} live agent(s) in {len(services)} service(s): {', '.join(services)}."
            if live
            else "No live agent matches. Start the service with 'runtime-agent run -- python "
            "app.py' or call runtime_agent.start() in it."
        )
        return AgentList(agents=agents, summary=summary)

    async def get_source(self, location: str, agent: str | None, context: int) -> SourceView:
        params: dict[str, Any] = {"location": location, "context": context}
        if agent:
            params["agent"] = agent
        async with self.hub() as hub:
            data = await hub.call("GET", "/v1/source", params=params, timeout=15)
        src = data["source"]
        width = len(str(src["last_line"]))
        text = "\n".join(
            f"{'>' if row['code'] else ' '}{row['n']:>{width}} | {row['text']}"
            for row in src["lines"]
        )
        return SourceView(
            agent_id=data["agent_id"],
            file=src["file"],
            sha256=src["sha256"],
            first_line=src["first_line"],
            last_line=src["last_line"],
            function=src.get("function"),
            text=text,
            actionable_lines=[r["n"] for r in src["lines"] if r["code"]],
        )

    async def place(self, spec: dict[str, Any]) -> Placement:
        spec = {k: v for k, v in spec.items() if v not in (None, [], "")}
        spec.setdefault("wait", 3.0)
        async with self.hub() as hub:
            action = (await hub.call("POST", "/v1/actions", json=spec))["action"]
        answers = _answers(action)
        return Placement(
            action_id=action["id"],
            kind=action["kind"],
            location=action["location"],
            condition=action.get("condition"),
            target=action["target"],
            agents=answers,
            summary=_placement_summary(action, answers),
        )

    async def list_actions(self) -> ActionList:
        async with self.hub() as hub:
            rows = (await hub.call("GET", "/v1/actions"))["actions"]
        now = time.time()
        actions = [
            ActionInfo(
                action_id=a["id"],
                kind=a["kind"],
                location=a["location"],
                condition=a.get("condition"),
                target=a["target"],
                status=a["status"],
                expires_in_seconds=round(max(0.0, a["expires_at"] - now), 1),
                hits_stored=a.get("hits_stored", 0),
                agents=_answers(a),
            )
            for a in rows
        ]
        summary = f"{len(actions)} action(s)." if actions else "No actions are placed."
        return ActionList(actions=actions, summary=summary)

    async def remove(self, ids: list[str] | None, remove_all: bool) -> Removed:
        if remove_all == bool(ids):
            raise ToolError("pass either action ids or all=true (not both)")
        removed: list[str] = []
        async with self.hub() as hub:
            if remove_all:
                removed = (await hub.call("DELETE", "/v1/actions"))["removed"]
            else:
                for action_id in ids or []:
                    removed += (await hub.call("DELETE", f"/v1/actions/{action_id}"))["removed"]
        return Removed(
            removed=removed, summary=f"Removed {len(removed)} action(s); the code is restored."
        )

    async def get_results(
        self,
        ctx: Context | None,
        action_id: str,
        wait_seconds: float,
        min_hits: int,
        cursor: int,
        fmt: str,
    ) -> Results:
        deadline = time.monotonic() + wait_seconds
        collected: list[dict[str, Any]] = []
        page_size = 25 if fmt == "concise" else 5
        async with self.hub() as hub:
            while True:
                left = max(0.0, deadline - time.monotonic())
                page = await hub.call(
                    "GET",
                    f"/v1/actions/{action_id}/hits",
                    params={
                        "after": cursor,
                        "limit": page_size - len(collected),
                        "wait": min(left, 5.0),
                        "min_hits": min_hits - len(collected),
                    },
                    timeout=min(left, 5.0) + 30,
                )
                collected += page["hits"]
                cursor = page["cursor"]
                action = page["action"]
                done = len(collected) >= min(min_hits, page_size) or len(collected) >= page_size
                if done or time.monotonic() >= deadline or action["status"] != "active":
                    break
                if ctx is not None:
                    await ctx.report_progress(
                        len(collected),
                        min_hits,
                        f"{len(collected)}/{min_hits} hits so far for {action_id}",
                    )
            more = (
                await hub.call(
                    "GET", f"/v1/actions/{action_id}/hits", params={"after": cursor, "limit": 1}
                )
            )["hits"] != []
        rows = [concise_hit(h) if fmt == "concise" else h for h in collected]
        rows, cut = fit_page(rows)
        if cut:
            cursor = collected[len(rows) - 1]["seq"] if rows else cursor
            more = True
        answers = _answers(action)
        return Results(
            action_id=action_id,
            kind=action["kind"],
            status=action["status"],
            hits=rows,
            next_cursor=cursor,
            more=more,
            agents=answers,
            summary=summarize_results(action, rows, more, wait_seconds),
        )

    async def compare(self, action_id: str, variables: list[str] | None) -> Comparison:
        hits: list[dict[str, Any]] = []
        cursor = 0
        async with self.hub() as hub:
            while len(hits) < 200:
                page = await hub.call(
                    "GET",
                    f"/v1/actions/{action_id}/hits",
                    params={"after": cursor, "limit": 100},
                )
                snaps = [h for h in page["hits"] if h["type"] == "snapshot"]
                hits += snaps
                if not page["hits"]:
                    break
                cursor = page["cursor"]
        if not hits:
            raise ToolError(
                f"action {action_id} has no snapshot hits yet; wait with "
                "get_results(wait_seconds=...) first, or check its condition"
            )
        columns, differing, rows = compare_rows(hits, variables)
        if variables and not columns:
            raise ToolError(f"none of {', '.join(variables)} appear in the snapshots")
        same = [c for c in columns if c not in differing]
        summary = (
            f"{len(rows)} snapshot(s). Differ across hits: {', '.join(differing) or 'none'}"
            f". Same in every hit: {', '.join(same[:15]) or 'none'}."
        )
        return Comparison(
            action_id=action_id, columns=columns, differing=differing, rows=rows, summary=summary
        )


def _never_bare(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A tool whose unexpected failures still reach the model as a useful message.

    The SDK turns any exception but ToolError into a bare "Error executing
    tool X"; this names what failed and what to do instead.
    """

    @functools.wraps(func)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except ToolError:
            raise
        except Exception as exc:
            log.exception("tool failed", tool=func.__name__)
            raise ToolError(
                f"{func.__name__} failed inside runtime-mcp ({type(exc).__name__}: {exc}); "
                "this is a bug, the hub's log has the details. Retrying will not help; "
                "the CLI (runtime-mcp) offers the same operations."
            ) from exc

    return tool


def build_server(hub_url: str, token: str | None, verify: bool = True) -> MCPServer:
    """The MCP server with every runtime-mcp tool, talking to the hub at ``hub_url``."""
    server = MCPServer(name="runtime-mcp", instructions=INSTRUCTIONS, version="0.1.0")
    tools = Tools(hub_url, token, verify)
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    placing = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    )

    @server.tool(annotations=read_only)
    @_never_bare
    async def list_agents(
        service: Annotated[str | None, Field(description="only this service")] = None,
        tags: Annotated[
            str | None, Field(description="only agents with these tags, e.g. 'env=prod,region=eu'")
        ] = None,
    ) -> AgentList:
        """List the live Python processes (agents) you can inspect: service, tags (env,
        region...), host, pid, Python version, code version and how many actions target each.
        Start here to learn which services and environments are running."""
        return await tools.list_agents(service, tags)

    @server.tool(annotations=read_only)
    @_never_bare
    async def get_source(
        location: Location,
        agent: Annotated[str | None, Field(description="agent id; default: any live one")] = None,
        context: Annotated[int, Field(ge=0, le=200, description="lines around LINE")] = 15,
    ) -> SourceView:
        """Show the source as the LIVE process has it, around file.py:LINE or the whole
        definition of package.module:Qualname. Lines marked '>' have code and can carry actions.
        Compare sha256 with your checkout: if it differs, line numbers may not match yours."""
        return await tools.get_source(location, agent, context)

    @server.tool(annotations=placing)
    @_never_bare
    async def add_log(
        location: Location,
        message: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4096,
                description="text with {expression} fields, e.g. "
                "'total={total} user={req.user_id}'",
            ),
        ],
        condition: Condition = None,
        target: Target = "all",
        max_hits: Annotated[int | None, Field(ge=1, le=100_000)] = None,
        ttl_seconds: Ttl = 3600.0,
    ) -> Placement:
        """Add a log line at a live code location, without a redeploy. Each time the line runs
        (and the condition holds) the message is rendered with the frame's values. Returns every
        matching agent's answer: installed (at which line), pending (module not imported yet)
        or an error such as 'no code at line 41; nearest lines with code: 40, 43'."""
        return await tools.place(
            {
                "kind": "log",
                "location": location,
                "message": message,
                "condition": condition,
                "target": target,
                "max_hits": max_hits,
                "ttl_seconds": ttl_seconds,
            }
        )

    @server.tool(annotations=placing)
    @_never_bare
    async def add_snapshot(
        location: Location,
        condition: Condition = None,
        watch: Annotated[
            list[str] | None,
            Field(max_length=20, description="extra expressions to capture, e.g. ['req.items[0]']"),
        ] = None,
        target: Target = "all",
        max_hits: Annotated[int, Field(ge=1, le=1000, description="snapshots to take")] = 1,
        ttl_seconds: Ttl = 3600.0,
    ) -> Placement:
        """Capture the stack, the local variables of the top frames and the watch expressions
        when a live code line runs (and the condition holds), up to max_hits times. Use a
        condition to catch the interesting calls, e.g. 'total > 10000'. Then call get_results
        or compare_snapshots."""
        return await tools.place(
            {
                "kind": "snapshot",
                "location": location,
                "condition": condition,
                "watch": watch or [],
                "target": target,
                "max_hits": max_hits,
                "ttl_seconds": ttl_seconds,
            }
        )

    @server.tool(annotations=placing)
    @_never_bare
    async def add_metric(
        location: Location,
        kind: Annotated[
            Literal["count", "value", "duration"],
            Field(
                description="count: how often the line runs; value: aggregate "
                "an expression; duration: time a function (location "
                "package.module:Qualname)"
            ),
        ] = "count",
        expression: Annotated[
            str | None, Field(max_length=1000, description="for kind=value, e.g. 'len(cart.items)'")
        ] = None,
        condition: Condition = None,
        target: Target = "all",
        ttl_seconds: Ttl = 3600.0,
    ) -> Placement:
        """Measure without logging every hit: a counter, a value's distribution (count, min,
        max, mean, p50, p90, p99) or a function's duration in ms, aggregated inside the process
        and reported every 10 seconds."""
        if kind == "value" and not expression:
            raise ToolError("kind='value' needs an expression, e.g. expression='len(cart.items)'")
        if kind != "value" and expression:
            raise ToolError(f"expression goes with kind='value', not kind='{kind}'")
        return await tools.place(
            {
                "kind": KIND_FOR_METRIC[kind],
                "location": location,
                "expression": expression,
                "condition": condition,
                "target": target,
                "ttl_seconds": ttl_seconds,
            }
        )

    @server.tool(annotations=read_only)
    @_never_bare
    async def list_actions() -> ActionList:
        """List the actions placed and where each stands on each agent (installed, pending,
        error with the reason, exhausted, expired), with their hit counts."""
        return await tools.list_actions()

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    async def remove_actions(
        ids: Annotated[list[str] | None, Field(description="action ids to remove")] = None,
        all: Annotated[bool, Field(description="remove every action")] = False,
    ) -> Removed:
        """Remove actions from the live processes (their code is restored exactly). Do this
        when an investigation is over; actions also expire on their own."""
        return await tools.remove(ids, all)

    @server.tool(annotations=read_only)
    @_never_bare
    async def get_results(
        action_id: str,
        ctx: Context,
        wait_seconds: Annotated[
            float, Field(ge=0, le=300, description="wait up to this long for min_hits hits")
        ] = 0.0,
        min_hits: Annotated[int, Field(ge=1, le=100)] = 1,
        cursor: Annotated[int, Field(ge=0, description="next_cursor of the previous page")] = 0,
        format: Annotated[
            Literal["concise", "detailed"],
            Field(
                description="concise: short values; detailed: everything "
                "captured, fewer hits per page"
            ),
        ] = "concise",
    ) -> Results:
        """Read an action's results: log lines, snapshots, metric aggregates, oldest first and
        paginated (pass next_cursor back as cursor). With wait_seconds it waits until min_hits
        hits have arrived, reporting progress meanwhile."""
        return await tools.get_results(ctx, action_id, wait_seconds, min_hits, cursor, format)

    @server.tool(annotations=read_only)
    @_never_bare
    async def compare_snapshots(
        action_id: str,
        variables: Annotated[
            list[str] | None,
            Field(description="only these variables (locals or watch expressions)"),
        ] = None,
    ) -> Comparison:
        """Line up an action's snapshots: one row per hit, one column per variable, the
        columns whose values differ between hits first. Good for spotting what distinguishes
        the failing calls."""
        return await tools.compare(action_id, variables)

    return server


__all__ = ["build_server"]
