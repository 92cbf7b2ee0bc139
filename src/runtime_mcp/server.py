"""``runtime-mcp serve``: the hub process (uvicorn, SQLite, structlog)."""

from __future__ import annotations

import logging
import sys

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from runtime_mcp.app import create_app
from runtime_mcp.auth import Tokens
from runtime_mcp.browserguard import Allowed
from runtime_mcp.hub import Hub
from runtime_mcp.mcp_mount import PATH as MCP_PATH
from runtime_mcp.mcp_mount import McpMount
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


def build(
    settings: HubSettings, lost_after: float = 15.0, tls: bool = False
) -> tuple[Hub, Starlette]:
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
    mcp = McpMount(f"{scheme}://{internal}:{settings.port}", settings.user_token, not tls, tokens)
    routes = [Route(MCP_PATH, endpoint=mcp, methods=None)]
    app = create_app(hub, tokens, extra_routes=routes, lifespans=[mcp.lifespan], allowed=allowed)
    return hub, app


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
