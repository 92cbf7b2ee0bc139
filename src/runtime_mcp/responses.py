"""The hub's responses: one JSON renderer and one error shape.

Every refusal, whichever layer makes it (the browser guard, the tokens, a
handler), is ``{"error": CODE, "message": TEXT}`` with a 4xx status, built by
``error_response``. ``JsonResponse`` renders anything the store holds: a
non-finite float (which strict JSON cannot carry) becomes the string
``"nan"``, ``"inf"`` or ``"-inf"``, the convention of the agent's captured
values, instead of failing the read.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A request the hub refuses, with its HTTP status, error code and any headers
    the refusal carries (``Retry-After`` on a 429)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name (``"nan"``, ``"inf"``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class JsonResponse(JSONResponse):
    """A JSON response that never fails on a non-finite float."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN or infinity somewhere: rare, so pay for the walk only then
            text = json.dumps(finite(content), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "replace")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    """The uniform error response."""
    return JsonResponse({"error": code, "message": message}, status_code=status, headers=headers)


__all__ = ["ApiError", "JsonResponse", "error_response", "finite"]
