"""The agent's connection settings, from ``start()`` arguments or the environment.

``RUNTIME_AGENT_HUB`` (the hub's URL), ``RUNTIME_AGENT_TOKEN`` (the agent
token), ``RUNTIME_AGENT_SERVICE`` (service name), ``RUNTIME_AGENT_TAGS``
(``env=prod,region=eu``) and ``RUNTIME_AGENT_VERSION`` (the code version; the
git commit of the working directory when unset and one is at hand).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from runtime_agent.errors import AgentError

DEFAULT_HUB = "http://127.0.0.1:7878"


@dataclass(frozen=True)
class AgentConfig:
    """Where the hub is and how this process introduces itself."""

    hub: str
    token: str | None
    service: str
    tags: dict[str, str] = field(default_factory=dict)
    code_version: str | None = None


def parse_tags(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"env=prod,region=eu"`` (or a mapping) as a dict; AgentError naming a bad pair."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        pairs = list(text.items())
    else:
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise AgentError(f"tag {item.strip()!r} must look like key=value (env=prod)")
            pairs.append((key, value))
    tags: dict[str, str] = {}
    for key, value in pairs:
        key, value = str(key).strip(), str(value).strip()
        if not key or not key.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise AgentError(f"tag name {key!r} may hold letters, digits, '-', '_' and '.'")
        if key in ("service", "agent"):
            raise AgentError(f"{key!r} is reserved; use the service argument instead")
        tags[key] = value
    return tags


def check_hub_url(url: str) -> str:
    """The hub URL without a trailing slash; AgentError when it is not http(s)://host[:port]."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentError(f"hub URL {url!r} must look like http://127.0.0.1:7878")
    return url.strip().rstrip("/")


def default_service() -> str:
    """The script or module the process runs, as a service name of last resort."""
    argv0 = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return argv0 if argv0 and argv0 not in ("-c", "-m", "") else "python"


def git_commit(cwd: str | None = None) -> str | None:
    """The short commit of the working directory's git checkout, if there is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def load(
    hub: str | None = None,
    token: str | None = None,
    service: str | None = None,
    tags: str | Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Settings from arguments first, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    return AgentConfig(
        hub=check_hub_url(hub or env.get("RUNTIME_AGENT_HUB") or DEFAULT_HUB),
        token=token or env.get("RUNTIME_AGENT_TOKEN") or None,
        service=(service or env.get("RUNTIME_AGENT_SERVICE") or default_service()).strip(),
        tags=parse_tags(tags if tags is not None else env.get("RUNTIME_AGENT_TAGS")),
        code_version=env.get("RUNTIME_AGENT_VERSION") or git_commit(),
    )
