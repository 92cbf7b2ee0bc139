"""``runtime-mcp``: the hub (``serve``) and its command-line client.

Errors are one line on stderr and a non-zero exit, never a traceback. What
comes from the hub is printed through ``present.clean`` (or as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from runtime_mcp import present
from runtime_mcp.client import HubClient, HubClientError
from runtime_mcp.settings import (
    DEFAULT_HOST,
    DEFAULT_HUB_URL,
    DEFAULT_PORT,
    MAX_AGENTS,
    MAX_REGISTRATIONS,
    HubSettings,
    default_db_path,
    env_list,
)
from runtime_mcp.store import AUDIT_MAX_AGE, AUDIT_MAX_ROWS

KIND_OF_METRIC = {"count": "counter", "value": "metric", "duration": "duration"}


class UsageError(Exception):
    """Bad command-line input; the message says what to type instead."""


def _client(args: argparse.Namespace) -> HubClient:
    return HubClient(args.hub, args.token)


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(human(data))


def cmd_serve(args: argparse.Namespace) -> int:
    from runtime_mcp.server import serve

    settings = HubSettings(
        host=args.host,
        port=args.port,
        db=args.db or str(default_db_path()),
        user_token=args.token or None,
        agent_token=args.agent_token or None,
        allowed_hosts=tuple(args.allowed_host or env_list("RUNTIME_MCP_ALLOWED_HOSTS")),
        allowed_origins=tuple(args.allowed_origin or env_list("RUNTIME_MCP_ALLOWED_ORIGINS")),
        audit_max_rows=args.audit_max_rows,
        audit_max_days=args.audit_max_days,
        max_agents=args.max_agents,
        max_registrations=args.max_registrations,
    )
    return serve(
        settings,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        lost_after=args.lost_after,
    )


def cmd_agents(args: argparse.Namespace) -> int:
    with _client(args) as hub:
        _emit(args, hub.agents(), present.agents_table)
    return 0


def _place(args: argparse.Namespace, spec: dict[str, Any]) -> int:
    spec.update(target=args.target or "all", wait=args.wait)
    if args.max_hits is not None:
        spec["max_hits"] = args.max_hits
    if args.ttl is not None:
        spec["ttl_seconds"] = args.ttl
    if getattr(args, "condition", None):
        spec["condition"] = args.condition
    with _client(args) as hub:
        action = hub.place(spec)
    _emit(args, action, present.describe_action)
    failed = [a for a in action.get("agents", []) if a["state"] == "error"]
    return 1 if failed and len(failed) == len(action.get("agents", [])) else 0


def cmd_log(args: argparse.Namespace) -> int:
    return _place(args, {"kind": "log", "location": args.location, "message": args.message})


def cmd_snapshot(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {"kind": "snapshot", "location": args.location}
    if args.watch:
        spec["watch"] = args.watch
    return _place(args, spec)


def cmd_metric(args: argparse.Namespace) -> int:
    kind = KIND_OF_METRIC[args.kind]
    spec: dict[str, Any] = {"kind": kind, "location": args.location}
    if kind == "metric":
        if not args.expr:
            raise UsageError("--kind value needs --expr, for example --expr 'len(cart.items)'")
        spec["expression"] = args.expr
    elif args.expr:
        raise UsageError(f"--expr goes with --kind value, not --kind {args.kind}")
    return _place(args, spec)


def cmd_actions(args: argparse.Namespace) -> int:
    with _client(args) as hub:
        _emit(args, hub.actions(include_removed=args.all), present.actions_table)
    return 0


def cmd_hits(args: argparse.Namespace) -> int:
    with _client(args) as hub:
        cursor = 0
        while True:
            page = hub.hits(args.action_id, after=cursor, limit=200, wait=20 if args.follow else 0)
            for hit in page["hits"]:
                print(
                    json.dumps(hit, sort_keys=True) if args.json else present.hit_line(hit),
                    flush=True,
                )
            if not page["hits"] and not args.follow and cursor == 0 and not args.json:
                print(
                    f"no hits yet for {present.clean(args.action_id)}; "
                    f"{present.describe_action(page['action'])}"
                )
            cursor = page["cursor"]
            if not args.follow and len(page["hits"]) < 200:
                return 0
            if args.follow and page["action"]["status"] != "active" and not page["hits"]:
                print(f"-- action {present.clean(page['action']['status'])}", file=sys.stderr)
                return 0


def cmd_rm(args: argparse.Namespace) -> int:
    if args.all == bool(args.action_ids):
        raise UsageError("give action ids to remove, or --all (not both)")
    with _client(args) as hub:
        removed: list[str] = []
        if args.all:
            removed = hub.remove(None)
        else:
            for action_id in args.action_ids:
                removed += hub.remove(action_id)
    listed = present.clean(", ".join(removed))
    print(f"removed {len(removed)} action(s)" + (f": {listed}" if removed else ""))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    with _client(args) as hub:
        _emit(args, hub.audit(limit=args.limit, action_id=args.action), present.audit_table)
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    from runtime_mcp.mcp_server import build_server

    build_server(args.hub, args.token).run("stdio")
    return 0


def cmd_client_config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime_mcp import clientconfig

    http_url = None if args.stdio else (args.http or f"{args.hub.rstrip('/')}/mcp")
    with_token = args.with_token or bool(args.token)
    root = Path(args.dir)
    try:
        existing = clientconfig.read_existing(args.client, root) if args.write else {}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = clientconfig.render(args.client, http_url, args.hub, with_token, existing)
    if args.write:
        path = clientconfig.write(args.client, data, root)
        print(f"wrote {path}")
        if with_token and http_url:
            print("set RUNTIME_MCP_TOKEN in the environment the assistant starts from")
    else:
        print(json.dumps(data, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runtime-mcp",
        description="Live runtime context for coding assistants: the hub and its client.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_command(
        name: str, help_text: str, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--hub",
            default=os.environ.get("RUNTIME_MCP_HUB") or DEFAULT_HUB_URL,
            help="hub URL (RUNTIME_MCP_HUB; default %(default)s)",
        )
        sub.add_argument(
            "--token",
            default=os.environ.get("RUNTIME_MCP_TOKEN"),
            help="user token (RUNTIME_MCP_TOKEN)",
        )
        if json_flag:
            sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    def placement(sub: argparse.ArgumentParser, hits: bool = True) -> None:
        sub.add_argument("--if", dest="condition", metavar="EXPR", help="condition")
        if hits:
            sub.add_argument("--max-hits", type=int, metavar="N", help="stop after N hits")
        else:
            sub.set_defaults(max_hits=None)
        sub.add_argument("--ttl", type=float, metavar="SECONDS", help="expiry (default 3600)")
        sub.add_argument(
            "--target",
            metavar="SELECTOR",
            help="all (default), service=NAME, TAG=VALUE,... or agent:ID",
        )
        sub.add_argument(
            "--wait",
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="how long to wait for agents to answer (default 2)",
        )

    serve = commands.add_parser("serve", help="run the hub", description="Run the hub.")
    serve.add_argument("--host", default=DEFAULT_HOST, help="bind address (default %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    serve.add_argument("--db", help=f"SQLite file (default {default_db_path()})")
    serve.add_argument(
        "--token",
        default=os.environ.get("RUNTIME_MCP_TOKEN"),
        help="user token (RUNTIME_MCP_TOKEN)",
    )
    serve.add_argument(
        "--agent-token",
        default=os.environ.get("RUNTIME_MCP_AGENT_TOKEN"),
        help="agent token (RUNTIME_MCP_AGENT_TOKEN)",
    )
    serve.add_argument(
        "--lost-after",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="silence before an agent shows as lost (default %(default)s)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME[:PORT]",
        help="a Host name clients use besides 127.0.0.1, localhost and [::1]; repeatable "
        "(RUNTIME_MCP_ALLOWED_HOSTS, comma-separated)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="a web page origin (scheme://host[:port]) allowed to call the hub; repeatable "
        "(RUNTIME_MCP_ALLOWED_ORIGINS, comma-separated)",
    )
    serve.add_argument(
        "--audit-max-rows",
        type=int,
        default=os.environ.get("RUNTIME_MCP_AUDIT_MAX_ROWS", str(AUDIT_MAX_ROWS)),
        metavar="N",
        help="audit entries kept, newest first (RUNTIME_MCP_AUDIT_MAX_ROWS; default %(default)s)",
    )
    serve.add_argument(
        "--audit-max-days",
        type=float,
        default=os.environ.get("RUNTIME_MCP_AUDIT_MAX_DAYS", f"{AUDIT_MAX_AGE / 86400:g}"),
        metavar="DAYS",
        help="age after which audit entries are deleted "
        "(RUNTIME_MCP_AUDIT_MAX_DAYS; default %(default)s)",
    )
    serve.add_argument(
        "--max-agents",
        type=int,
        default=os.environ.get("RUNTIME_MCP_MAX_AGENTS", str(MAX_AGENTS)),
        metavar="N",
        help="agent records kept, live or lost; at the cap a new agent replaces the "
        "longest-silent lost one, or gets 429 when all are live "
        "(RUNTIME_MCP_MAX_AGENTS; default %(default)s)",
    )
    serve.add_argument(
        "--max-registrations",
        type=int,
        default=os.environ.get("RUNTIME_MCP_MAX_REGISTRATIONS", str(MAX_REGISTRATIONS)),
        metavar="N",
        help="new agent records per minute, beyond which registrations get 429 "
        "(RUNTIME_MCP_MAX_REGISTRATIONS; default %(default)s)",
    )
    serve.add_argument("--ssl-certfile", help="TLS certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    serve.set_defaults(func=cmd_serve)

    client_command("agents", "list live agents").set_defaults(func=cmd_agents)

    log = client_command("log", "place a log line at a location")
    log.add_argument("location", help="path/to/file.py:LINE or package.module:LINE")
    log.add_argument("message", help="text with {expression} fields")
    placement(log)
    log.set_defaults(func=cmd_log)

    snap = client_command("snapshot", "capture the stack and locals at a location")
    snap.add_argument("location")
    snap.add_argument("--watch", action="append", metavar="EXPR", help="an expression to capture")
    placement(snap)
    snap.set_defaults(func=cmd_snapshot)

    metric = client_command("metric", "count hits, aggregate a value, or time a function")
    metric.add_argument("location", help="a line, or package.module:Qualname for durations")
    metric.add_argument("--kind", choices=sorted(KIND_OF_METRIC), default="count")
    metric.add_argument("--expr", metavar="EXPR", help="the value to aggregate (--kind value)")
    placement(metric, hits=False)
    metric.set_defaults(func=cmd_metric)

    actions = client_command("actions", "list actions and where they stand")
    actions.add_argument("--all", action="store_true", help="include removed and expired ones")
    actions.set_defaults(func=cmd_actions)

    hits = client_command("hits", "show an action's results")
    hits.add_argument("action_id")
    hits.add_argument("--follow", "-f", action="store_true", help="keep printing new hits")
    hits.set_defaults(func=cmd_hits)

    rm = client_command("rm", "remove actions", json_flag=False)
    rm.add_argument("action_ids", nargs="*", metavar="ACTION_ID")
    rm.add_argument("--all", action="store_true", help="remove every action")
    rm.set_defaults(func=cmd_rm)

    stdio = client_command(
        "stdio",
        "serve the MCP tools over stdio (for clients that launch a command)",
        json_flag=False,
    )
    stdio.set_defaults(func=cmd_stdio)

    config = client_command(
        "client-config", "print or write an assistant's MCP settings", json_flag=False
    )
    config.add_argument("client", choices=["claude", "cursor", "kiro"])
    how = config.add_mutually_exclusive_group()
    how.add_argument("--http", metavar="URL", help="the hub's MCP URL (default: HUB/mcp)")
    how.add_argument("--stdio", action="store_true", help="launch 'runtime-mcp stdio' instead")
    config.add_argument(
        "--with-token", action="store_true", help="send RUNTIME_MCP_TOKEN as a bearer token (HTTP)"
    )
    config.add_argument("--write", action="store_true", help="write the file instead of printing")
    config.add_argument("--dir", default=".", help="project directory (default: here)")
    config.set_defaults(func=cmd_client_config)

    audit = client_command("audit", "show the audit trail")
    audit.add_argument("--limit", type=int, default=200)
    audit.add_argument("--action", metavar="ACTION_ID", help="only this action")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``runtime-mcp``."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (HubClientError, UsageError) as exc:
        print(f"runtime-mcp: error: {present.clean(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["main"]
