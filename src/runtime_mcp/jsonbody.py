"""Request bodies: bounded in size, gunzipped, parsed as strict JSON.

Strict means what every reader of the store can render back: no ``NaN`` or
``Infinity`` (nor a literal like ``1e400`` that overflows to it), no integer
longer than ``MAX_INT_DIGITS`` digits (parsing one costs quadratic time on
3.10), nesting at most ``MAX_DEPTH`` deep, and no lone UTF-16 surrogate in a
string (SQLite cannot store one; it becomes ``?``). Anything else is a 400
naming the problem; the Content-Type was checked before (``browserguard``).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

import anyio
from starlette.requests import Request

from runtime_mcp.responses import ApiError

MAX_BODY = 1 << 20
MAX_INFLATED = 8 << 20
MAX_DEPTH = 100
MAX_INT_DIGITS = 1_000
#: Bodies above this are parsed off the event loop.
PARSE_IN_THREAD_ABOVE = 64 << 10

# A lone surrogate can only come from a \\uD800-\\uDFFF escape or the raw bytes
# ED A0..BF; a body with neither (nearly all) skips the repair.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


class BodyError(ValueError):
    """A body that is JSON but not strict JSON; the message says what to change."""


def _refuse_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number; send finite numbers only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the number {text[:40]} is out of range; send finite numbers only")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BodyError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _check_depth(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BodyError(f"the body is nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _without_lone_surrogates(data: Any) -> Any:
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.loads(text.encode("utf-8", "replace"))
    return data


def parse_json(raw: bytes) -> dict[str, Any]:
    """A body as a strict JSON object; BodyError (a ValueError) when it is not one."""
    try:
        data = json.loads(
            raw or b"{}",
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    _check_depth(data)
    if _MAYBE_SURROGATE.search(raw):
        data = _without_lone_surrogates(data)
    return data


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a strict JSON object, size-checked and gunzipped; ApiError."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "too_large", f"body of {declared} bytes; the limit is {MAX_BODY}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, "too_large", f"body over {MAX_BODY} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = inflater.decompress(bytes(body), MAX_INFLATED + 1)
        except zlib.error:
            raise ApiError(400, "bad_request", "the gzip body is corrupt") from None
        if len(raw) > MAX_INFLATED:
            raise ApiError(413, "too_large", f"body inflates past {MAX_INFLATED} bytes")
    elif encoding in ("identity", ""):
        raw = bytes(body)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {encoding[:40]!r}; send gzip or nothing",
        )
    try:
        if len(raw) > PARSE_IN_THREAD_ABOVE:
            return await anyio.to_thread.run_sync(parse_json, raw)
        return parse_json(raw)
    except BodyError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


__all__ = ["MAX_BODY", "MAX_DEPTH", "MAX_INFLATED", "BodyError", "parse_json", "read_json"]
