"""A Starlette login and cart service holding secrets, for the end-to-end attack test.

The secrets (``wonderland-42``, the bearer token, ``API_KEY``) must never
appear in anything the hub or the MCP tools return.
"""

from __future__ import annotations

import hashlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

USERS = {"alice": hashlib.sha256(b"wonderland-42").hexdigest()}
API_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
SESSIONS: dict[str, str] = {}


def check_password(user: str, password: str) -> bool:
    digest = hashlib.sha256(password.encode()).hexdigest()
    ok = USERS.get(user) == digest
    return ok  # CHECKED


async def login(request: Request) -> JSONResponse:
    body = await request.json()
    user = body.get("user")
    password = body.get("password")
    auth_header = request.headers.get("authorization")
    if check_password(user, password):  # LOGIN
        session = hashlib.sha256(f"{user}{auth_header}".encode()).hexdigest()
        SESSIONS[session] = user
        return JSONResponse({"ok": True})
    return JSONResponse({"ok": False}, status_code=401)


app = Starlette(routes=[Route("/login", login, methods=["POST"])])
