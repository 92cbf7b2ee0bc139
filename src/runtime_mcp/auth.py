"""Tokens: the agent token (register, poll, upload) and the user token (everything).

Each kind of endpoint is open when its token is unset, which is allowed only
on a loopback address (``settings.check_exposure``). Comparison is in constant
time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

AGENT = "agent"
USER = "user"


class AuthError(Exception):
    """Refused: ``status`` 401 (no or unknown token) or 403 (wrong kind of token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Tokens:
    """The hub's tokens; None means that kind of endpoint is open."""

    user: str | None = None
    agent: str | None = None

    def check(self, request: Request, needs: str) -> str:
        """The caller's role for a request needing ``needs``; AuthError when refused."""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if self.user is not None and given and hmac.compare_digest(given, self.user):
            return USER
        if self.agent is not None and given and hmac.compare_digest(given, self.agent):
            if needs == AGENT:
                return AGENT
            raise AuthError(
                403,
                "the agent token cannot read or place actions; use the user "
                "token (--token or RUNTIME_MCP_TOKEN)",
            )
        required = self.agent if needs == AGENT else self.user
        if required is None:
            return needs
        if not given:
            raise AuthError(401, "this hub requires a token: send Authorization: Bearer <token>")
        raise AuthError(401, "unknown token")
