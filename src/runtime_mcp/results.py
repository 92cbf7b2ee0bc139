"""Shaping hits for a model's context window: concise rows, pages, comparisons.

Claude Code cuts tool output at 25k tokens; a page here stays under about
20,000 characters of JSON, however large the snapshots.
"""

from __future__ import annotations

import json
import time
from typing import Any

PAGE_CHARS = 20_000
VALUE_CHARS = 120


def short_value(captured: Any, limit: int = VALUE_CHARS) -> str:
    """A captured value (the agent's capture shape) as one short string."""
    if isinstance(captured, dict):
        if captured.get("redacted"):
            text = "<redacted>"
        elif "value" in captured:
            value = captured["value"]
            text = repr(value) if isinstance(value, str) else json.dumps(value)
        elif "notCaptured" in captured:
            text = f"<{captured.get('type', '?')}: {captured['notCaptured']}>"
        else:
            text = _compact(captured)
    else:
        text = json.dumps(captured, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compact(captured: dict[str, Any]) -> str:
    kind = captured.get("type", "?")
    if "items" in captured:
        inner = ", ".join(short_value(i, 30) for i in captured["items"][:8])
        more = ", ..." if captured.get("truncated") or len(captured["items"]) > 8 else ""
        return f"{kind}[{inner}{more}]"
    if "entries" in captured:
        inner = ", ".join(
            f"{short_value(k, 20)}: {short_value(v, 30)}" for k, v in captured["entries"][:8]
        )
        return f"{kind}{{{inner}}}"
    if "fields" in captured:
        inner = ", ".join(
            f"{k}={short_value(v, 30)}" for k, v in list(captured["fields"].items())[:8]
        )
        return f"{kind}({inner})"
    return json.dumps(captured, separators=(",", ":"))


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts or 0)) + "Z"


def concise_hit(hit: dict[str, Any]) -> dict[str, Any]:
    """One hit with short values: what a model needs to reason, not every byte."""
    row: dict[str, Any] = {
        "seq": hit.get("seq"),
        "agent": hit.get("agent_id"),
        "time": _when(hit.get("ts")),
        "type": hit["type"],
    }
    if hit["type"] == "log":
        row["message"] = hit.get("message", "")
    elif hit["type"] == "snapshot":
        row["at"] = f"{hit.get('file')}:{hit.get('line')} in {hit.get('function')}"
        row["locals"] = {k: short_value(v) for k, v in (hit.get("locals") or {}).items()}
        if hit.get("watch"):
            row["watch"] = {k: short_value(v) for k, v in hit["watch"].items()}
        stack = [
            f"{f.get('function')} ({f.get('file', '').rsplit('/', 1)[-1]}:{f.get('line')})"
            for f in (hit.get("frames") or [])[:6]
        ]
        row["stack"] = stack
    elif hit["type"] == "metric":
        for key in (
            "metric",
            "count",
            "total",
            "min",
            "max",
            "mean",
            "p50",
            "p90",
            "p99",
            "unit",
            "expression",
        ):
            if key in hit:
                row[key] = hit[key]
    return row


def fit_page(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The rows that fit in one page of output; True when some were cut."""
    out: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        size += len(json.dumps(row, default=str))
        if out and size > PAGE_CHARS:
            return out, True
        out.append(row)
    return out, False


def summarize_results(
    action: dict[str, Any], rows: list[dict[str, Any]], more: bool, waited: float
) -> str:
    """One paragraph a model can act on."""
    agents = action.get("agents", [])
    states: dict[str, int] = {}
    for agent in agents:
        states[agent["state"]] = states.get(agent["state"], 0) + 1
    where = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no agent"
    text = f"{len(rows)} hit(s) for {action['kind']} {action['id']} ({action['status']}; "
    text += f"on {len(agents)} agent(s): {where})."
    if more:
        text += " More are stored: call again with cursor=next_cursor."
    if not rows:
        errors = {a["message"] for a in agents if a["state"] == "error" and a.get("message")}
        if errors:
            text += " Agent errors: " + " | ".join(sorted(errors))
        elif waited:
            text += (
                f" Nothing arrived within {waited:g}s: the line may not be running, or the "
                "condition is never true. Check the condition or drive traffic."
            )
        else:
            text += " Pass wait_seconds to wait for hits."
    if action["kind"] in ("counter", "metric", "duration"):
        text += " Metrics arrive as aggregates every 10 seconds."
    return text


def compare_rows(
    hits: list[dict[str, Any]], variables: list[str] | None
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Columns (differing first), the differing ones, and one row per snapshot."""
    rows: list[dict[str, str]] = []
    for hit in hits:
        row = {f"{k}": short_value(v, 80) for k, v in (hit.get("locals") or {}).items()}
        row.update({f"watch:{k}": short_value(v, 80) for k, v in (hit.get("watch") or {}).items()})
        rows.append(row)
    names: list[str] = []
    for row in rows:
        for name in row:
            if name not in names:
                names.append(name)
    if variables:
        wanted = set(variables) | {f"watch:{v}" for v in variables}
        names = [n for n in names if n in wanted]
    differing = [n for n in names if len({row.get(n, "<absent>") for row in rows}) > 1]
    columns = differing + [n for n in names if n not in differing]
    table = []
    for hit, row in zip(hits, rows, strict=True):
        line = {"seq": str(hit.get("seq")), "agent": str(hit.get("agent_id"))}
        line.update({n: row.get(n, "<absent>") for n in columns})
        table.append(line)
    return columns, differing, table
