"""Snapshots: the stack, the locals of the top frames, watch values and context.

Built on the host's thread at the moment of the hit, so it must be bounded and
side-effect free: values go through ``capture`` (which never runs application
code) under one byte budget per snapshot.

Redaction holds across the whole snapshot: a value redacted in one place
(by name or by value, in any frame, watch or context variable) is masked
wherever else it appears in the snapshot (``redact.EventSecrets``). A frame
whose file the service owner's blocklist closes shows as file, line and
function only, with ``"blocked": true`` and no locals.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import BuiltinFunctionType, CodeType, FrameType
from typing import Any

from runtime_agent import clock, framelocals, introspect
from runtime_agent.capture import CaptureBudget, CaptureLimits, capture_namespace, capture_value
from runtime_agent.cost import Budget, new_budget
from runtime_agent.locate import Blocklist
from runtime_agent.redact import REDACTED, EventSecrets, Redactor
from runtime_agent.sandbox import EvaluationFailure, Expression, Redacted

MAX_FRAMES = 20
LOCALS_FRAMES = 3
LIMITS = CaptureLimits()
# Bound now: a host may patch or delete these attributes of sys, threading
# or contextvars (attrs' tests delete sys._getframe) while a hook runs.
_get_ident = threading.get_ident
_THREADS: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
_copy_context = contextvars.copy_context
_MODULES = sys.modules


def take_snapshot(
    frame: FrameType,
    f_locals: Mapping[str, Any] | None,
    watch: Sequence[Expression],
    redactor: Redactor,
    locals_hazard: Callable[[CodeType], str | None] = lambda code: None,
    blocklist: Blocklist | None = None,
    release_callers: bool = False,
) -> dict[str, Any]:
    """One snapshot event (without the action id) for ``frame``.

    ``release_callers``: hand each caller frame's locals dict back once it is
    captured (``framelocals.release``; callers are never inside a trace
    trampoline, so at once). The action hands back ``frame``'s own.

    A caller frame whose locals the core cannot read without changing them
    (``locals_hazard``) gets ``locals_omitted`` with the reason instead;
    frames in the files ``blocklist`` closes keep no locals (``blocked``).
    """
    budget = CaptureBudget(LIMITS.max_bytes)
    top_locals = f_locals if f_locals is not None else frame.f_locals
    secrets = redactor.event_secrets(frame.f_code, top_locals)
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
        hazard = locals_hazard(code) if 0 < depth < LOCALS_FRAMES else None
        if blocklist and blocklist.closes_frame(current):
            entry["blocked"] = True
        elif hazard is not None:
            entry["locals_omitted"] = hazard
        elif depth == 0:
            entry["locals"] = capture_namespace(
                top_locals, limits=LIMITS, redactor=redactor, budget=budget, secrets=secrets
            )
        elif depth < LOCALS_FRAMES:
            kept = framelocals.keep(current) if release_callers else None
            names = current.f_locals
            entry["locals"] = capture_namespace(
                names, limits=LIMITS, redactor=redactor, budget=budget, secrets=secrets
            )
            if release_callers:
                framelocals.release(current, names, kept)
            del names, kept
        frames.append(entry)
        current = current.f_back
        depth += 1
    watched: dict[str, Any] = {}
    if watch and "blocked" not in frames[0]:
        g = frame.f_globals
        work = new_budget()  # one evaluation budget for all the watches of a hit
        watched = {
            expr.source: _watch_value(expr, top_locals, g, redactor, budget, secrets, work)
            for expr in watch
        }
    context = _context(redactor, budget, secrets)
    if secrets:  # something was redacted: mask it wherever else it shows
        for entry in frames:
            if "locals" in entry:
                entry["locals"] = secrets.scrub(entry["locals"])
        watched = secrets.scrub(watched)
        context = secrets.scrub(context)
    top = frames[0]
    event: dict[str, Any] = {
        "type": "snapshot",
        "ts": clock.wall(),
        "file": top["file"],
        "line": top["line"],
        "function": top["function"],
        "locals": top.get("locals", {}),
        "frames": frames,
        "thread": _thread(),
        "task": _task_name(),
    }
    if watch:
        event["watch"] = watched
    if context:
        event["context"] = context
    if current is not None:
        event["frames_truncated"] = True
    return event


def _watch_value(
    expr: Expression,
    f_locals: Mapping[str, Any],
    f_globals: Mapping[str, Any],
    redactor: Redactor,
    budget: CaptureBudget,
    secrets: EventSecrets,
    work: Budget,
) -> dict[str, Any]:
    try:
        value = expr.evaluate(f_locals, f_globals, work)
    except EvaluationFailure as exc:
        # The message may quote the expression's own literals or a key it
        # missed: masked like any captured text.
        return {"type": "error", "notCaptured": redactor.mask_text(str(exc), secrets)}
    if type(value) is Redacted:
        return {"type": "redacted", "value": REDACTED, "redacted": True}
    return capture_value(value, limits=LIMITS, redactor=redactor, budget=budget, secrets=secrets)


def _thread() -> dict[str, Any]:
    ident = _get_ident()
    thread = _THREADS.get(ident)  # emptied and refilled in place after a fork
    # The name from the instance dict, through its slot: a Thread subclass
    # could override the property, __getattribute__ or __dict__.
    state = introspect.instance_dict(thread) if thread is not None else None
    name = introspect.scan_for(state, "_name", 1000) if state is not None else None
    return {"id": ident, "name": name if type(name) is str else None}


def _task_name() -> str | None:
    """The running task's name, read by asyncio's C code only: a Task subclass
    (or its metaclass) and the event loop's class never run."""
    found = _asyncio_readers()
    if found is None:
        return None
    running_loop, current_tasks, task_type = found
    try:
        loop = running_loop()
        if loop is None:
            return None
        # The running task is found by the loop in a dict: the loop's hash and
        # == must be object's.
        kind = type(loop)
        if (
            introspect.static_lookup(kind, "__hash__") is not _OBJECT_HASH
            or introspect.static_lookup(kind, "__eq__") is not _OBJECT_EQ
        ):
            return None
        task = dict.get(current_tasks, loop)
        if task is None or not introspect.inherits(type(task), task_type):
            return None
        get_name = introspect.static_lookup(type(task), "get_name")
        if get_name is not introspect.static_lookup(task_type, "get_name"):
            return None  # overridden: application code
        name = get_name(task)  # the C method, called directly: no attribute lookup
    except Exception:
        return None
    return name if type(name) is str else None


