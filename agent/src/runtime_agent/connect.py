"""``start()`` and ``stop()``: attach this process to a hub.

One agent per process. ``start`` creates the engine (unless given one) and
the channel thread, and returns the running ``Agent``; calling it again
returns the same agent. A forked child (a gunicorn or uwsgi worker) gets its
own channel and identity automatically and keeps its actions.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping

from runtime_agent import config as _config
from runtime_agent.channel import Channel
from runtime_agent.engine import Engine


class Agent:
    """A running agent: its engine and its channel to the hub."""

    def __init__(self, engine: Engine, channel: Channel) -> None:
        self.engine = engine
        self.channel = channel

    @property
    def agent_id(self) -> str | None:
        """The id the hub gave this process, once registered."""
        return self.channel.agent_id

    @property
    def connected(self) -> bool:
        """Whether the last exchange with the hub succeeded."""
        return self.channel.connected

    def stop(self) -> None:
        """Disconnect from the hub and remove every action."""
        self.channel.stop()
        self.engine.close()


_lock = threading.Lock()
_agent: Agent | None = None


def start(
    hub: str | None = None,
    token: str | None = None,
    service: str | None = None,
    tags: str | Mapping[str, str] | None = None,
    *,
    engine: Engine | None = None,
) -> Agent:
    """Connect this process to a hub and run the actions it sends.

    Arguments override ``RUNTIME_AGENT_HUB``, ``RUNTIME_AGENT_TOKEN``,
    ``RUNTIME_AGENT_SERVICE`` and ``RUNTIME_AGENT_TAGS``. Raises AgentError
    for a malformed hub URL or tag list; an unreachable hub is not an error
    (the channel keeps trying in the background).
    """
    global _agent
    with _lock:
        if _agent is not None:
            return _agent
        settings = _config.load(hub=hub, token=token, service=service, tags=tags)
        eng = engine if engine is not None else Engine()
        channel = Channel(eng, settings)
        channel.start()
        _agent = Agent(eng, channel)
        return _agent


def stop() -> None:
    """Stop the agent ``start()`` created, if any."""
    global _agent
    with _lock:
        agent, _agent = _agent, None
    if agent is not None:
        agent.stop()


def current() -> Agent | None:
    """The running agent, if ``start()`` was called."""
    return _agent


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    agent = _agent
    if agent is not None:
        try:
            agent.channel.after_fork_in_child()
        except Exception:
            pass


def _at_exit() -> None:
    agent = _agent
    if agent is not None:
        try:
            agent.channel.stop(flush_timeout=0.5)
        except Exception:
            pass


if hasattr(os, "register_at_fork"):
    # Registered after the engine's own handler (imported above), so the
    # engine has its new identity before the channel registers it.
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
