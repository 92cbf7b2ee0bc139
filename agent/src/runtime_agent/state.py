"""Action states, as reported by ``Engine.status`` and in ``state`` events."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

INSTALLED = "installed"
"""Armed in live code; hits are being recorded."""
PENDING = "pending"
"""Waiting for its module to be imported; installed automatically then."""
PAUSED = "paused"
"""Switched off by the CPU budget; stays off until resumed (``Engine.resume``) or replaced."""
EXHAUSTED = "exhausted"
"""Reached its ``max_hits``; removed from the code."""
EXPIRED = "expired"
"""Reached its ``ttl_seconds``; removed from the code."""
ERROR = "error"
"""Could not be installed, or its expressions kept failing; the message says why."""
REMOVED = "removed"
"""Removed by a caller."""

FINAL = frozenset({EXHAUSTED, EXPIRED, ERROR, REMOVED})


@dataclass(frozen=True)
class ActionStatus:
    """Where an action stands: returned by every ``Engine.add_*`` and by ``Engine.status``."""

    id: str
    kind: str
    location: str
    state: str
    message: str
    hits: int
    max_hits: int | None
    dropped: int
    file: str | None
    line: int | None
    function: str | None
    condition: str | None
    created: float
    expires_in: float
    cpu_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-serialisable dict."""
        return asdict(self)
