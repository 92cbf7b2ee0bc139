"""Action targets: which agents an action is for.

``all`` (every agent), ``service=trading``, tags such as ``env=prod``, both
(``service=trading,env=prod``: every pair must match), or ``agent:<id>``.
Agents that register later and match get the action too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYNTAX = "use all, service=NAME, TAG=VALUE (combined with commas) or agent:ID"


class SelectorError(ValueError):
    """A target that cannot be read; the message shows the accepted forms."""


@dataclass(frozen=True)
class Selector:
    """A parsed target."""

    text: str
    agent_id: str | None = None
    service: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def matches(self, agent: dict[str, Any]) -> bool:
        """Whether an agent (as the registry describes it) is targeted."""
        if self.agent_id is not None:
            return agent.get("id") == self.agent_id
        if self.service is not None and agent.get("service") != self.service:
            return False
        tags = agent.get("tags") or {}
        return all(tags.get(k) == v for k, v in self.tags.items())


def parse_selector(text: str | None) -> Selector:
    """Read a target; SelectorError naming the bad part."""
    raw = (text or "all").strip()
    if raw in ("", "all", "*"):
        return Selector("all")
    if raw.startswith("agent:"):
        agent_id = raw[len("agent:") :].strip()
        if not agent_id:
            raise SelectorError(f"target {raw!r} has no agent id; {SYNTAX}")
        return Selector(raw, agent_id=agent_id)
    service: str | None = None
    tags: dict[str, str] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SelectorError(f"cannot read {part.strip()!r} in target {raw!r}; {SYNTAX}")
        if key == "service":
            service = value
        else:
            tags[key] = value
    return Selector(raw, service=service, tags=tags)
