"""The hub's HTTP app: the agent protocol and the user API (docs/protocol.md).

Every request first passes the browser guard (Host, Origin, Content-Type),
then its token or agent credential (``auth.py``). Every failure is a JSON
body ``{"error", "message"}`` (``responses.py``) with a 4xx status; no
malformed request reaches the store, and nothing acknowledged is lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runtime_mcp import protocol
from runtime_mcp.auth import AGENT, USER, AuthError, Tokens, bearer
from runtime_mcp.browserguard import Allowed, BrowserGuard
from runtime_mcp.hub import CapacityError, ClaimError, Hub, PlacementError, QueryError
from runtime_mcp.jsonbody import read_json
from runtime_mcp.responses import ApiError, JsonResponse, error_response
from runtime_mcp.selectors import SelectorError, parse_selector

log = structlog.get_logger("runtime_mcp.app")

SWEEP_EVERY = 2.0

Handler = Callable[[Request], Awaitable[Response]]


def parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate a body; ApiError(400) naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "bad_request", protocol.explain(exc)) from None


def number(request: Request, name: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter within bounds; ApiError(400) otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low:g} and {high:g}")
    return value


def create_app(
    hub: Hub,
    tokens: Tokens,
    extra_routes: list[Any] | None = None,
    lifespans: list[Any] | None = None,
    allowed: Allowed | None = None,
) -> Starlette:
    """The Starlette app serving ``hub``, answering only to ``allowed`` hosts and origins."""

    def guarded(needs: str | None, handler: Callable[..., Awaitable[Any]]) -> Handler:
        """``needs``: USER or AGENT (a shared token), or None: the agent's own credential."""

        async def endpoint(request: Request) -> Response:
            try:
                role = tokens.check(request, needs) if needs else AGENT
                result = await handler(request, role)
            except AuthError as exc:
                return error_response(exc.status, exc.code, str(exc))
            except ApiError as exc:
                return error_response(exc.status, exc.code, str(exc), exc.headers)
            except Exception:
                log.exception("request failed", path=request.url.path)
                return error_response(
                    500, "internal", "the hub failed on this request; see its log"
                )
            if isinstance(result, Response):
                return result
            return JsonResponse(result)

        return endpoint

    def agent_of(request: Request) -> str:
        """The agent a request to ``/v1/agents/{agent_id}/...`` comes from, proven by its
        credential; AuthError or ApiError otherwise."""
        agent_id = request.path_params["agent_id"]
        given = bearer(request)
        if not given:
            raise AuthError(
                401,
                "agent endpoints need the agent's own credential (the register reply's "
                "'credential'): send Authorization: Bearer <credential>",
            )
        if not hub.known(agent_id):
            raise ApiError(
                404, "unknown_agent", f"agent {agent_id[:80]} is not known; register again"
            )
        if not hub.authenticate(agent_id, given):
            raise AuthError(
                401, f"not the credential of agent {agent_id}; an agent registers to get its own"
            )
        return agent_id

    # -- agent protocol --------------------------------------------------------

    async def register(request: Request, role: str) -> dict[str, Any]:
        msg = parse(protocol.Register, await read_json(request))
        info = msg.model_dump(exclude={"protocol", "credential"})
        try:
            agent_id, credential = await anyio.to_thread.run_sync(
                hub.register, info, msg.credential
            )
        except ClaimError as exc:
            raise ApiError(409, "instance_claimed", str(exc)) from None
        except CapacityError as exc:
            retry = {"Retry-After": str(exc.retry_after)}
            raise ApiError(429, exc.code, str(exc), retry) from None
        return {
            "agent_id": agent_id,
            "credential": credential,
            "poll_seconds": 10,
            "heartbeat_seconds": 5,
            "max_batch_events": protocol.MAX_EVENTS_PER_BATCH,
        }

    async def poll(request: Request, role: str) -> Response | dict[str, Any]:
        agent_id = agent_of(request)
        version = int(number(request, "version", 0, 0, 2**62))
        wait = number(request, "wait", 0, 0, 60)
        reply: dict[str, Any] = {}

        async def answer() -> None:
            reply.update(await hub.poll(agent_id, version, wait))
            tasks.cancel_scope.cancel()

        async def watch_disconnect() -> None:
            # A process that dies drops its long poll: show it lost at once
            # instead of after the silence timeout (it re-polls at once if alive).
            while (await request.receive())["type"] != "http.disconnect":
                pass
            hub.gone(agent_id)
            tasks.cancel_scope.cancel()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer)
            tasks.start_soon(watch_disconnect)
        return reply if reply else Response(status_code=499)

    async def events(request: Request, role: str) -> dict[str, Any]:
        agent_id = agent_of(request)
        msg = parse(protocol.Batch, await read_json(request))
        items = [e.model_dump(exclude_unset=True) for e in msg.events]
        return await hub.ingest(agent_id, msg.batch, items, msg.dropped)

    async def answers(request: Request, role: str) -> dict[str, Any]:
        agent_id = agent_of(request)
        msg = parse(protocol.Answer, await read_json(request))
        payload = msg.model_dump(exclude={"protocol", "query"}, exclude_none=True)
        return {"accepted": hub.answer(agent_id, msg.query, payload)}

    async def source(request: Request, role: str) -> dict[str, Any]:
        location = request.query_params.get("location", "")
        if not location:
            raise ApiError(400, "bad_request", "give ?location=path/to/file.py:LINE")
        agent_id = request.query_params.get("agent") or None
        if agent_id is None:
            live = hub.matching(parse_selector(request.query_params.get("target")))
            if not live:
                raise ApiError(422, "no_matching_agent", f"no live agent; {hub.describe_live()}")
            agent_id = live[0]["id"]
        elif not hub.known(agent_id):
            raise ApiError(404, "unknown_agent", f"no agent {agent_id}; list agents first")
        context = int(number(request, "context", 15, 0, 200))
        try:
            result = await hub.query(agent_id, "source", {"location": location, "context": context})
        except QueryError as exc:
            raise ApiError(422, "agent_error", str(exc)) from None
        return {"agent_id": agent_id, "source": result}

    async def heartbeat(request: Request, role: str) -> dict[str, Any]:
        agent_id = agent_of(request)
        parse(protocol.Heartbeat, await read_json(request))
        hub.seen(agent_id)
        return {"ok": True}

    # -- user API --------------------------------------------------------------

    async def list_agents(request: Request, role: str) -> dict[str, Any]:
        include_lost = request.query_params.get("lost", "1") != "0"
        return {"agents": hub.agents(include_lost=include_lost)}

    async def list_actions(request: Request, role: str) -> dict[str, Any]:
        include_removed = request.query_params.get("removed", "0") == "1"
        rows = await anyio.to_thread.run_sync(hub.store.actions, include_removed)
        return {"actions": rows}

    async def place(request: Request, role: str) -> Response:
        msg = parse(protocol.ActionRequest, await read_json(request))
        try:
            action = await hub.place(msg.spec(), actor=f"{role}@{client(request)}", wait=msg.wait)
        except SelectorError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except PlacementError as exc:
            raise ApiError(422, "no_matching_agent", str(exc)) from None
        return JsonResponse({"action": action}, status_code=201)

    async def get_action(request: Request, role: str) -> dict[str, Any]:
        action = await anyio.to_thread.run_sync(hub.store.action, request.path_params["action_id"])
        if action is None:
            raise ApiError(404, "unknown_action", f"no action {request.path_params['action_id']}")
        return {"action": action}

    async def remove_one(request: Request, role: str) -> dict[str, Any]:
        action_id = request.path_params["action_id"]
        if await anyio.to_thread.run_sync(hub.store.action, action_id) is None:
            raise ApiError(404, "unknown_action", f"no action {action_id}")
        removed = await hub.remove([action_id], actor=f"{role}@{client(request)}")
        return {"removed": removed}

    async def remove_all(request: Request, role: str) -> dict[str, Any]:
        return {"removed": await hub.remove(None, actor=f"{role}@{client(request)}")}

    async def hits(request: Request, role: str) -> dict[str, Any]:
        action_id = request.path_params["action_id"]
        action = await anyio.to_thread.run_sync(hub.store.action, action_id)
        if action is None:
            raise ApiError(404, "unknown_action", f"no action {action_id}")
        after = int(number(request, "after", 0, 0, 2**62))
        limit = int(number(request, "limit", 100, 1, 1000))
        wait = number(request, "wait", 0, 0, 300)
        min_hits = int(number(request, "min_hits", 1, 1, 1000))
        deadline = anyio.current_time() + wait
        while True:
            rows = await anyio.to_thread.run_sync(hub.store.hits, action_id, after, limit)
            left = deadline - anyio.current_time()
            if len(rows) >= min(min_hits, limit) or left <= 0:
                break
            await hub.wait_activity(min(left, 1.0))
        cursor = rows[-1]["seq"] if rows else after
        action = await anyio.to_thread.run_sync(hub.store.action, action_id)
        return {"action": action, "hits": rows, "cursor": cursor}

    async def audit(request: Request, role: str) -> dict[str, Any]:
        limit = int(number(request, "limit", 200, 1, 10_000))
        action_id = request.query_params.get("action") or None
        return {"audit": await anyio.to_thread.run_sync(hub.store.audit, limit, action_id)}

    async def health(request: Request) -> Response:
        return JsonResponse({"ok": True, "agents": len(hub.agents(include_lost=False))})

    routes = [
        Route("/healthz", health),
        Route("/v1/agents/register", guarded(AGENT, register), methods=["POST"]),
        Route("/v1/agents/{agent_id}/actions", guarded(None, poll), methods=["GET"]),
        Route("/v1/agents/{agent_id}/events", guarded(None, events), methods=["POST"]),
        Route("/v1/agents/{agent_id}/heartbeat", guarded(None, heartbeat), methods=["POST"]),
        Route("/v1/agents/{agent_id}/answers", guarded(None, answers), methods=["POST"]),
        Route("/v1/source", guarded(USER, source), methods=["GET"]),
        Route("/v1/agents", guarded(USER, list_agents), methods=["GET"]),
        Route("/v1/actions", guarded(USER, list_actions), methods=["GET"]),
        Route("/v1/actions", guarded(USER, place), methods=["POST"]),
        Route("/v1/actions", guarded(USER, remove_all), methods=["DELETE"]),
        Route("/v1/actions/{action_id}", guarded(USER, get_action), methods=["GET"]),
        Route("/v1/actions/{action_id}", guarded(USER, remove_one), methods=["DELETE"]),
        Route("/v1/actions/{action_id}/hits", guarded(USER, hits), methods=["GET"]),
        Route("/v1/audit", guarded(USER, audit), methods=["GET"]),
        *(extra_routes or []),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for extra in lifespans or []:
                await stack.enter_async_context(extra())
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_sweeper, hub)
                yield
                tasks.cancel_scope.cancel()

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(
            404, "not_found", f"no such endpoint: {request.method} {request.url.path[:200]}"
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
        )

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed},
        middleware=[Middleware(BrowserGuard, allowed=allowed or Allowed())],
    )


def client(request: Request) -> str:
    """The caller's address, for the audit trail."""
    return request.client.host if request.client else "unknown"


async def _sweeper(hub: Hub) -> None:
    while True:
        await anyio.sleep(SWEEP_EVERY)
        try:
            await anyio.to_thread.run_sync(hub.sweep)
        except Exception:
            log.exception("sweep failed")


__all__ = ["ApiError", "create_app"]
