"""Instrumentation cores and the one place that chooses between them.

Like coverage.py's COVERAGE_CORE, ``RUNTIME_AGENT_CORE`` overrides the choice:
``monitoring`` (3.12+), ``bytecode`` (3.10, 3.11) or ``settrace`` (anywhere,
last resort). Nothing outside this package knows which core runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from runtime_agent.backends.base import Backend, BackendError, Change, CodePath
from runtime_agent.errors import CoreUnavailable

CORES = ("monitoring", "bytecode", "settrace")
ENV_VAR = "RUNTIME_AGENT_CORE"

__all__ = ["CORES", "Backend", "BackendError", "Change", "CodePath", "choose_backend"]


def _default_core() -> str:
    return "monitoring" if sys.version_info >= (3, 12) else "bytecode"


def _make(core: str) -> Backend:
    if core == "monitoring":
        from runtime_agent.backends.monitoring import MonitoringBackend

        return MonitoringBackend()
    if core == "bytecode":
        from runtime_agent.backends.bytecode import BytecodeBackend

        return BytecodeBackend()
    from runtime_agent.backends.settrace import SettraceBackend

    return SettraceBackend()


def choose_backend(core: str | None = None, environ: Mapping[str, str] | None = None) -> Backend:
    """Build the backend for ``core``, else ``RUNTIME_AGENT_CORE``, else the best one here.

    Raises CoreUnavailable, naming the cores this interpreter can run, when the
    requested core cannot work here. Without an explicit request, falls back to
    settrace only when the preferred core cannot start, and says so: the
    backend's ``status`` reads ``"settrace: <why the preferred core cannot
    run>"``, and this settrace refuses, with the reason, the actions it cannot
    run read-only on this interpreter.
    """
    env = os.environ if environ is None else environ
    requested = (core or env.get(ENV_VAR, "")).strip().lower()
    if requested and requested not in CORES:
        raise CoreUnavailable(
            f"unknown core {requested!r} in {ENV_VAR}; choose one of: {', '.join(CORES)}"
        )
    try:
        backend = _make(requested or _default_core())
    except (BackendError, ImportError) as exc:
        if requested:
            raise CoreUnavailable(
                f"core {requested!r} cannot run on Python {sys.version.split()[0]}: {exc}; "
                f"the default here is {_default_core()!r}"
            ) from exc
        backend = _make("settrace")
        backend.status = f"settrace: {exc}"
        return backend
    if not backend.status:
        why = "" if not requested else " (asked for)" if core else f" ({ENV_VAR}={requested})"
        backend.status = backend.name + why
    return backend
