"""Human-readable rendering for the CLI: tables, relative times, hit lines."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any


def ago(ts: float | None, now: float | None = None) -> str:
    """``3s ago``, ``5m ago``, ``2h ago``; ``-`` when unknown."""
    if not ts:
        return "-"
    delta = max(0.0, (time.time() if now is None else now) - ts)
    if delta < 60:
        return f"{delta:.0f}s ago"
    if delta < 3600:
        return f"{delta / 60:.0f}m ago"
    if delta < 86400:
        return f"{delta / 3600:.1f}h ago"
    return f"{delta / 86400:.1f}d ago"


def duration(seconds: float | None) -> str:
    """``42s``, ``3m``, ``1.5h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tags(values: dict[str, str] | None) -> str:
    """``env=prod,region=eu``."""
    return ",".join(f"{k}={v}" for k, v in sorted((values or {}).items())) or "-"


def agents_table(agents: list[dict[str, Any]]) -> str:
    """``runtime-mcp agents``."""
    if not agents:
        return (
            "no agents yet: start your service with 'runtime-agent run -- python app.py' "
            "or call runtime_agent.start()"
        )
    now = time.time()
    rows = [
        (
            a["id"],
            a["service"],
            tags(a.get("tags")),
            a.get("host"),
            a.get("pid"),
            a.get("python"),
            a.get("core"),
            duration(now - a["started_at"]) if a.get("started_at") else "-",
            a.get("actions", 0),
            a["status"],
            ago(a.get("last_seen"), now),
        )
        for a in agents
    ]
    return table(
        [
            "ID",
            "SERVICE",
            "TAGS",
            "HOST",
            "PID",
            "PYTHON",
            "CORE",
            "UPTIME",
            "ACTIONS",
            "STATUS",
            "LAST SEEN",
        ],
        rows,
    )


def describe_action(action: dict[str, Any]) -> str:
    """One action and where it stands on each agent."""
    what = action["kind"]
    if action.get("message"):
        what += f" {action['message']!r}"
    if action.get("expression"):
        what += f" of {action['expression']}"
    if action.get("condition"):
        what += f" if {action['condition']}"
    lines = [f"{action['id']}  {what} at {action['location']}  (target {action['target']})"]
    for agent in action.get("agents", []):
        where = f" at {agent['file']}:{agent['line']}" if agent.get("line") else ""
        message = f": {agent['message']}" if agent.get("message") else ""
        lines.append(
            f"  {agent['agent_id']} ({agent.get('service') or '?'}) "
            f"{agent['state']}{where}, {agent['hits']} hits{message}"
        )
    if not action.get("agents"):
        lines.append("  no agent has it yet")
    return "\n".join(lines)


def actions_table(actions: list[dict[str, Any]]) -> str:
    """``runtime-mcp actions``."""
    if not actions:
        return "no actions"
    rows = []
    for a in actions:
        states: dict[str, int] = {}
        for agent in a.get("agents", []):
            states[agent["state"]] = states.get(agent["state"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"
        hits = sum(agent.get("hits", 0) for agent in a.get("agents", []))
        left = a["expires_at"] - time.time()
        rows.append(
            (
                a["id"],
                a["kind"],
                a["location"],
                a.get("condition") or "-",
                a["target"],
                summary,
                hits,
                a["status"] if a["status"] != "active" else duration(left),
            )
        )
    return table(["ID", "KIND", "LOCATION", "CONDITION", "TARGET", "AGENTS", "HITS", "LEFT"], rows)


def hit_line(hit: dict[str, Any]) -> str:
    """One hit, one or a few lines."""
    stamp = time.strftime("%H:%M:%S", time.localtime(hit.get("ts") or 0))
    who = hit.get("agent_id", "?")
    kind = hit["type"]
    if kind == "log":
        return f"{stamp} {who} {hit.get('message', '')}"
    if kind == "metric":
        if hit.get("metric") == "count":
            return f"{stamp} {who} count +{hit['count']} (total {hit.get('total')})"
        unit = " ms" if hit.get("metric") == "duration" else ""
        return (
            f"{stamp} {who} {hit.get('metric')}: n={hit['count']} min={hit['min']:.4g} "
            f"p50={hit['p50']:.4g} p90={hit['p90']:.4g} p99={hit['p99']:.4g} "
            f"max={hit['max']:.4g}{unit}"
        )
    if kind == "snapshot":
        where = f"{hit.get('file')}:{hit.get('line')} in {hit.get('function')}"
        head = f"{stamp} {who} snapshot at {where}"
        body = [f"    {name} = {short(value)}" for name, value in (hit.get("locals") or {}).items()]
        body += [
            f"    watch {expr} = {short(value)}" for expr, value in (hit.get("watch") or {}).items()
        ]
        return "\n".join([head, *body])
    return f"{stamp} {who} {json.dumps(hit)}"


def short(captured: Any, limit: int = 120) -> str:
    """A captured value (capture.py's shape) as a short line."""
    if isinstance(captured, dict):
        if "value" in captured:
            text = (
                repr(captured["value"])
                if isinstance(captured["value"], str)
                else str(captured["value"])
            )
        elif captured.get("redacted"):
            text = "<redacted>"
        else:
            text = json.dumps(captured, separators=(",", ":"))
    else:
        text = str(captured)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def audit_table(entries: list[dict[str, Any]]) -> str:
    """``runtime-mcp audit``."""
    if not entries:
        return "the audit trail is empty"
    rows = [
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"])),
            e["actor"],
            e["op"],
            e.get("action_id") or "-",
            e.get("agent_id") or "-",
            ", ".join(
                f"{k}={v}" for k, v in e.get("detail", {}).items() if v not in (None, "", [])
            )[:80],
        )
        for e in entries
    ]
    return table(["TIME", "WHO", "WHAT", "ACTION", "AGENT", "DETAIL"], rows)
