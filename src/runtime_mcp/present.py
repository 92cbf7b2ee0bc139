"""Human-readable rendering for the CLI: tables, relative times, hit lines.

Everything shown comes from the hub, so from agents and the applications
they run: every value goes through ``clean`` before it reaches the terminal,
which writes control characters (escape sequences, newlines, carriage
returns), invisible and bidirectional formatting characters and lone
surrogates as Python-style escapes (``\x1b``, ``\n``, ``\u202e``). A
service named ``"\x1b]52;..."`` cannot rewrite the terminal, forge a table
row or hide text. ``--json`` output is JSON, escaped by the encoder.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """``value`` as text that is safe to print: unsafe characters escaped."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)


def number(value: Any) -> str:
    """A figure as ``%.4g``, or whatever else it is, cleaned (``"inf"`` stays ``inf``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}"
    return clean(value)


def clock(ts: Any, fmt: str = "%H:%M:%S") -> str:
    """A timestamp in local time; ``?`` when it is not one."""
    try:
        return time.strftime(fmt, time.localtime(float(ts or 0)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def ago(ts: float | None, now: float | None = None) -> str:
    """``3s ago``, ``5m ago``, ``2h ago``; ``-`` when unknown."""
    if not ts or not isinstance(ts, (int, float)):
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
    cells = [[clean(c) for c in headers]] + [
        ["" if c is None else clean(c) for c in r] for r in rows
    ]
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
    what = clean(action["kind"])
    if action.get("message"):
        what += f" {clean(repr(action['message']))}"
    if action.get("expression"):
        what += f" of {clean(action['expression'])}"
    if action.get("condition"):
        what += f" if {clean(action['condition'])}"
    lines = [
        f"{clean(action['id'])}  {what} at {clean(action['location'])}  "
        f"(target {clean(action['target'])})"
    ]
    for agent in action.get("agents", []):
        where = f" at {clean(agent['file'])}:{clean(agent['line'])}" if agent.get("line") else ""
        message = f": {clean(agent['message'])}" if agent.get("message") else ""
        lines.append(
            f"  {clean(agent['agent_id'])} ({clean(agent.get('service') or '?')}) "
            f"{clean(agent['state'])}{where}, {clean(agent['hits'])} hits{message}"
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
    stamp = clock(hit.get("ts"))
    who = clean(hit.get("agent_id", "?"))
    kind = hit.get("type")
    if kind == "log":
        return f"{stamp} {who} {clean(hit.get('message', ''))}"
    if kind == "metric":
        if hit.get("metric") == "count":
            return (
                f"{stamp} {who} count +{clean(hit.get('count'))} (total {clean(hit.get('total'))})"
            )
        unit = " ms" if hit.get("metric") == "duration" else ""
        figures = " ".join(
            f"{name}={number(hit.get(name))}" for name in ("min", "p50", "p90", "p99", "max")
        )
        return (
            f"{stamp} {who} {clean(hit.get('metric'))}: n={clean(hit.get('count'))} {figures}{unit}"
        )
    if kind == "snapshot":
        where = f"{hit.get('file')}:{hit.get('line')} in {hit.get('function')}"
        head = f"{stamp} {who} snapshot at {clean(where)}"
        body = [
            f"    {clean(name)} = {short(value)}"
            for name, value in (hit.get("locals") or {}).items()
        ]
        body += [
            f"    watch {clean(expr)} = {short(value)}"
            for expr, value in (hit.get("watch") or {}).items()
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
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def audit_table(entries: list[dict[str, Any]]) -> str:
    """``runtime-mcp audit``."""
    if not entries:
        return "the audit trail is empty"
    rows = [
        (
            clock(e["ts"], "%Y-%m-%d %H:%M:%S"),
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
