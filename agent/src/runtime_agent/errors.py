"""The agent's public exceptions: one hierarchy, each saying when it is raised.

These are raised to the *caller* of the engine's API (placing an action with a
bad location or expression). Nothing here is ever raised into the host
program's own code paths: hooks swallow and report their failures instead.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error the agent raises to its caller."""


class LocationError(AgentError):
    """A location cannot be resolved: no such file or module, several files
    match, no code at that line, or code that can no longer run (module level
    code that already ran). The message names the candidates or nearest lines.
    """


class ExpressionError(AgentError):
    """An expression was rejected when the action was placed: a syntax error,
    or a construct the sandbox does not allow. The message names the offending
    part and what is allowed instead.
    """


class ActionNotFound(AgentError, KeyError):
    """No action with that id exists in this engine (never placed, or removed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such action"


class BlockedLocation(LocationError):
    """The service owner's blocklist forbids actions in this file or module."""


class CoreRefused(LocationError):
    """The instrumentation core that runs here cannot run this action at this
    location without changing host state (the settrace core before Python
    3.13, on code with closure variables); the message says why and what to do.
    """


class CoreUnavailable(AgentError):
    """The instrumentation core asked for (``RUNTIME_AGENT_CORE``) cannot run on
    this interpreter; the message says why and which cores can.
    """
