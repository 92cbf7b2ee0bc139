"""Redaction by name and by value pattern, and the owner's controls."""

from __future__ import annotations

import pytest

from runtime_agent.redact import REDACTED, Redactor, luhn_valid


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "api_key",
        "API-KEY",
        "x-api-key",
        "Authorization",
        "set_cookie",
        "sessionId",
        "credit_card",
        "cvv",
        "private_key",
        "jwt",
        "access_token",
        "ssn",
    ],
)
def test_sensitive_names(name):
    assert Redactor().is_sensitive(name)


@pytest.mark.parametrize("name", ["total", "user_id", "symbol", "quantity", "price", "items"])
def test_ordinary_names(name):
    assert not Redactor().is_sensitive(name)


def test_owner_names_and_patterns():
    redactor = Redactor(["internal_ref"], [r"ACCT-\d{6}"])
    assert redactor.is_sensitive("InternalRef")
    assert redactor.mask_text("ref ACCT-123456 ok") == f"ref {REDACTED} ok"
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Redactor(extra_patterns=["(unclosed"])


def test_from_env():
    redactor = Redactor.from_env(
        {"RUNTIME_AGENT_REDACT": "tenant, plan", "RUNTIME_AGENT_REDACT_PATTERNS": r"T-\d+;;(bad"}
    )
    assert redactor.is_sensitive("tenant") and redactor.is_sensitive("PLAN")
    assert redactor.mask_text("id T-42") == f"id {REDACTED}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card 4111 1111 1111 1111 ok", f"card {REDACTED} ok"),
        ("card 4111-1111-1111-1111", f"card {REDACTED}"),
        ("order 1234567890123456 ok", "order 1234567890123456 ok"),  # fails Luhn
        ("Authorization: Bearer abcdef0123456789", f"Authorization: {REDACTED}"),
        ("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sflKxwRJSMeKKF2QT4fwpM", f"t={REDACTED}"),
        ("key AKIAIOSFODNN7EXAMPLE here", f"key {REDACTED} here"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", REDACTED),
        ("nothing to see", "nothing to see"),
    ],
)
def test_value_patterns(text, masked):
    assert Redactor().mask_text(text) == masked


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
