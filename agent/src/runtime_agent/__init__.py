"""runtime-agent: temporary, read-only actions in a live Python process.

The public API is ``Engine`` and the errors below; everything else in this
package is private. See agent/README.md.
"""

from __future__ import annotations

from runtime_agent._version import VERSION as __version__
from runtime_agent.connect import Agent, current, start, stop
from runtime_agent.engine import Engine
from runtime_agent.errors import (
    ActionNotFound,
    AgentError,
    BlockedLocation,
    CoreRefused,
    CoreUnavailable,
    ExpressionError,
    LocationError,
)
from runtime_agent.state import ActionStatus

__all__ = [
    "ActionNotFound",
    "ActionStatus",
    "Agent",
    "AgentError",
    "BlockedLocation",
    "CoreRefused",
    "CoreUnavailable",
    "Engine",
    "ExpressionError",
    "LocationError",
    "__version__",
    "current",
    "start",
    "stop",
]
