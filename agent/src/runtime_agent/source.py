"""Live source for ``get_source``: the file as this process has it.

An assistant's checkout may differ from what runs; this reads the deployed
file, marks the lines where actions can go (lines with live code), and gives
the file's SHA-256 so the difference shows. A file the service owner's
blocklist closes is refused (``BlockedLocation``), never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import CodeType
from typing import Any

from runtime_agent import locate
from runtime_agent.errors import LocationError

MAX_LINES = 400


def describe(
    location: str,
    context: int = 15,
    canonical: Callable[[CodeType], CodeType] | None = None,
    blocklist: locate.Blocklist | None = None,
) -> dict[str, Any]:
    """The source around a line, or a function's definition.

    LocationError when unknown; BlockedLocation when ``blocklist`` closes
    the file or module.
    """
    canon = canonical or (lambda code: code)
    spec = locate.parse_location(location)
    if blocklist:  # before looking: the answer must not say whether it is loaded
        blocklist.check(spec.text, spec.file, spec.module)
    found = locate.find_module(spec)
    if found is None:
        raise LocationError(
            f"no loaded module matches {spec.module or spec.file}; it may not be imported yet"
        )
    module, filename = found
    if blocklist:
        blocklist.check(spec.text, filename, module)
    try:
        with open(filename, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise LocationError(f"cannot read {filename}: {exc}") from None
    lines = raw.decode("utf-8", "replace").splitlines()
    live = locate.live_code(filename, canon)
    code_lines: set[int] = set()
    for path, _ in live:
        code_lines |= locate.code_lines(path.code)
    function = None
    if spec.qualname is not None:
        where = locate.resolve_function(spec, module, filename, canon)
        code = where.paths[0].code
        body = {n for p in where.paths for n in locate.code_lines(p.code)} or {code.co_firstlineno}
        first, last = code.co_firstlineno, max(body)
        function = where.function
    else:
        line = spec.line or 1
        first, last = max(1, line - context), min(len(lines), line + context)
    last = min(last, first + MAX_LINES - 1, len(lines))
    return {
        "file": filename,
        "module": module,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "total_lines": len(lines),
        "first_line": first,
        "last_line": last,
        "function": function,
        "lines": [
            {"n": n, "text": lines[n - 1], "code": n in code_lines} for n in range(first, last + 1)
        ],
    }
