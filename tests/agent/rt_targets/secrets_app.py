"""Code whose secrets travel: ``# L:name`` marks the lines tests use."""

from __future__ import annotations


class Request:
    def __init__(self, user_id: object, path: str) -> None:
        self.user_id = user_id
        self.path = path


def handle(request: Request) -> dict[str, object]:
    result = {"user": request.user_id}
    return result  # L:handle_return


def with_token(token: str) -> str:
    header = f"Bearer-less {token} sent"
    owners = {token: "bob"}
    return header + str(len(owners))  # L:token_return


def settle(amount: int, note: str) -> int:
    settled = amount + len(note)
    return settled  # L:settle_return
