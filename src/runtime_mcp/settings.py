"""Hub settings: address, database, tokens, and the exposure rule."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7878
DEFAULT_HUB_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/runtime-mcp/hub.sqlite3`` (``~/.local/share`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "runtime-mcp" / "hub.sqlite3"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the hub on this machine."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HubSettings:
    """What ``runtime-mcp serve`` runs with."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = ""
    user_token: str | None = None
    agent_token: str | None = None

    def check_exposure(self) -> str | None:
        """Why these settings must not start (a public bind without tokens), or None."""
        if is_loopback(self.host) or (self.user_token and self.agent_token):
            return None
        return (
            f"refusing to listen on {self.host} without tokens: anyone who can reach it could "
            "read your service's data. Set both --token (or RUNTIME_MCP_TOKEN) and "
            "--agent-token (or RUNTIME_MCP_AGENT_TOKEN), or bind to 127.0.0.1"
        )
