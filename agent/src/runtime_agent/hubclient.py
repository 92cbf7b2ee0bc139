"""A minimal JSON-over-HTTP client for the hub, on ``http.client`` alone.

One persistent connection per use (polling, uploads), reopened after any
error; each request names its bearer secret (the shared agent token to
register, the agent's own credential afterwards). Bodies are strict JSON: a
non-finite float (a metric over an infinite value) travels as ``"nan"``,
``"inf"`` or ``"-inf"``, as captured values do, since the hub refuses NaN and
Infinity. Request bodies above a few KiB are gzip-compressed. Failures come back
as ``HubError`` carrying the HTTP status (0 when the hub could not be reached)
and the hub's error code, so the channel can decide between retrying,
re-registering and giving up.
"""

from __future__ import annotations

import gzip
import http.client
import json
import math
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

COMPRESS_ABOVE = 4096


class HubError(Exception):
    """A request to the hub failed; ``status`` is 0 when it was not reached at all."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code


class HubConnection:
    """One keep-alive connection to the hub."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        self._conn.timeout = timeout
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Send one request (with ``token`` as its bearer secret) and return the JSON
        response; HubError on any failure."""
        self.send_request(method, path, body, timeout, token)
        return self.read_response()

    def send_request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        token: str | None = None,
    ) -> socket.socket:
        """Send a request without waiting for the answer; returns the socket to wait on."""
        headers = {"Accept": "application/json", "User-Agent": "runtime-agent"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = encode(body)
            headers["Content-Type"] = "application/json"
            if len(payload) > COMPRESS_ABOVE:
                payload = gzip.compress(payload, compresslevel=5)
                headers["Content-Encoding"] = "gzip"
        try:
            conn = self._connection(self.timeout if timeout is None else timeout)
            conn.request(method, self._prefix + path, body=payload, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise HubError(0, "unreachable", f"hub unreachable: {exc}") from None
        assert conn.sock is not None
        return conn.sock

    def read_response(self) -> dict[str, Any]:
        """Read the answer to the request sent last; HubError on any failure."""
        conn = self._conn
        if conn is None:
            raise HubError(0, "unreachable", "no request in flight")
        try:
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise HubError(0, "unreachable", f"hub unreachable: {exc}") from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if status >= 400:
            message = data.get("message") or raw[:200].decode("utf-8", "replace")
            raise HubError(status, str(data.get("error", "http_error")), str(message))
        return data


def encode(body: dict[str, Any]) -> bytes:
    """``body`` as strict JSON (non-finite floats by name)."""
    try:
        text = json.dumps(body, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # rare: pay for the walk only then
        text = json.dumps(_finite(body), separators=(",", ":"), default=str, allow_nan=False)
    return text.encode()


def _finite(value: Any) -> Any:
    # Base-class methods only: an event may hold a float subclass from the
    # application (a metric's sample), whose own __str__ must not run.
    if isinstance(value, float):
        return value if math.isfinite(value) else float.__repr__(value)
    kind = type(value)
    if kind is dict:
        return {k: _finite(v) for k, v in dict.items(value)}
    if kind is list or kind is tuple:
        return [_finite(v) for v in value]
    return value
