"""``runtime-mcp serve``: the hub process (uvicorn, SQLite, structlog)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route

from runtime_mcp.app import create_app
from runtime_mcp.auth import USER, AuthError, Tokens
from runtime_mcp.browserguard import Allowed
from runtime_mcp.hub import Hub
from runtime_mcp.mcp_server import build_server
from runtime_mcp.responses import error_response
from runtime_mcp.settings import HubSettings, is_loopback
from runtime_mcp.store import Store

WILDCARD_BINDS = ("0.0.0.0", "::", "")


def configure_logging() -> None:
    """The hub's own logs: one readable line per event on stderr."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


def allowed_for(settings: HubSettings) -> Allowed:
    """Who may address the hub: the loopback names, the bind address unless it is a
    wildcard, and the configured hosts and origins (ValueError naming a bad entry)."""
    hosts = list(settings.allowed_hosts)
    if settings.host not in WILDCARD_BINDS and not is_loopback(settings.host):
        hosts.append(settings.host)
    return Allowed.build(hosts, settings.allowed_origins)


def build(settings: HubSettings, lost_after: float = 15.0, tls: bool = False) -> tuple[Hub, object]:
    """The hub and its ASGI app (the agent protocol, the user API and ``/mcp``)."""
    allowed = allowed_for(settings)
    store = Store(settings.db)
    hub = Hub(
        store,
        lost_after=lost_after,
        audit_max_rows=settings.audit_max_rows,
        audit_max_age=settings.audit_max_days * 86400,
        max_agents=settings.max_agents,
        max_registrations=settings.max_registrations,
    )
    tokens = Tokens(user=settings.user_token, agent=settings.agent_token)
    internal = (
        "127.0.0.1"
        if settings.host in WILDCARD_BINDS or is_loopback(settings.host)
        else settings.host
    )
    scheme = "https" if tls else "http"
    mcp = build_server(
        f"{scheme}://{internal}:{settings.port}", settings.user_token, verify=not tls
    )
    # The browser guard in front of the whole app checks Host and Origin for
    # /mcp as for every other endpoint: one mechanism, one error shape.
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    routes = [
        Route(r.path, endpoint=guard_mcp(r.endpoint, tokens), methods=None)
        for r in mcp_app.routes
        if isinstance(r, Route)
    ]
    app = create_app(
        hub, tokens, extra_routes=routes, lifespans=[mcp.session_manager.run], allowed=allowed
    )
    return hub, app


class guard_mcp:
    """``/mcp`` needs the user token when the hub has one.

    A class, not a function: Starlette runs a plain function endpoint as a
    request handler, and an object as a raw ASGI app, which the SDK needs.
    """

    def __init__(self, endpoint: Any, tokens: Tokens) -> None:
        self.endpoint = endpoint
        self.tokens = tokens

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        try:
            self.tokens.check(request, USER)
        except AuthError as exc:
            await error_response(exc.status, exc.code, str(exc))(scope, receive, send)
            return
        await self.endpoint(scope, receive, send)


def serve(
    settings: HubSettings,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    lost_after: float = 15.0,
) -> int:
    """Run until interrupted; 2 when the settings are refused."""
    host, port, db = settings.host, settings.port, settings.db
    refusal = settings.check_exposure() or settings.check_retention() or settings.check_limits()
    if refusal is None:
        try:
            allowed_for(settings)
        except ValueError as exc:
            refusal = str(exc)
    if refusal:
        print(f"runtime-mcp: error: {refusal}", file=sys.stderr)
        return 2
    if bool(ssl_certfile) != bool(ssl_keyfile):
        print(
            "runtime-mcp: error: TLS needs both --ssl-certfile and --ssl-keyfile", file=sys.stderr
        )
        return 2
    configure_logging()
    try:
        _, app = build(settings, lost_after=lost_after, tls=bool(ssl_certfile))
    except Exception as exc:
        print(f"runtime-mcp: error: cannot open the database {db}: {exc}", file=sys.stderr)
        return 2
    scheme = "https" if ssl_certfile else "http"
    structlog.get_logger("runtime_mcp").info(
        "hub listening",
        url=f"{scheme}://{host}:{port}",
        db=db,
        tokens="on" if settings.user_token or settings.agent_token else "off",
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_keep_alive=75,
        lifespan="on",
        # Long polls hold connections open; do not wait for them on shutdown.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except OSError as exc:
        print(f"runtime-mcp: error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0
