"""A client of the hub's user API, shared by the CLI and the MCP server.

Every failure becomes a ``HubClientError`` whose message a person can act on:
the hub is down (and where it was looked for), the token is missing or wrong,
or the hub's own error message.
"""

from __future__ import annotations

from typing import Any

import httpx

from runtime_mcp.settings import DEFAULT_HUB_URL


class HubClientError(Exception):
    """A request to the hub failed; ``status`` is 0 when the hub was not reached."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HubClient:
    """Synchronous client of ``/v1`` (the CLI)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 40.0
    ) -> None:
        self.url = (url or DEFAULT_HUB_URL).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer or HubClientError."""
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return decode(response)

    # The user API, one method per endpoint.

    def agents(self) -> list[dict[str, Any]]:
        """Every known agent with its liveness."""
        return self.call("GET", "/v1/agents")["agents"]

    def place(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Place an action; returns it with every matching agent's answer."""
        return self.call("POST", "/v1/actions", json=spec)["action"]

    def actions(self, include_removed: bool = False) -> list[dict[str, Any]]:
        """Actions with their per-agent status."""
        params = {"removed": "1"} if include_removed else None
        return self.call("GET", "/v1/actions", params=params)["actions"]

    def action(self, action_id: str) -> dict[str, Any]:
        """One action."""
        return self.call("GET", f"/v1/actions/{action_id}")["action"]

    def remove(self, action_id: str | None) -> list[str]:
        """Remove one action, or all of them when ``action_id`` is None."""
        path = "/v1/actions" if action_id is None else f"/v1/actions/{action_id}"
        return self.call("DELETE", path)["removed"]

    def hits(
        self, action_id: str, after: int = 0, limit: int = 100, wait: float = 0, min_hits: int = 1
    ) -> dict[str, Any]:
        """Hits after a cursor, optionally waiting for ``min_hits`` of them."""
        params = {"after": after, "limit": limit, "wait": wait, "min_hits": min_hits}
        return self.call("GET", f"/v1/actions/{action_id}/hits", params=params, timeout=wait + 30)

    def source(self, location: str, agent: str | None = None, context: int = 15) -> dict[str, Any]:
        """Live source around a location, as an agent's process has it."""
        params: dict[str, Any] = {"location": location, "context": context}
        if agent:
            params["agent"] = agent
        return self.call("GET", "/v1/source", params=params)

    def audit(self, limit: int = 200, action_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        params: dict[str, Any] = {"limit": limit}
        if action_id:
            params["action"] = action_id
        return self.call("GET", "/v1/audit", params=params)["audit"]


def unreachable(url: str, exc: Exception) -> HubClientError:
    """The error for a hub that did not answer, saying how to get one."""
    return HubClientError(
        f"cannot reach the hub at {url} ({type(exc).__name__}); start it with "
        "'runtime-mcp serve' or point --hub / RUNTIME_MCP_HUB at it"
    )


def decode(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful response, or HubClientError with the hub's message."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        if isinstance(data, dict) and "message" in data:
            message, code = str(data["message"]), str(data.get("error", ""))
        else:
            message, code = f"the hub answered HTTP {response.status_code}", ""
        if response.status_code == 401:
            message += " (set --token or RUNTIME_MCP_TOKEN to the hub's user token)"
        raise HubClientError(message, response.status_code, code)
    if not isinstance(data, dict):
        raise HubClientError(
            f"the hub sent a non-JSON answer (HTTP {response.status_code})", response.status_code
        )
    return data


class AsyncHubClient:
    """Asynchronous client of ``/v1`` (the MCP tools).

    ``verify=False`` only for the hub's own MCP endpoint calling itself on
    loopback, whose TLS certificate names the public host.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 40.0,
        verify: bool = True,
    ) -> None:
        self.url = (url or DEFAULT_HUB_URL).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, verify=verify
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer or HubClientError."""
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return decode(response)
