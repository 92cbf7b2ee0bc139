"""Snapshots: the stack, the locals of the top frames, watch values and context.

Built on the host's thread at the moment of the hit, so it must be bounded and
side-effect free: values go through ``capture`` (which never runs application
code) under one byte budget per snapshot.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from runtime_agent.capture import CaptureBudget, CaptureLimits, capture_namespace, capture_value
from runtime_agent.cost import new_budget
from runtime_agent.redact import REDACTED, Redactor
from runtime_agent.sandbox import EvaluationFailure, Expression

MAX_FRAMES = 20
LOCALS_FRAMES = 3
LIMITS = CaptureLimits()


def take_snapshot(
    frame: FrameType,
    f_locals: Mapping[str, Any] | None,
    watch: Sequence[tuple[Expression, bool]],
    redactor: Redactor,
) -> dict[str, Any]:
    """One snapshot event (without the action id) for ``frame``."""
    budget = CaptureBudget(LIMITS.max_bytes)
    frames: list[dict[str, Any]] = []
    current: FrameType | None = frame
    depth = 0
    while current is not None and depth < MAX_FRAMES:
        code = current.f_code
        entry: dict[str, Any] = {
            "file": code.co_filename,
            "line": current.f_lineno,
            "function": getattr(code, "co_qualname", code.co_name),
        }
        if depth < LOCALS_FRAMES:
            names = f_locals if depth == 0 and f_locals is not None else current.f_locals
            entry["locals"] = capture_namespace(
                names, limits=LIMITS, redactor=redactor, budget=budget
            )
        frames.append(entry)
        current = current.f_back
        depth += 1
    top = frames[0]
    event: dict[str, Any] = {
        "type": "snapshot",
        "ts": time.time(),
        "file": top["file"],
        "line": top["line"],
        "function": top["function"],
        "locals": top.get("locals", {}),
        "frames": frames,
        "thread": _thread(),
        "task": _task_name(),
    }
    if watch:
        g = frame.f_globals
        names = f_locals if f_locals is not None else frame.f_locals
        work = new_budget()  # one evaluation budget for all the watches of a hit
        event["watch"] = {
            expr.source: _watch_value(expr, hidden, names, g, redactor, budget, work)
            for expr, hidden in watch
        }
    context = _context(redactor, budget)
    if context:
        event["context"] = context
    if current is not None:
        event["frames_truncated"] = True
    return event


def _watch_value(
    expr: Expression,
    hidden: bool,
    f_locals: Mapping[str, Any],
    f_globals: Mapping[str, Any],
    redactor: Redactor,
    budget: CaptureBudget,
    work: list[int],
) -> dict[str, Any]:
    if hidden:
        return {"type": "redacted", "value": REDACTED, "redacted": True}
    try:
        value = expr.evaluate(f_locals, f_globals, work)
    except EvaluationFailure as exc:
        return {"type": "error", "notCaptured": str(exc)}
    return capture_value(value, limits=LIMITS, redactor=redactor, budget=budget)


def _thread() -> dict[str, Any]:
    ident = threading.get_ident()
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    # The name from the instance dict: a Thread subclass could override the property.
    name = thread.__dict__.get("_name") if thread is not None else None
    return {"id": ident, "name": name if isinstance(name, str) else None}


def _task_name() -> str | None:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return None
    except Exception:
        return None
    if task is None:
        return None
    # Only the stdlib's own get_name: a Task subclass could run anything.
    get_name = getattr(type(task), "get_name", None)
    if get_name is not None and get_name is getattr(asyncio.Task, "get_name", None):
        return str(task.get_name())
    return None


def _context(redactor: Redactor, budget: CaptureBudget) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, value in contextvars.copy_context().items():
        values[var.name] = value
    if not values:
        return {}
    return capture_namespace(values, limits=LIMITS, redactor=redactor, budget=budget)
