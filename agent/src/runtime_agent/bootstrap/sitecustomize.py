"""Loaded by ``runtime-agent run``: starts the agent before the program runs.

This directory is put first on PYTHONPATH, so Python imports this module at
start-up. It starts the agent from the environment the launcher set, then
hands over to the program's own ``sitecustomize`` if there is one.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _start() -> None:
    try:
        import runtime_agent

        runtime_agent.start()
    except Exception as exc:  # never keep the program from starting
        print(f"runtime-agent: not started: {exc}", file=sys.stderr)


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_runtime_agent_chained_site", candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


if os.environ.get("RUNTIME_AGENT_AUTOSTART") == "1":
    _start()
_chain()
