"""Who may call what: the user token, the agent token and per-agent credentials.

- The **user token** opens the user API (``/v1/actions``, ``/v1/agents``,
  ``/v1/audit``, ``/v1/source``, ``/mcp``) and nothing else.
- The **agent token** opens registration (``POST /v1/agents/register``) and
  nothing else.
- Registration returns a **per-agent credential**, a random secret the agent
  then sends (``Authorization: Bearer``) on its own endpoints
  (``/v1/agents/{id}/...``); the hub keeps only its SHA-256. An agent's
  credential works for that agent's id only, and never on the user API.

Each token is optional; an unset token leaves its endpoints open, which
``settings.check_exposure`` allows only on a loopback bind. Credentials are
always required. Every comparison is in constant time, over bytes (a header
may carry any byte, a token any character).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request

AGENT = "agent"
USER = "user"


class AuthError(Exception):
    """Refused: ``status`` 401 (no or unknown secret) or 403 (a secret of the wrong kind)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def code(self) -> str:
        """The error code of the uniform error body."""
        return "unauthorized" if self.status == 401 else "forbidden"


def bearer(request: Request) -> bytes:
    """The bearer secret of a request, as the bytes sent; empty when there is none."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return b""
    # Starlette decodes headers as latin-1: this gives back the bytes on the wire.
    return given.strip().encode("latin-1")


def _same(given: bytes, secret: str | None) -> bool:
    if not given or not secret:
        return False
    return hmac.compare_digest(given, secret.encode())


def new_credential() -> str:
    """A fresh per-agent credential."""
    return secrets.token_urlsafe(32)


def credential_hash(credential: str | bytes) -> str:
    """What the hub stores of a credential."""
    raw = credential.encode() if isinstance(credential, str) else credential
    return hashlib.sha256(raw).hexdigest()


def credential_matches(given: bytes, stored_hash: str | None) -> bool:
    """Whether ``given`` is the credential whose hash is ``stored_hash``."""
    if not given or not stored_hash:
        return False
    return hmac.compare_digest(credential_hash(given), stored_hash)


@dataclass(frozen=True)
class Tokens:
    """The hub's two shared tokens; None means that kind of endpoint is open."""

    user: str | None = None
    agent: str | None = None

    def check(self, request: Request, needs: str) -> str:
        """The caller's role for a request needing ``needs`` (USER or AGENT); AuthError when
        refused. The user token never opens agent endpoints, nor the agent token user ones."""
        given = bearer(request)
        if needs == USER:
            if _same(given, self.agent):
                raise AuthError(
                    403,
                    "the agent token cannot read or place actions; use the user "
                    "token (--token or RUNTIME_MCP_TOKEN)",
                )
            required = self.user
        else:
            if _same(given, self.user):
                raise AuthError(
                    403,
                    "the user token cannot register agents; agents use the agent token "
                    "(RUNTIME_AGENT_TOKEN, the hub's --agent-token)",
                )
            required = self.agent
        if required is None or _same(given, required):
            return needs
        if not given:
            raise AuthError(401, "this hub requires a token: send Authorization: Bearer <token>")
        raise AuthError(401, "unknown token")


__all__ = [
    "AGENT",
    "USER",
    "AuthError",
    "Tokens",
    "bearer",
    "credential_hash",
    "credential_matches",
    "new_credential",
]
