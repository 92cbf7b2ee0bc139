"""``runtime-mcp serve``: the hub process (uvicorn, SQLite, structlog)."""

from __future__ import annotations

import logging
import sys

import structlog
import uvicorn

from runtime_mcp.app import create_app
from runtime_mcp.auth import Tokens
from runtime_mcp.hub import Hub
from runtime_mcp.settings import HubSettings
from runtime_mcp.store import Store


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


def build(settings: HubSettings, lost_after: float = 15.0) -> tuple[Hub, object]:
    """The hub and its ASGI app for these settings."""
    store = Store(settings.db)
    hub = Hub(store, lost_after=lost_after)
    tokens = Tokens(user=settings.user_token, agent=settings.agent_token)
    return hub, create_app(hub, tokens)


def serve(
    host: str,
    port: int,
    db: str,
    user_token: str | None,
    agent_token: str | None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    lost_after: float = 15.0,
) -> int:
    """Run until interrupted; 2 when the settings are refused."""
    settings = HubSettings(
        host=host, port=port, db=db, user_token=user_token, agent_token=agent_token
    )
    refusal = settings.check_exposure()
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
        _, app = build(settings, lost_after=lost_after)
    except Exception as exc:
        print(f"runtime-mcp: error: cannot open the database {db}: {exc}", file=sys.stderr)
        return 2
    scheme = "https" if ssl_certfile else "http"
    structlog.get_logger("runtime_mcp").info(
        "hub listening",
        url=f"{scheme}://{host}:{port}",
        db=db,
        tokens="on" if user_token or agent_token else "off",
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
