"""The hub's front door against web pages: Host, Origin and Content-Type.

A page the developer visits can make their browser send requests to a hub on
127.0.0.1, and a DNS-rebinding page can even read the answers. So every
request, to the REST API and to ``/mcp`` alike, passes these checks before
anything else runs (``BrowserGuard`` wraps the whole app):

- ``Host`` must name the hub: a loopback name (``127.0.0.1``, ``localhost``,
  ``[::1]``, any port) by default, or one given with ``--allowed-host``.
  Otherwise 421 ``host_not_allowed``: a rebinding page sends its own name.
- ``Origin``, when a browser sends one, must be ``http(s)://`` an allowed host,
  or one given with ``--allowed-origin``; ``Origin: null`` never is. Otherwise
  403 ``origin_not_allowed``. A request the browser marks ``Sec-Fetch-Site:
  cross-site`` (or ``same-site``) without an allowed Origin is refused the same
  way: ``<img>`` and ``<script>`` tags send no Origin.
- A request body (every POST, PUT and PATCH, and any request carrying bytes)
  must be declared ``application/json``, optionally ``; charset=utf-8``.
  Otherwise 415 ``unsupported_media_type``. Browsers send ``text/plain``, form
  and multipart bodies to any origin without asking first (a "simple
  request"); a JSON body needs a CORS preflight, which the hub never grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime_mcp.responses import error_response

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def split_host(value: str) -> tuple[str, str | None] | None:
    """``(name, port or None)`` of a Host value, lowercased; None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name:
        return None
    if not rest:
        return name, None
    if rest.startswith(":") and rest[1:].isdigit():
        return name, rest[1:]
    return None


def host_pattern(text: str) -> tuple[str, str | None]:
    """An ``--allowed-host`` entry, ``NAME`` (any port) or ``NAME:PORT``; ValueError if bad."""
    raw = text.strip()
    if raw.count(":") > 1 and not raw.startswith("["):
        raw = f"[{raw}]"  # a bare IPv6 address
    parts = split_host(raw)
    if parts is None:
        raise ValueError(f"--allowed-host {text!r}: give a host name, NAME:PORT or [IPv6]")
    return parts


def origin_key(text: str) -> str:
    """An ``--allowed-origin`` entry as ``scheme://host[:port]``; ValueError if malformed."""
    parts = urlsplit(text.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(
            f"--allowed-origin {text!r}: give scheme://host[:port], e.g. https://ui.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


def is_json_type(value: str) -> bool:
    """``application/json``, with at most a ``charset=utf-8`` parameter."""
    media, *params = (part.strip().lower() for part in value.split(";"))
    if media != "application/json":
        return False
    for param in params:
        key, _, val = param.partition("=")
        if key.strip() != "charset" or val.strip().strip('"') != "utf-8":
            return False
    return True


@dataclass(frozen=True)
class Allowed:
    """Who may address the hub: Host patterns and extra browser origins."""

    hosts: tuple[tuple[str, str | None], ...] = tuple((name, None) for name in LOOPBACK_NAMES)
    origins: frozenset[str] = frozenset()

    @classmethod
    def build(cls, hosts: Iterable[str] = (), origins: Iterable[str] = ()) -> Allowed:
        """The loopback names plus ``hosts``, and ``origins``; ValueError naming a bad entry."""
        patterns = list(cls().hosts)
        for text in hosts:
            pattern = host_pattern(text)
            if pattern not in patterns:
                patterns.append(pattern)
        return cls(tuple(patterns), frozenset(origin_key(o) for o in origins))

    def host(self, value: str) -> bool:
        """Whether a Host header (or an origin's host part) names this hub."""
        parts = split_host(value)
        if parts is None:
            return False
        name, port = parts
        return any(name == n and (p is None or p == port) for n, p in self.hosts)

    def origin(self, value: str) -> bool:
        """Whether a browser page at this Origin may use the hub."""
        parts = urlsplit(value.strip().lower())
        if parts.scheme not in ("http", "https") or parts.path or parts.query:
            return False
        key = f"{parts.scheme}://{parts.netloc}"
        return key in self.origins or self.host(parts.netloc)


class BrowserGuard:
    """ASGI middleware applying the module's three checks to every HTTP request."""

    def __init__(self, app: ASGIApp, allowed: Allowed) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        await error_response(status, code, message)(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """(status, code, message) when the request is refused, else None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.allowed.host(host):
            return (
                421,
                "host_not_allowed",
                f"this hub does not answer to Host {host[:100]!r}; address it as 127.0.0.1 or "
                "localhost, or start it with --allowed-host NAME (RUNTIME_MCP_ALLOWED_HOSTS)",
            )
        origin = headers.get("origin")
        if origin is not None:
            if not self.allowed.origin(origin):
                return (
                    403,
                    "origin_not_allowed",
                    f"requests from web pages at {origin[:100]!r} are refused; start the hub "
                    "with --allowed-origin ORIGIN (RUNTIME_MCP_ALLOWED_ORIGINS) to allow one",
                )
        elif headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
            return (403, "origin_not_allowed", "requests from other web sites are refused")
        if self._has_body(scope["method"], headers):
            ctype = headers.get("content-type", "")
            if not is_json_type(ctype):
                return (
                    415,
                    "unsupported_media_type",
                    f"Content-Type {ctype[:100]!r}; send the body as application/json",
                )
        return None

    @staticmethod
    def _has_body(method: str, headers: Headers) -> bool:
        if method in BODY_METHODS or "transfer-encoding" in headers:
            return True
        length = headers.get("content-length", "0").strip()
        return length not in ("0", "")


__all__ = ["Allowed", "BrowserGuard", "is_json_type"]
