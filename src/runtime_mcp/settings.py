"""Hub settings: address, database, tokens, who may address it, audit retention,
registration bounds, and the exposure rule.

Every setting has a ``runtime-mcp serve`` flag and an environment variable
(``RUNTIME_MCP_<NAME>``; lists are comma-separated), the flag winning.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime_mcp.store import AUDIT_MAX_AGE, AUDIT_MAX_ROWS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7878
DEFAULT_HUB_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: Registration bounds: agent records kept (live or lost), and new records per
#: window. 1,000 agents is five times the 200 the ingest benchmark runs; 600 a
#: minute lets a large fleet restart at once (refused agents retry with backoff).
MAX_AGENTS = 1000
MAX_REGISTRATIONS = 600
REGISTRATION_WINDOW = 60.0


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/runtime-mcp/hub.sqlite3`` (``~/.local/share`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "runtime-mcp" / "hub.sqlite3"


def env_list(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated environment variable as a list (empty when unset)."""
    raw = (os.environ if environ is None else environ).get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the hub on this machine (``""`` is every
    interface, like ``0.0.0.0``)."""
    if host == "localhost":
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
    #: Host names the hub answers to besides the loopback ones (``--allowed-host``).
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    #: Browser origins allowed besides those of the allowed hosts (``--allowed-origin``).
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    audit_max_rows: int = AUDIT_MAX_ROWS
    audit_max_days: float = AUDIT_MAX_AGE / 86400
    #: Agent records kept, live or lost (``--max-agents``).
    max_agents: int = MAX_AGENTS
    #: New agent records per minute (``--max-registrations``).
    max_registrations: int = MAX_REGISTRATIONS

    def check_exposure(self) -> str | None:
        """Why these settings must not start (a public bind without tokens, or one
        token for both roles), or None."""
        if self.user_token and self.user_token == self.agent_token:
            return (
                "the user token and the agent token must differ: every agent holds the "
                "agent token, and the user token places actions"
            )
        if is_loopback(self.host) or (self.user_token and self.agent_token):
            return None
        every = self.host in ("", "0.0.0.0", "::")
        where = repr(self.host) + (" (every interface)" if every else "")
        return (
            f"refusing to listen on {where} without tokens: anyone who can reach it could "
            "read your service's data. Set both --token (or RUNTIME_MCP_TOKEN) and "
            "--agent-token (or RUNTIME_MCP_AGENT_TOKEN), or bind to 127.0.0.1"
        )

    def check_retention(self) -> str | None:
        """Why the audit retention settings are refused, or None."""
        if self.audit_max_rows < 10:
            return f"--audit-max-rows {self.audit_max_rows}: keep at least 10 audit entries"
        if not 0 < self.audit_max_days <= 36500:
            return f"--audit-max-days {self.audit_max_days:g}: give a number of days above 0"
        return None

    def check_limits(self) -> str | None:
        """Why the registration bounds are refused, or None."""
        if self.max_agents < 1:
            return f"--max-agents {self.max_agents}: allow at least 1 agent"
        if self.max_registrations < 1:
            return f"--max-registrations {self.max_registrations}: allow at least 1 a minute"
        return None
