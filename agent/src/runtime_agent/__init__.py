"""runtime-agent: temporary, read-only actions in a live Python process.

The public API is ``Engine`` and the errors below; everything else in this
package is private. See agent/README.md.
"""

from __future__ import annotations

from runtime_agent.engine import Engine
from runtime_agent.errors import (
    ActionNotFound,
    AgentError,
    BlockedLocation,
    CoreUnavailable,
    ExpressionError,
    LocationError,
)
from runtime_agent.state import ActionStatus

__version__ = "0.1.0"

__all__ = [
    "ActionNotFound",
    "ActionStatus",
    "AgentError",
    "BlockedLocation",
    "CoreUnavailable",
    "Engine",
    "ExpressionError",
    "LocationError",
    "__version__",
]
