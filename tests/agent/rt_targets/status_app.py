"""Code whose status and error texts could carry secrets: ``# L:name`` marks lines."""

from __future__ import annotations


def login(password: str, users: dict[str, int]) -> int | None:
    alias = password  # copied under an innocent name; the original is still a local
    found = users.get(alias)
    return found  # L:login_return


def charge(card: str, limits: dict[str, int]) -> int:
    number = card
    return len(number)  # L:charge_return


def forward(auth_header: str, routes: dict[str, str]) -> str:
    route = routes.get("x", "")
    return route  # L:forward_return


def verify(password: str, copy: str, users: dict[str, int]) -> bool:
    return copy in users  # L:verify_return


class Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def authorize(request: Request) -> str:
    tok = request.headers["Authorization"]
    alias = tok
    del tok, request  # the secret's source is gone from the frame
    return alias.split(" ")[0]  # L:authorize_return