_OBJECT_HASH = object.__dict__["__hash__"]
_OBJECT_EQ = object.__dict__["__eq__"]
_ASYNCIO: list[tuple[Any, dict[Any, Any], type]] = []


def _asyncio_readers() -> tuple[Any, dict[Any, Any], type] | None:
    """``_get_running_loop``, ``_current_tasks`` and ``Task`` of asyncio's C
    module, found once it is loaded (None without it: the Python asyncio
    would run code)."""
    if _ASYNCIO:
        return _ASYNCIO[0]
    namespace = introspect.loaded_namespace(_MODULES.get("_asyncio"))
    if namespace is None:
        return None
    running_loop = introspect.scan_for(namespace, "_get_running_loop", 1000)
    current_tasks = introspect.scan_for(namespace, "_current_tasks", 1000)
    task_type = introspect.scan_for(namespace, "Task", 1000)
    if (
        type(running_loop) is not BuiltinFunctionType
        or type(current_tasks) is not dict
        or type(task_type) is not type
    ):
        return None
    _ASYNCIO.append((running_loop, current_tasks, task_type))
    return _ASYNCIO[0]


def _context(redactor: Redactor, budget: CaptureBudget, secrets: EventSecrets) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, value in _copy_context().items():
        name = introspect.plain_str(var.name)  # a str subclass's hash never runs
        if name is not None:
            values[name] = value
    if not values:
        return {}
    return capture_namespace(
        values, limits=LIMITS, redactor=redactor, budget=budget, secrets=secrets
    )
