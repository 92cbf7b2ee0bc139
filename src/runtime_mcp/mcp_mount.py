"""The hub's ``/mcp`` endpoint, built in the background once the hub listens.

Importing the MCP SDK and building its tool models takes most of a hub's
start (about 1.5 s of 2 on an idle machine, far more on a loaded one), and
agents and the REST API need none of it. So the hub binds and answers agents
at once, and ``McpMount`` builds the MCP server on a worker thread from the
hub's lifespan. A request to ``/mcp`` that arrives before it is ready waits
for it (up to ``READY_TIMEOUT``); if the build failed, the request gets the
hub's one error shape (503) naming the cause, and the rest of the hub keeps
working.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from starlette.requests import Request

from runtime_mcp.auth import USER, AuthError, Tokens
from runtime_mcp.responses import error_response

log = structlog.get_logger("runtime_mcp.mcp_mount")

#: Seconds a request to /mcp waits for the MCP server to be built.
READY_TIMEOUT = 60.0
PATH = "/mcp"


class McpMount:
    """A raw ASGI endpoint for ``/mcp`` whose MCP server is built lazily.

    A class, not a function: Starlette runs a plain function endpoint as a
    request handler, and an object as a raw ASGI app, which the SDK needs.
    ``/mcp`` needs the user token when the hub has one; that check needs no
    SDK, so it answers at once.
    """

    def __init__(self, hub_url: str, token: str | None, verify: bool, tokens: Tokens) -> None:
        self._hub_url = hub_url
        self._token = token
        self._verify = verify
        self._tokens = tokens
        self._ready = anyio.Event()
        self._endpoint: Any = None
        self._failure: str | None = None

    def _build(self) -> tuple[Any, Any]:
        """The MCP server and its streamable-HTTP endpoint (runs on a worker thread)."""
        from mcp.server.transport_security import TransportSecuritySettings
        from starlette.routing import Route

        from runtime_mcp.mcp_server import build_server

        server = build_server(self._hub_url, self._token, verify=self._verify)
        # The hub's browser guard checks Host and Origin for /mcp as for every
        # other endpoint: one mechanism, one error shape.
        app = server.streamable_http_app(
            streamable_http_path=PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        endpoint = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == PATH)
        return server, endpoint

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Build the MCP server in the background; run its session manager until shutdown."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._serve)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def _serve(self) -> None:
        try:
            server, endpoint = await anyio.to_thread.run_sync(self._build)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"[:500]
            log.error("the MCP endpoint could not be built", error=self._failure)
            self._ready.set()
            return
        async with server.session_manager.run():
            self._endpoint = endpoint
            self._ready.set()
            await anyio.sleep_forever()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            self._tokens.check(Request(scope, receive), USER)
        except AuthError as exc:
            await error_response(exc.status, exc.code, str(exc))(scope, receive, send)
            return
        if not self._ready.is_set():
            with anyio.move_on_after(READY_TIMEOUT):
                await self._ready.wait()
        if self._endpoint is None:
            reason = self._failure or f"not ready after {READY_TIMEOUT:.0f} s"
            await error_response(
                503,
                "mcp_unavailable",
                f"the hub's MCP endpoint is unavailable ({reason}); the REST API and agents "
                "still work; see the hub's log and restart it",
            )(scope, receive, send)
            return
        await self._endpoint(scope, receive, send)
