"""Messages of the agent protocol and the user API, validated with pydantic.

See docs/protocol.md. Every model forbids what it does not know where a typo
would otherwise pass silently (the user API), and tolerates extra fields where
newer agents may send more (events).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROTOCOL = 1
MAX_EVENTS_PER_BATCH = 1_000
MAX_TTL = 7 * 24 * 3600.0
KINDS = ("log", "snapshot", "counter", "metric", "duration")
#: Bounds of the numbers that reach a database column (SQLite integers are
#: 64-bit) or a clock: anything outside is refused with a 400, never a 500.
MAX_COUNT = 2**62
MAX_TIMESTAMP = 1e11  # seconds since the epoch, about the year 5138
MAX_LINE = 10**7
#: Highest per-action rate limit (hits per second): finite, and far above the
#: agent's engine-wide cap, so "no limit" can be written as a big number.
MAX_RATE = 1e9

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP)]


class _Versioned(BaseModel):
    protocol: int = PROTOCOL

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: int) -> int:
        if value != PROTOCOL:
            raise ValueError(f"this hub speaks protocol {PROTOCOL}; upgrade the hub or the agent")
        return value


class Register(_Versioned):
    """``POST /v1/agents/register``."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    service: str = Field(min_length=1, max_length=128)
    tags: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=256)]
    ] = Field(default_factory=dict, max_length=32)
    host: str | None = Field(default=None, max_length=256)
    pid: int | None = Field(default=None, ge=0, le=2**32)
    python: str | None = Field(default=None, max_length=32)
    agent_version: str | None = Field(default=None, max_length=32)
    core: str | None = Field(default=None, max_length=400)  # "settrace: <why>"
    code_version: str | None = Field(default=None, max_length=64)
    started_at: Timestamp | None = None
    #: Sent when registering again: the credential of the record it reclaims.
    credential: str | None = Field(default=None, max_length=256)


class Event(BaseModel):
    """One engine event; only the fields the hub reads are checked."""

    model_config = ConfigDict(extra="allow")

    type: Literal["log", "snapshot", "metric", "state"]
    action: str = Field(min_length=1, max_length=64)
    ts: Timestamp | None = None
    # Read from state events into the action's per-agent row.
    state: str | None = Field(default=None, max_length=64)
    message: str | None = None
    hits: Count | None = None
    file: str | None = None
    line: int | None = Field(default=None, ge=0, le=MAX_LINE)
    function: str | None = None


class Batch(_Versioned):
    """``POST /v1/agents/{id}/events``."""

    model_config = ConfigDict(extra="ignore")

    batch: int = Field(ge=1, le=MAX_COUNT)
    dropped: Count = 0
    events: list[Event] = Field(max_length=MAX_EVENTS_PER_BATCH)


class Heartbeat(_Versioned):
    """``POST /v1/agents/{id}/heartbeat``."""

    model_config = ConfigDict(extra="ignore")

    stats: dict[str, Any] = Field(default_factory=dict)


class Answer(_Versioned):
    """``POST /v1/agents/{id}/answers``: an agent's answer to a query."""

    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=64)
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=4096)


class ActionRequest(BaseModel):
    """``POST /v1/actions``: what a user asks to place."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["log", "snapshot", "counter", "metric", "duration"]
    location: str = Field(min_length=3, max_length=1024)
    message: str | None = Field(default=None, max_length=4096)
    condition: str | None = Field(default=None, max_length=1000)
    watch: list[str] = Field(default_factory=list, max_length=20)
    expression: str | None = Field(default=None, max_length=1000)
    max_hits: int | None = Field(default=None, ge=1, le=100_000)
    ttl_seconds: float = Field(default=3600.0, gt=0, le=MAX_TTL)
    rate_limit: float | None = Field(default=None, gt=0, le=MAX_RATE)
    output: Literal["events", "app", "both"] | None = None
    target: str = Field(default="all", max_length=512)
    wait: float = Field(default=2.0, ge=0, le=30)

    @model_validator(mode="after")
    def _kind_fields(self) -> ActionRequest:
        if self.kind == "log" and not (self.message or "").strip():
            raise ValueError("a log needs a message, for example 'total={total}'")
        if self.kind == "metric" and not (self.expression or "").strip():
            raise ValueError("a value metric needs an expression, for example len(cart.items)")
        if self.kind != "snapshot" and self.watch:
            raise ValueError("watch expressions belong to snapshots")
        check_with_agent_rules(self)
        return self

    def spec(self) -> dict[str, Any]:
        """The action as stored and sent to agents (without the request-only ``wait``)."""
        data = self.model_dump(exclude={"wait"}, exclude_none=True)
        if not data.get("watch"):
            data.pop("watch", None)
        return data


def check_with_agent_rules(request: ActionRequest) -> None:
    """Reject, before any agent sees it, what every agent would reject: a malformed
    location or an expression the sandbox refuses (ValueError naming the part)."""
    from runtime_agent.errors import AgentError
    from runtime_agent.locate import parse_location
    from runtime_agent.redact import Redactor
    from runtime_agent.sandbox import compile_expression
    from runtime_agent.template import Template

    try:
        parse_location(request.location)
        if request.kind == "log" and request.message:
            Template(request.message, Redactor())
        for what, source in (("condition", request.condition), ("expression", request.expression)):
            if source and source.strip():
                try:
                    compile_expression(source)
                except AgentError as exc:
                    raise AgentError(f"{what} {source!r}: {exc}") from None
        for source in request.watch:
            try:
                compile_expression(source)
            except AgentError as exc:
                raise AgentError(f"watch expression {source!r}: {exc}") from None
    except AgentError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:  # compile_expression raises its own error for this; a last guard
        raise ValueError(
            "an expression is nested too deeply to compile; split it into simpler ones"
        ) from None


def explain(error: Exception) -> str:
    """One readable line from a pydantic ValidationError."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    parts = []
    for item in errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
