"""A blocklisted caller: its locals must never reach a snapshot taken deeper down."""

from __future__ import annotations

from rt_targets import secrets_app


def charge(amount: int) -> int:
    card_pin_hint = "CHARGE-LOCAL-0xC0FFEE"
    return secrets_app.settle(amount, card_pin_hint[:0])  # L:charge_call
