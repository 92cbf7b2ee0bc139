"""``runtime-agent run [--service S] [--tags k=v,...] [--hub URL] -- COMMAND ...``

Runs COMMAND (``python app.py``, ``gunicorn app:app``, ...) with the agent
started inside every Python process it launches, like ``ddtrace-run``: the
launcher puts a ``sitecustomize`` first on PYTHONPATH and replaces itself with
the command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime_agent.config import check_hub_url, parse_tags
from runtime_agent.errors import AgentError

BOOTSTRAP = Path(__file__).parent / "bootstrap"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runtime-agent",
        description="Run a Python program with the runtime-mcp agent attached.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run COMMAND with the agent started in it",
        description="Run COMMAND with the agent started in every Python process it launches.",
    )
    run.add_argument("--service", help="service name (RUNTIME_AGENT_SERVICE)")
    run.add_argument("--tags", help="tags such as env=prod,region=eu (RUNTIME_AGENT_TAGS)")
    run.add_argument("--hub", help="hub URL (RUNTIME_AGENT_HUB; default http://127.0.0.1:7878)")
    run.add_argument("--token", help="agent token (RUNTIME_AGENT_TOKEN)")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runtime-agent`` command."""
    args = _parser().parse_args(argv)
    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "runtime-agent: error: give the command to run after --, "
            "for example: runtime-agent run -- python app.py",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    try:
        if args.hub:
            env["RUNTIME_AGENT_HUB"] = check_hub_url(args.hub)
        if args.tags:
            parse_tags(args.tags)
            env["RUNTIME_AGENT_TAGS"] = args.tags
    except AgentError as exc:
        print(f"runtime-agent: error: {exc}", file=sys.stderr)
        return 2
    if args.service:
        env["RUNTIME_AGENT_SERVICE"] = args.service
    if args.token:
        env["RUNTIME_AGENT_TOKEN"] = args.token
    env["RUNTIME_AGENT_AUTOSTART"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(BOOTSTRAP)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    program = shutil.which(command[0], path=env.get("PATH"))
    if program is None:
        print(f"runtime-agent: error: command not found: {command[0]}", file=sys.stderr)
        return 127
    os.execve(program, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
